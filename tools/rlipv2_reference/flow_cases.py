"""The inputs of the RLIPv2 flow reference: images (generated from seeds), COCO boxes and ten captions each.

Plain data, no imports beyond the standard library: `make_flow_reference.py` reads it in RLIPv2's environment
and copies it into the fixture, so sgpipe's test reads the inputs from the fixture alone.

What each image exercises in RLIPv2's flow:
- 101: five people, then fifteen dogs: 80 person-person candidates (four texts), then 1680 dog-dog ones (eight
  texts): 18 groups of 100, two inference batches (16 + 2 groups) with their own merged text lists. Groups
  1-15 hold dogs only, yet share the first batch, hence the people's texts; the last two groups do not. A
  crowd box, never in a pair.
- 102: people, horses and a dog: a few hundred candidates in one batch of groups; conjunctions ("a man and a
  woman riding horses") and plurals.
- 103 / 104: the same captions; "a hot dog" matches both "dog" and "hot dog" (substring paraphrases) and RLIPv2
  keeps the category named last in the image's annotation order: 103 lists dog first, 104 lists hot dog first,
  in an annotation file whose order is not the annotation ids' order.
- 105: a person box partly outside the image (clamped), a crowd person, and a "dog" annotation of zero width
  listed after the hot dog: no box, yet its name still wins the "a hot dog" match.
- 106: no caption entity matches a box: one empty group.
- 107: five people and exactly five relation texts: 100 candidates, a full group followed by an empty one.
- 108: "chair" contains "hair", a paraphrase of person: RLIPv2's substring matching at work.
- 109: crowd boxes only: triplets match, no pair.
"""

COCO_CATEGORIES = {  # official COCO ids of the categories used
    "person": 1, "bicycle": 2, "dog": 18, "horse": 19, "cup": 47, "hot dog": 58, "cake": 61, "chair": 62,
    "couch": 63, "laptop": 73, "cat": 17,
}

HOT_DOG_CAPTIONS = [  # images 103 and 104
    "a hot dog on a table",
    "a man eating a hot dog",
    "a dog looking at a hot dog",
    "a person holding a hot dog next to a dog",
    "a dog sitting next to a man",
    "a man holding a cup",
    "a hot dog next to a cup",
    "a dog begging for a hot dog",
    "a man feeding a dog a hot dog",
    "a close up of a hot dog with mustard",
]

