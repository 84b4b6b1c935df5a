"""The shard tools on `s3://` URLs (moto's S3 server): each gives what it gives on a local folder,
writes every file whole under its final name, and names a missing bucket or prefix."""

import json
import shutil

import fsspec
import pytest
from typer.testing import CliRunner

from sgpipe.cli import app
from sgpipe.errors import SgpipeError
from sgpipe.synth.world import generate_world
from sgpipe.tools.convert_rlipv2 import convert_rlipv2
from sgpipe.tools.convert_synth import convert_synth
from sgpipe.tools.convert_vg import convert_vg
from sgpipe.tools.export import export
from sgpipe.tools.inspect_shards import inspect_shards
from sgpipe.tools.report import build_report, write_report
from sgpipe.tools.reshard import reshard
from sgpipe.tools.stats import show_stats
from tests.helpers.images import write_image
from tests.helpers.s3 import S3Calls, object_bytes, s3, s3_server, upload_folder
from tests.helpers.tiny_shards import make_output

runner = CliRunner()
SHARD_FILES = (".tar", ".parquet", ".json")


@pytest.fixture(scope="module")
def s3opts():
    with s3_server() as options:
        yield options


@pytest.fixture(scope="module")
def corpus(s3opts, tmp_path_factory):
    """One output folder on disk and the same files at s3://bucket/out (Objects365-named, so the export
    writes its id -> path file too)."""
    local = tmp_path_factory.mktemp("local") / "out"
    make_output(local, n_images=5, per_shard=2, dataset="o365")
    upload_folder(s3opts, local, "s3://bucket/out")
    return local


def _local_files(folder, suffixes=SHARD_FILES):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.suffix in suffixes}


def _assert_only_final_names_written(calls):
    """Each file is one PUT of its final name: no temporary object, no copy or rename, no delete."""
    assert calls.written_keys, "nothing was written"
    operations = {op for op, _ in calls.written_keys}
    assert operations == {"PutObject"}, calls.written_keys
    assert not [
        key for _, key in calls.written_keys if ".tmp" in key or key.rsplit("/", 1)[-1].startswith(".")
    ]


def test_stats_and_plots_of_a_bucket_equal_those_of_the_local_folder(s3opts, corpus, tmp_path):
    remote = show_stats("s3://bucket/out", plots_dir=tmp_path / "remote", options=s3opts)
    local = show_stats(corpus, plots_dir=tmp_path / "local")
    assert remote.split("\nplots:")[0] == local.split("\nplots:")[0]
    assert "images: 6  ok: 5  failed: 1" in remote
    pngs = sorted(p.name for p in (tmp_path / "local").iterdir())
    assert "relations_per_image.png" in pngs  # read from the shards' parquet files
    assert sorted(p.name for p in (tmp_path / "remote").iterdir()) == pngs


def test_stats_of_an_unfinalised_bucket_folder_come_from_its_shard_markers(s3opts, corpus, tmp_path):
    partial = tmp_path / "partial"
    shutil.copytree(corpus, partial)
    (partial / "stats.json").unlink()
    upload_folder(s3opts, partial, "s3://bucket/partial")
    assert show_stats("s3://bucket/partial", options=s3opts) == show_stats(partial)


def test_report_reads_a_bucket_and_uploads_the_page_whole(s3opts, corpus, tmp_path):
    calls = S3Calls(s3opts)
    summary = write_report("s3://bucket/out", "s3://bucket/reports/out.html", n_samples=2, options=s3opts)
    assert summary.startswith("wrote s3://bucket/reports/out.html")
    _assert_only_final_names_written(calls)
    page = s3(s3opts).cat_file("bucket/reports/out.html").decode()
    assert page == build_report(corpus, n_samples=2)
    assert page.count("<figure>") == 2


@pytest.mark.parametrize("fmt, name", [("rlipv2", "labels.json"), ("parquet", "relations.parquet")])
def test_export_from_and_to_a_bucket_writes_the_local_exports_bytes(s3opts, corpus, tmp_path, fmt, name):
    export(corpus, fmt, tmp_path / name, min_confidence=0.05)
    calls = S3Calls(s3opts)
    summary = export("s3://bucket/out", fmt, f"s3://bucket/exports/{fmt}/{name}", 0.05, options=s3opts)
    assert f"to s3://bucket/exports/{fmt}/{name}" in summary
    _assert_only_final_names_written(calls)
    written = object_bytes(s3opts, f"s3://bucket/exports/{fmt}", suffixes=(".json", ".parquet"))
    assert written == _local_files(tmp_path, (".json", ".parquet"))
    if fmt == "rlipv2":  # the labels, their vocabulary and the Objects365 id -> path file
        assert sorted(written) == [
            "labels.json",
            "labels_image_id_to_filepath.json",
            "labels_vocab_freq.json",
        ]


