"""Closed word classes the extraction rules rely on (lowercased lemmas)."""

from __future__ import annotations

# "a group of people": the noun after "of" is the entity. Containers ("a bowl of oranges") are not here.
QUANTITY_NOUNS = frozenset(
    "group bunch herd flock piece pieces slice slices pair couple lot lots number crowd stack pile row line "
    "set team collection variety kind type sort bit bits handful cluster bundle assortment array series "
    "school pack swarm fleet dozen chunk chunks couple mound bank clump patch grove batch string wedge "
    "amount plenty majority part alot".split()
)

# "a picture of a dog": the depicted noun is the entity (BLIP captions begin "a picture of").
DEPICTION_NOUNS = frozenset(
    "picture photo photograph image view closeup close-up shot snapshot drawing painting illustration "
    "portrait scene".split()
)

# Nouns whose "of" phrase names the entity instead: "a herd of zebras", "a photo of a bus".
FRAME_NOUNS = QUANTITY_NOUNS | DEPICTION_NOUNS

# "in front of", "on top of", "at the side of": the noun is part of the preposition.
RELATIONAL_NOUNS = frozenset(
    "front top side back middle edge corner bottom center centre end left right inside outside base rear "
    "surface tip underside part area half".split()
)

# "left of" / "right of": complex prepositions the small spaCy model reads as "leave" or a noun.
SIDE_WORDS = frozenset(("left", "right"))

# "a bowl of oranges": the container stays an entity and holds its content ("in"), or bears it ("on").
CONTAINER_NOUNS = {
    **dict.fromkeys(
        "bowl cup glass box basket bottle jar bag bucket carton pot vase mug pan container crate bin can jug "
        "pitcher sack barrel tub tank pail".split(),
        "in",
    ),
    **dict.fromkeys("plate tray platter dish board".split(), "on"),
}

# Garments: "in"/"with" before one of these means wearing it ("a girl in a pink shirt").
CLOTHING_NOUNS = frozenset(
    "shirt t-shirt tshirt tee jacket coat hat cap helmet dress skirt pant pants jean jeans short shorts suit "
    "uniform sweater hoodie sweatshirt vest jersey blouse top tank wetsuit costume outfit apron clothes "
    "clothing bikini swimsuit robe gown tuxedo overalls pajamas leggings shoe shoes boot boots sneaker "
    "sneakers sandal sandals sock socks glove gloves mitten mittens scarf tie glasses sunglasses goggles "
    "mask visor beanie bandana headband wristband trunks cardigan raincoat parka poncho kimono sari".split()
)

RELATIVE_PRONOUNS = frozenset(("that", "which", "who", "whom", "whose"))

# Pronouns that point back to an earlier noun of the caption; the value says which number to prefer.
ANAPHORA = {
    "it": "singular",
    "itself": "singular",
    "he": "singular",
    "him": "singular",
    "she": "singular",
    "her": "singular",
    "they": "plural",
    "them": "plural",
    "themselves": "plural",
}

# A person pronoun with no noun to point back to stands for a person ("he is skiing").
PERSON_PRONOUNS = {"he": "man", "him": "man", "she": "woman", "her": "woman"}

# Variants of one spatial relation written one way ("at the top of" -> "on top of").
PREPOSITION_FORMS = {
    "in between": ["between"],
    "beneath": ["under"],
    "underneath": ["under"],
    "below": ["under"],
    **{
        f"{p} {part} of": ["on", part, "of"] for p in ("at", "in") for part in ("top", "side", "back", "edge")
    },
}

# FACTUAL writes "lay on" whether the caption says lying or laying.
PREDICATE_LEMMAS = {"lie": "lay"}
