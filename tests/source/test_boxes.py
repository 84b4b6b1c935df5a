import math

from sgpipe.source.boxes import sanitize_box

CATS = {1: "person"}


def _box(bbox, **kw):
    dropped = {}
    box = sanitize_box(
        {"id": 5, "category_id": kw.get("category_id", 1), "bbox": bbox}, CATS, 100, 80, dropped
    )
    return box, dropped


def test_good_box_kept_as_is():
    box, dropped = _box([10, 10, 20, 30])
    assert box.bbox == [10, 10, 20, 30] and dropped == {}


def test_out_of_bounds_box_is_clipped_and_counted():
    box, dropped = _box([-5, 70, 20, 30])
    assert box.bbox == [0, 70, 15, 10] and dropped == {"box_clipped": 1}


def test_bad_boxes_are_dropped_by_reason():
    assert _box([1, 1, 0, 5]) == (None, {"box_zero_area": 1})
    assert _box([1, 1, -3, 5]) == (None, {"box_zero_area": 1})
    assert _box([math.nan, 1, 3, 5]) == (None, {"box_nan": 1})
    assert _box([200, 200, 3, 5]) == (None, {"box_outside": 1})
    assert _box([1, 2, 3]) == (None, {"box_malformed": 1})
    assert _box([1, 2, 3, 4], category_id=77) == (None, {"box_unknown_category": 1})