def test_compare_reads_a_bucket_corpus_and_label_file_and_writes_its_json_whole(s3opts, corpus, tmp_path):
    from sgpipe.tools.compare import compare, compare_corpora

    export(corpus, "rlipv2", tmp_path / "x.json", min_confidence=0.05)
    s3(s3opts).put_file(str(tmp_path / "x.json"), "bucket/labels/x.json")
    local = compare_corpora(str(corpus), str(tmp_path / "x.json"), min_confidence=0.05)
    calls = S3Calls(s3opts)
    summary = compare(
        "s3://bucket/out",
        "s3://bucket/labels/x.json",
        "s3://bucket/cmp/c.json",
        min_confidence=0.05,
        options=s3opts,
    )
    assert "relations: 8 in both, 0 only in A, 0 only in B" in summary
    _assert_only_final_names_written(calls)
    remote = json.loads(s3(s3opts).cat_file("bucket/cmp/c.json"))
    for side, path in (("a", "s3://bucket/out"), ("b", "s3://bucket/labels/x.json")):
        assert remote[side].pop("path") == path
        local[side].pop("path")
    assert remote == local
    write_report("s3://bucket/out", tmp_path / "r.html", 0, s3opts, comparison="s3://bucket/cmp/c.json")
    assert '<section class="comparison" id="comparison">' in (tmp_path / "r.html").read_text()
    with pytest.raises(SgpipeError, match="s3://bucket/labels/none.json: no such object"):
        compare_corpora("s3://bucket/out", "s3://bucket/labels/none.json", options=s3opts)


def test_reshard_from_and_to_a_bucket_equals_a_local_reshard(s3opts, corpus, tmp_path):
    reshard(str(corpus), tmp_path / "re", 4)
    calls = S3Calls(s3opts)
    summary = reshard("s3://bucket/out", "s3://bucket/re", 4, s3opts)
    assert summary.endswith("4 per shard to s3://bucket/re; the last shard holds 1")
    _assert_only_final_names_written(calls)
    remote = object_bytes(s3opts, "s3://bucket/re", suffixes=SHARD_FILES)
    local = _local_files(tmp_path / "re")
    assert remote.keys() == local.keys() and {"00001_stats.json", "stats.json"} <= remote.keys()
    for name in local:  # _stats.json and stats.json hold timings: compared without them
        if name.endswith("stats.json"):
            assert _without_timings(remote[name]) == _without_timings(local[name])
        else:
            assert remote[name] == local[name], name
    with pytest.raises(SgpipeError, match="already holds shards"):
        reshard("s3://bucket/out", "s3://bucket/re", 4, s3opts)


def _without_timings(data):
    value = json.loads(data)
    value.pop("timings", None)
    value.pop("throughput", None)
    return value


def _world(tmp_path):
    generate_world(tmp_path / "world", n_images=3, seed=3, image_size=128)
    return tmp_path / "world"


def _vg(tmp_path):
    write_image(tmp_path / "vg" / "7.jpg", 50, 40)
    objects = [
        {"object_id": 1, "x": 0, "y": 0, "w": 10, "h": 10, "names": ["cup"]},
        {"object_id": 2, "x": 0, "y": 10, "w": 40, "h": 20, "names": ["table"]},
    ]
    relation = {"relationship_id": 1, "predicate": "on", "subject_id": 1, "object_id": 2}
    (tmp_path / "sg.json").write_text(
        json.dumps([{"image_id": 7, "objects": objects, "relationships": [relation]}])
    )
    return tmp_path / "vg", tmp_path / "sg.json"


def _rlipv2(tmp_path):
    write_image(tmp_path / "coco" / "train2017" / "000000000009.jpg", 100, 80)
    objects = [
        {"object_id": 1, "x": 1.5, "y": 2.0, "w": 30.0, "h": 40.0, "names": "person"},
        {"object_id": 2, "x": 20.0, "y": 10.0, "w": 60.0, "h": 50.0, "names": "horse"},
    ]
    relation = {
        "relationship_id": 0,
        "predicate": "riding",
        "subject_id": 1,
        "object_id": 2,
        "confidence": 0.9,
    }
    item = {"image_id": 9, "dataset": "coco2017", "data_split": "train2017", "objects": objects}
    (tmp_path / "labels.json").write_text(json.dumps([{**item, "relationships": [relation]}]))
    return tmp_path / "labels.json", tmp_path / "coco"