# Each box: (annotation id, category, [x, y, w, h], iscrowd). Listed in the annotation file's order.
IMAGES = [
    {
        "id": 101, "seed": 11, "width": 200, "height": 160,
        # five people, then fifteen dogs, then a crowd box (never a pair)
        "boxes": [(1000 + i, "person", [4.0 + 30.5 * i, 10.0 + 9.0 * (i % 4), 22.0, 60.0 + 3.0 * (i % 3)], 0)
                  for i in range(5)]
        + [(1100 + i, "dog", [3.0 + 12.5 * i, 95.0 + 4.0 * (i % 3), 18.0 + (i % 4), 24.0 + (i % 5)], 0)
           for i in range(15)]
        + [(1200, "person", [0.0, 0.0, 200.0, 60.0], 1)],
        "captions": [
            "a man talking to a woman next to a girl",
            "a woman hugging a man",
            "a boy standing behind a girl",
            "a dog chasing a dog next to a dog",
            "a dog playing with a dog",
            "a dog sniffing a dog",
            "a dog biting a dog",
            "a dog lying on a dog",
            "a dog jumping over a dog",
            "a dog licking a dog",
        ],
    },
    {
        "id": 102, "seed": 12, "width": 180, "height": 140,
        "boxes": [
            (2001, "person", [10.0, 20.0, 30.0, 70.0], 0), (2002, "person", [50.0, 15.0, 28.0, 75.0], 0),
            (2003, "horse", [20.0, 60.0, 70.0, 60.0], 0), (2004, "person", [100.0, 25.0, 25.0, 80.0], 0),
            (2005, "horse", [95.0, 70.0, 75.0, 55.0], 0), (2006, "dog", [130.0, 100.0, 40.0, 30.0], 0),
            (2007, "horse", [60.0, 40.0, 50.0, 45.0], 0), (2008, "person", [150.0, 10.0, 20.0, 60.0], 0),
        ],
        "captions": [
            "a man riding a horse",
            "a woman feeding a horse",
            "a horse next to a man",
            "a dog chasing a horse",
            "a girl sitting on a horse",
            "a man walking a dog",
            "a man and a woman riding horses",
            "people standing near horses",
            "a horse eating grass in a field",
            "a woman riding a brown horse next to a dog",
        ],
    },
    {
        "id": 103, "seed": 13, "width": 160, "height": 120,
        "boxes": [
            (3001, "dog", [10.0, 60.0, 50.0, 40.0], 0), (3002, "hot dog", [80.0, 50.0, 30.0, 12.0], 0),
            (3003, "person", [100.0, 5.0, 40.0, 100.0], 0), (3004, "cup", [70.0, 80.0, 15.0, 20.0], 0),
        ],
        "captions": HOT_DOG_CAPTIONS,
    },
    {
        "id": 104, "seed": 14, "width": 160, "height": 120,
        # file order 4010, 4002, 4005, 4001: not the ids' order
        "boxes": [
            (4010, "hot dog", [80.0, 50.0, 30.0, 12.0], 0), (4002, "dog", [10.0, 60.0, 50.0, 40.0], 0),
            (4005, "person", [100.0, 5.0, 40.0, 100.0], 0), (4001, "cup", [70.0, 80.0, 15.0, 20.0], 0),
        ],
        "captions": HOT_DOG_CAPTIONS,
    },
    {
        "id": 105, "seed": 15, "width": 150, "height": 150,
        "boxes": [
            (5001, "person", [-10.5, 20.25, 60.0, 100.0], 0), (5002, "person", [0.0, 0.0, 150.0, 150.0], 1),
            (5003, "hot dog", [70.0, 60.0, 25.0, 10.0], 0), (5004, "dog", [90.0, 90.0, 0.0, 30.0], 0),
            (5005, "person", [100.0, 30.0, 45.0, 110.0], 0), (5006, "cake", [60.0, 110.0, 40.0, 30.0], 0),
        ],
        "captions": [
            "a man eating a hot dog",
            "a person holding a cake",
            "a man next to a woman",
            "a woman cutting a cake",
            "a man with a hot dog",
            "two people standing next to a cake",
            "a woman smiling at a man",
            "a man holding a hot dog next to a woman",
            "a cake on a table",
            "a man and a woman with a cake",
        ],
    },
    {
        "id": 106, "seed": 16, "width": 140, "height": 100,
        "boxes": [(6001, "cat", [10.0, 10.0, 60.0, 50.0], 0), (6002, "laptop", [70.0, 30.0, 60.0, 45.0], 0)],
        "captions": [
            "a dog on a couch",
            "a bowl of fruit",
            "a sunny day at the beach",
            "a train on the tracks",
            "a bus parked on a street",
            "an airplane flying in the sky",
            "a plate of food",
            "a clock on a wall",
            "a boat in the water",
            "a pizza in a box",
        ],
    },
    {
        "id": 107, "seed": 17, "width": 170, "height": 130,
        "boxes": [(7001 + i, "person", [5.0 + 32.0 * i, 15.0 + 6.0 * i, 26.0, 90.0], 0) for i in range(5)],
        "captions": [
            "a man talking to a woman",
            "a woman hugging a man",
            "a boy standing behind a girl",
            "a girl looking at a boy",
            "people watching a man",
            "a sunny day at the park",
            "trees in the background",
            "kites flying in the sky",
            "a beautiful view of the city",
            "a group of people",
        ],
    },
    {
        "id": 108, "seed": 18, "width": 190, "height": 150,
        "boxes": [
            (8001, "person", [10.0, 10.0, 40.0, 110.0], 0), (8002, "chair", [5.0, 70.0, 50.0, 60.0], 0),
            (8003, "couch", [80.0, 60.0, 100.0, 70.0], 0), (8004, "person", [110.0, 20.0, 40.0, 90.0], 0),
            (8005, "cup", [150.0, 60.0, 12.0, 15.0], 0), (8006, "chair", [60.0, 80.0, 30.0, 50.0], 0),
        ],
        "captions": [
            "a woman with long hair sitting on a chair",
            "a man on a couch holding a cup of coffee",
            "a cat sleeping on a chair",
            "a man sitting on a couch next to a woman",
            "a woman sitting in a chair",
            "a person holding a cup",
            "a chair next to a couch",
            "a man drinking from a cup",
            "two people in a living room",
            "a couch and a chair in a room",
        ],
    },
    {
        "id": 109, "seed": 19, "width": 120, "height": 120,
        "boxes": [(9001, "person", [0.0, 0.0, 120.0, 60.0], 1), (9002, "person", [0.0, 60.0, 120.0, 60.0], 1)],
        "captions": [
            "a crowd of people watching a game",
            "a man talking to a woman",
            "people standing in a line",
            "a woman looking at a man",
            "a man next to a woman",
            "a large group of people",
            "people walking down a street",
            "a man hugging a woman",
            "a crowd at a concert",
            "a woman holding a man",
        ],
    },
]

