import json
from importlib import resources

import pytest

from sgpipe.vocab import Lexicon, choose_vocabulary, load_vocabulary
from sgpipe.vocab.lexicon import category_alternatives, non_object_kind, singular

COCO = list(json.loads(resources.files("sgpipe.vocab").joinpath("coco.json").read_text()))
O365 = list(json.loads(resources.files("sgpipe.vocab").joinpath("objects365.json").read_text()))
BODY_AND_CLOTHES = [
    "hair",
    "hand",
    "head",
    "leg",
    "foot",
    "eye",
    "face",
    "arm",
    "shirt",
    "jacket",
    "jeans",
    "dress",
]


def test_bundled_vocabularies_cover_the_official_category_lists():
    assert len(COCO) == 80 and COCO[0] == "person" and "hair drier" in COCO
    assert len(O365) == 365 and "Handbag/Satchel" in O365 and "Moniter/TV" in O365
    for name in ("coco", "objects365"):
        for category, terms in load_vocabulary(name).items():
            assert terms[0] == category.split("/")[0] or category in terms
            assert all(t == t.lower().strip() and "  " not in t for t in terms)


def test_auto_picks_vocabulary_by_overlap():
    assert choose_vocabulary(COCO) == "coco"
    assert choose_vocabulary(O365) == "objects365"
    assert (
        choose_vocabulary(["circle", "square", "triangle", "star", "ring", "cross", "diamond", "heart"])
        == "none"
    )
    assert choose_vocabulary([]) == "none"


@pytest.mark.parametrize("lexicon", [Lexicon(COCO), Lexicon(O365)], ids=["coco", "o365"])
def test_body_parts_and_clothing_never_map_to_person(lexicon):
    for word in BODY_AND_CLOTHES:
        assert lexicon.lookup(word) == (), word
    # and no term of the person category is a body part or a garment
    person = next(c for c in lexicon.categories if c.lower() == "person")
    for term, categories in lexicon._terms.items():
        if person in categories:
            assert non_object_kind(term) is None, term


def test_whole_words_only():
    lexicon = Lexicon(COCO)
    assert lexicon.lookup("hair") == ()  # "chair" and "hair drier" contain it; neither is it
    assert lexicon.lookup("hot dog") == ("hot dog",)
    assert lexicon.lookup("dog") == ("dog",)
    assert lexicon.lookup("do") == ()
    assert lexicon.lookup("car") == ("car",)
    assert lexicon.lookup("carrot") == ("carrot",)
    assert lexicon.lookup("cart") == ()
    assert lexicon.lookup("bike seat") == ()  # "seat" is no chair by itself


def test_hyponyms_synonyms_and_compounds():
    lexicon = Lexicon(COCO)
    for word in ("man", "woman", "child", "skier", "player", "tennis player", "surfer", "people"):
        assert lexicon.lookup(word) == ("person",), word
    assert lexicon.lookup("kitten") == ("cat",)
    assert lexicon.lookup("sofa") == ("couch",)
    assert lexicon.lookup("fire hydrant") == ("fire hydrant",)
    assert lexicon.lookup("red fire hydrant") == ("fire hydrant",)
    assert lexicon.lookup("Cell Phone") == ("cell phone",)
    assert set(lexicon.lookup("glass")) == {"wine glass", "cup"}


def test_known_compound_does_not_fall_back_to_its_last_word():
    # a dataset with "dog" but no "hot dog": a hot dog is still no dog
    lexicon = Lexicon(["dog", "circle"], vocabulary="none")
    assert lexicon.lookup("hot dog") == ()
    assert lexicon.lookup("big dog") == ("dog",)
    assert lexicon.lookup("dogs") == ("dog",)


def test_objects365_names_split_on_slash_and_normalised():
    lexicon = Lexicon(O365)
    assert lexicon.lookup("handbag") == ("Handbag/Satchel",)
    assert lexicon.lookup("satchel") == ("Handbag/Satchel",)
    assert lexicon.lookup("tv") == ("Moniter/TV",)
    assert lexicon.lookup("monitor") == ("Moniter/TV",)
    assert lexicon.lookup("sneaker") == ("Sneakers",) or "Sneakers" in lexicon.lookup("sneaker")
    assert lexicon.lookup("formula 1") == ("Formula 1 ",)
    assert lexicon.lookup("ping pong ball") == ("Table Tennis ",)
    assert "Wild Bird" in lexicon.lookup("bird") and "Duck" in lexicon.lookup("bird")
    assert lexicon.lookup("basket") == ("Bakset",)


def test_names_only_lexicon_for_other_datasets():
    lexicon = Lexicon(["circle", "square", "Traffic Cones", "box/crate"], vocabulary="auto")
    assert lexicon.vocabulary == "none"
    assert lexicon.lookup("circle") == ("circle",)
    assert lexicon.lookup("red circle") == ("circle",)
    assert lexicon.lookup("traffic cone") == ("Traffic Cones",)
    assert lexicon.lookup("crate") == ("box/crate",)
    assert lexicon.lookup("man") == ()  # no curated synonyms without a vocabulary


def test_explicit_vocabulary_and_categories_outside_it():
    lexicon = Lexicon(["person", "unicorn"], vocabulary="coco")
    assert lexicon.lookup("skier") == ("person",)
    assert lexicon.lookup("unicorn") == ("unicorn",)
    with pytest.raises(ValueError, match="choose from"):
        load_vocabulary("imagenet")


def test_helpers():
    assert category_alternatives("Handbag/Satchel") == ["handbag/satchel", "handbag", "satchel"]
    assert category_alternatives("Person") == ["person"]
    assert [singular(w) for w in ("buses", "bus", "boxes", "berries", "skis", "glass", "dog")] == [
        "bus",
        "bus",
        "box",
        "berry",
        "ski",
        "glass",
        "dog",
    ]
    assert non_object_kind("hair") == "body_part"
    assert non_object_kind("baseball cap") == "clothing"
    assert non_object_kind("sky") == "stuff"
    assert non_object_kind("dog") is None