CONVERTERS = {
    "synth": lambda tmp, out, **kw: convert_synth(_world(tmp), out, samples_per_shard=2, **kw),
    "vg": lambda tmp, out, **kw: convert_vg(*_vg(tmp), out, **kw),
    "rlipv2": lambda tmp, out, **kw: convert_rlipv2(*_rlipv2(tmp), out, **kw),
}


@pytest.mark.parametrize("name", sorted(CONVERTERS))
def test_converters_write_into_a_bucket_the_bytes_they_write_locally(s3opts, tmp_path, name):
    convert = CONVERTERS[name]
    convert(tmp_path / "a", tmp_path / "local")
    calls = S3Calls(s3opts)
    summary = convert(tmp_path / "b", f"s3://bucket/convert-{name}", options=s3opts)
    assert f"s3://bucket/convert-{name}" in summary
    _assert_only_final_names_written(calls)
    remote = object_bytes(s3opts, f"s3://bucket/convert-{name}", suffixes=SHARD_FILES)
    local = _local_files(tmp_path / "local")
    assert remote.keys() == local.keys() and "00000_stats.json" in remote
    for file_name in local:
        if file_name.endswith("stats.json"):
            assert _without_timings(remote[file_name]) == _without_timings(local[file_name])
        else:
            assert remote[file_name] == local[file_name], file_name
    with pytest.raises(SgpipeError, match="already holds shards"):
        convert(tmp_path / "c", f"s3://bucket/convert-{name}", options=s3opts)


def test_the_commands_take_storage_options_or_the_environment(s3opts, corpus, tmp_path, monkeypatch):
    options = json.dumps(s3opts)
    result = runner.invoke(app, ["stats", "s3://bucket/out", "--storage-options", options])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == show_stats(corpus)
    result = runner.invoke(app, ["inspect", "s3://bucket/out", "--limit", "1", "--storage-options", options])
    assert result.exit_code == 0 and result.output.strip() == inspect_shards(str(corpus), limit=1)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3opts["endpoint_url"])  # no storage options at all
    fsspec.filesystem("s3").clear_instance_cache()
    for args in (
        ["stats", "s3://bucket/out"],
        ["report", "s3://bucket/out", "--output", str(tmp_path / "r.html"), "--samples", "1"],
        ["export", "s3://bucket/out", "--output", "s3://bucket/cli/x.json"],
        ["reshard", "s3://bucket/out", "s3://bucket/cli-re", "--samples-per-shard", "3"],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, (args, result.output)
    assert len(json.loads(s3(s3opts).cat_file("bucket/cli/x.json"))) == 5
    assert "2 shards, 5 samples" in inspect_shards("s3://bucket/cli-re")


@pytest.mark.parametrize(
    "args, message",
    [
        (["stats", "s3://nobucket/out"], "no such bucket 's3://nobucket'"),
        (["stats", "s3://bucket/nothing"], "s3://bucket/nothing: nothing there"),
        (["report", "s3://bucket/nothing", "--output", "r.html"], "s3://bucket/nothing: nothing there"),
        (["inspect", "s3://bucket/out/00099.tar"], "s3://bucket/out/00099.tar: no such shard"),
        (["inspect", "s3://nobucket/out"], "no such bucket 's3://nobucket'"),
        (["export", "s3://bucket/nothing", "--output", "x.json"], "s3://bucket/nothing: nothing there"),
        (["export", "s3://bucket/out", "--output", "s3://nobucket/x.json"], "no such bucket 's3://nobucket'"),
        (["reshard", "s3://bucket/out", "s3://nobucket/re"], "no such bucket 's3://nobucket'"),
        (["stats", "s3:/bucket/out"], "looks like a URL missing a slash; write 's3://bucket/out'"),
        (
            ["stats", "s3://bucket/out", "--storage-options", "[1, 2]"],
            "--storage-options: expected a mapping",
        ),
    ],
)
def test_a_missing_bucket_or_prefix_is_one_clear_error(s3opts, corpus, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    if "--storage-options" not in args:
        args = [*args, "--storage-options", json.dumps(s3opts)]
    calls = S3Calls(s3opts)
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not calls.written_keys and not list(tmp_path.iterdir())  # nothing written anywhere


def test_a_converter_into_a_missing_bucket_stops_before_any_work(s3opts, tmp_path):
    with pytest.raises(SgpipeError, match="no such bucket 's3://nobucket'.*create it first"):
        convert_vg(*_vg(tmp_path), "s3://nobucket/vg", options=s3opts)
