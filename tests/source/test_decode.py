import pytest

from sgpipe import errors
from sgpipe.source.decode import DecodeStage, resolve_image_path
from tests.corpus.images import CASES, jpeg_bytes, write_case
from tests.helpers.samples import build_sample
from tests.helpers.stages import run_stage

EXPECTED = {
    "good.jpg": (errors.OK, "jpg"),
    "zero.jpg": (errors.FAILED_DECODE, None),
    "truncated.jpg": (errors.FAILED_DECODE, None),
    "text.jpg": (errors.FAILED_DECODE, None),
    "alpha.png": (errors.OK, "png"),
    "cmyk.jpg": (errors.OK, "jpg"),
    "deep16.png": (errors.OK, "png"),
    "gray.png": (errors.OK, "png"),
    "rotated.jpg": (errors.OK, "jpg"),
    "wrongsize.jpg": (errors.FAILED_SIZE_MISMATCH, None),
    "bomb.png": (errors.FAILED_TOO_LARGE, None),
    "with space ünï 名前.jpg": (errors.OK, "jpg"),
}


def _sample(name, size):
    return build_sample(1, file_name=name, width=size[0], height=size[1])


@pytest.mark.parametrize("carried", [False, True], ids=["file", "carried"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_each_image_case_gets_its_status(tmp_path, name, carried):
    """Read by name in a thread pool, or carried by the source (a tar's member) and decoded inline."""
    size = write_case(tmp_path, name)
    sample = _sample(name, size)
    if carried:
        sample.image_bytes = (tmp_path / name).read_bytes()
    run_stage(DecodeStage(None if carried else tmp_path, max_pixels=50_000_000, threads=1 if carried else 2),
              [sample])
    status, ext = EXPECTED[name]
    assert sample.status == status, sample.error_message
    if status == errors.OK:
        assert sample.image.mode == "RGB" and sample.image.size == size
        assert sample.image_ext == ext and sample.image_bytes == (tmp_path / name).read_bytes()
    else:
        assert sample.image is None and sample.error_message


def test_one_bad_image_does_not_touch_the_others(tmp_path):
    for name in ("good.jpg", "truncated.jpg", "gray.png"):
        write_case(tmp_path, name)
    samples = [_sample(n, (40, 30)) for n in ("good.jpg", "truncated.jpg", "missing.jpg", "gray.png")]
    run_stage(DecodeStage(tmp_path, max_pixels=10**8), samples)
    assert [s.status for s in samples] == ["ok", "failed_decode", "failed_missing", "ok"]
    assert "missing.jpg" in samples[2].error_message


def test_objects365_patch_paths_resolve(tmp_path):
    (tmp_path / "patch7").mkdir()
    (tmp_path / "patch7" / "obj365_1.jpg").write_bytes(jpeg_bytes())
    (tmp_path / "flat.jpg").write_bytes(jpeg_bytes())
    assert resolve_image_path(tmp_path, "images/v2/patch7/obj365_1.jpg") == (
        tmp_path / "patch7" / "obj365_1.jpg",
        "last_two",
    )
    assert resolve_image_path(tmp_path, "train/deep/flat.jpg") == (tmp_path / "flat.jpg", "basename")
    assert resolve_image_path(tmp_path, "patch7/obj365_1.jpg")[1] == "direct"


@pytest.mark.parametrize("name", ["../secret.jpg", "/etc/passwd", "a/../../b.jpg", ""])
def test_names_that_leave_the_images_folder_never_resolve(tmp_path, name):
    (tmp_path.parent / "secret.jpg").write_bytes(jpeg_bytes())
    path, why = resolve_image_path(tmp_path, name)
    assert path is None and why