# Objects365 v2: official ids and names (the file's names are not what RLIPv2 reads: "Moniter/TV" is its
# "monitor/tv", by id). What each image exercises in RLIPv2's Objects365 helper and tagger loop:
# - 301: "a laptop" matches laptop and tablet; the tablet comes later in the file, so it wins; "a table"
#   matches desk; "a chair" matches person (via "hair"), chair and bench.
# - 302: people and horses, more than 100 candidates: two groups, one batch; a crowd person.
# - 303: "a tv" is category 38 whatever the file calls it; a zero-width box listed first.
O365_CATEGORIES = {
    "Person": 1, "Chair": 3, "Hat": 5, "Desk": 10, "Cup": 11, "Bench": 25, "Moniter/TV": 38, "Laptop": 74,
    "Horse": 79, "Tablet": 244,
}

O365_IMAGES = [
    {
        "id": 301, "seed": 31, "width": 200, "height": 150, "patch": 4,
        "boxes": [
            (30101, "Person", [10.0, 10.0, 40.0, 120.0], 0), (30102, "Laptop", [90.0, 70.0, 40.0, 25.0], 0),
            (30103, "Desk", [60.0, 90.0, 130.0, 50.0], 0), (30104, "Chair", [20.0, 80.0, 45.0, 60.0], 0),
            (30105, "Person", [140.0, 15.0, 45.0, 115.0], 0), (30106, "Cup", [150.0, 75.0, 12.0, 15.0], 0),
            (30107, "Hat", [145.0, 10.0, 30.0, 15.0], 0), (30108, "Tablet", [100.0, 75.0, 20.0, 15.0], 0),
            (30109, "Bench", [0.0, 120.0, 90.0, 30.0], 0),
        ],
        "captions": [
            "a man sitting on a chair",
            "a woman wearing a hat",
            "a laptop on a table",
            "a man using a laptop",
            "a woman holding a cup",
            "a man sitting at a desk next to a woman",
            "a cup on a desk",
            "a person sitting on a bench",
            "a woman with a hat standing behind a desk",
            "two people working on a laptop",
        ],
    },
    {
        "id": 302, "seed": 32, "width": 210, "height": 140, "patch": 7,
        "boxes": [(30200 + i, "Person", [5.0 + 40.0 * i, 10.0, 25.0, 70.0], 0) for i in range(5)]
        + [(30210 + i, "Horse", [10.0 + 48.0 * i, 60.0, 45.0, 70.0], 0) for i in range(4)]
        + [(30220, "Person", [0.0, 0.0, 210.0, 50.0], 1)],
        "captions": [
            "a man riding a horse",
            "a woman feeding a horse",
            "a horse next to a man",
            "people riding horses",
            "a girl sitting on a horse",
            "a man standing next to a woman",
            "a woman leading a horse",
            "a horse walking behind a man",
            "a man and a woman riding horses",
            "a boy petting a horse",
        ],
    },
    {
        "id": 303, "seed": 33, "width": 160, "height": 120, "patch": 4,
        "boxes": [
            (30301, "Cup", [30.0, 30.0, 0.0, 10.0], 0), (30302, "Person", [10.0, 10.0, 50.0, 100.0], 0),
            (30303, "Moniter/TV", [80.0, 20.0, 60.0, 45.0], 0), (30304, "Person", [100.0, 50.0, 40.0, 65.0], 0),
        ],
        "captions": [
            "a man watching tv",
            "a woman looking at a tv",
            "a man sitting in front of a television",
            "a person standing next to a monitor",
            "a man holding a cup",
            "a television on a wall",
            "two people watching a tv",
            "a man next to a woman",
            "a woman talking to a man",
            "a tv screen",
        ],
    },
]
