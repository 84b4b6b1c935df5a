"""Config of the image-text sources and the detect stage: what each kind needs, lists, hashes."""

import pytest

from sgpipe.config import build_config, load_config
from sgpipe.errors import ConfigError
from sgpipe.run.identity import config_hash
from sgpipe.run.preflight import preflight_problems
from tests.helpers.web_fixture import make_img2dataset


def _problems(raw, overrides=()):
    with pytest.raises(ConfigError) as caught:
        build_config(raw, list(overrides))
    return caught.value.problems


def test_each_kind_names_what_it_needs_and_refuses_what_it_does_not_use():
    assert _problems({"source": {"kind": "webdataset", "instances": "i.json"}, "output": {"dir": "o"}}) == [
        "source.shards: required with source.kind webdataset "
        "(tar URLs: a brace pattern (/data/{00000..00099}.tar), a list, a folder)",
        "source.instances: not used with source.kind webdataset; remove it",
    ]
    assert _problems({"source": {"kind": "folder", "shards": ["a.tar"]}}) == [
        "source.images: required with source.kind folder "
        "(the folder whose images (and NAME.txt alt texts) are read)",
        "source.shards: not used with source.kind folder; remove it",
    ]
    problems = _problems({"source": {"kind": "lidar"}})
    expected = "source.kind: 'lidar' is not valid. Choose from: coco, folder, webdataset"
    assert any(expected in p for p in problems)


def test_no_captioner_is_fine_where_alt_texts_are_the_captions():
    config = build_config({"source": {"kind": "folder", "images": "/photos"}})
    assert config.caption.enabled is False and config.source.kind == "folder"


def test_shards_take_a_pattern_a_list_or_one_url(tmp_path):
    one = build_config({}, ["source.kind=webdataset", "source.shards={00000..00009}.tar"])
    assert one.source.shards == ["{00000..00009}.tar"]  # the braces stay a pattern, not a YAML mapping
    many = build_config({}, ["source.kind=webdataset", "source.shards=[s3://b/a.tar, s3://b/b.tar]"])
    assert many.source.shards == ["s3://b/a.tar", "s3://b/b.tar"]
    problems = _problems({"source": {"kind": "webdataset", "shards": 3}})
    assert problems[0] == "source.shards: expected a string or a list of strings, got 3"


def test_relative_shards_resolve_next_to_the_recipe_and_missing_tars_are_named(tmp_path):
    make_img2dataset(tmp_path / "tars", n_tars=2, per_tar=1)
    recipe = tmp_path / "r.yaml"
    recipe.write_text("source:\n  kind: webdataset\n  shards: tars/{00000..00002}.tar\noutput:\n  dir: out\n")
    shard_problems = [p for p in preflight_problems(load_config(recipe)) if p.startswith("source.shards")]
    assert shard_problems == [f"source.shards: shard file(s) not found: {tmp_path}/tars/00002.tar"]
    config = load_config(recipe, [f"source.shards={tmp_path / 'tars'}"])  # the folder: its tars, listed
    assert config.source.shards == [str(tmp_path / "tars")]


def test_detect_keys_are_checked_only_when_it_runs(tmp_path):
    base = {"source": {"kind": "folder", "images": str(tmp_path)}}
    build_config({**base, "detect": {"vocabulary": "nonsense"}})  # off: not checked
    problems = _problems({**base, "detect": {"enabled": True, "vocabulary": "nonsense", "model": "",
                                             "box_threshold": 2}})
    assert problems == [
        "detect.box_threshold: 2.0 must be in [0.0, 1.0]",
        "detect.model: required with detect.enabled (a hub id or folder: IDEA-Research/grounding-dino-tiny)",
    ]
    # whether the vocabulary names a file is the world's question: the preflight's
    config = build_config({**base, "detect": {"enabled": True, "vocabulary": "nonsense"}})
    assert [p for p in preflight_problems(config) if p.startswith("detect.vocabulary")] == [
        "detect.vocabulary: 'nonsense' is neither a file (one name per line) nor one of none, coco, objects365"
    ]
    # a run of other stages (a reverify: the verify stage alone) does not read the detector's vocabulary
    assert not [p for p in preflight_problems(config, ("verify",)) if p.startswith("detect.vocabulary")]


def test_hashes_of_coco_runs_without_detection_are_unchanged_and_new_keys_count(tmp_path):
    coco = {"source": {"instances": "i.json", "images": "im", "captions": "c.json"}}
    # the hash this COCO recipe had before sources had kinds and the detect stage existed (the code
    # before them gave 0264fb4c8be46d1e): output folders written then resume
    assert config_hash(build_config(coco)) == "0264fb4c8be46d1e"
    off = build_config(coco, ["detect.model=other", "detect.max_boxes=3"])
    assert config_hash(off) == "0264fb4c8be46d1e"  # the detect stage does not run: its keys do not count
    on = build_config(coco, ["detect.enabled=true"])
    more = build_config(coco, ["detect.enabled=true", "detect.max_boxes=3"])
    assert len({config_hash(off), config_hash(on), config_hash(more)}) == 3
    names = tmp_path / "names.txt"
    names.write_text("cat\n")
    with_file = build_config(coco, ["detect.enabled=true", f"detect.vocabulary={names}"])
    before = config_hash(with_file)
    names.write_text("dog\n")
    assert config_hash(with_file) != before  # the vocabulary file counts by its names, not its path
    web = {"source": {"kind": "webdataset", "shards": ["a.tar"]}}
    moved = {"source": {"kind": "webdataset", "shards": ["b.tar"]}}
    hashes = {config_hash(build_config(raw)) for raw in (web, moved)}
    assert len(hashes) == 2
    bigger = build_config(web, ["output.samples_per_shard=5000"])
    assert config_hash(bigger) == config_hash(build_config(web))  # one shard per tar
