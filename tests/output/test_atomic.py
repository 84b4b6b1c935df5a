"""The one atomic-file helper: a complete new file, or the old one untouched and no leftovers."""

from __future__ import annotations

import pytest

from sgpipe.output.atomic import atomic_file, atomic_write_bytes, temp_sibling, write_json_atomic


def test_a_write_that_fails_midway_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "labels.json"
    path.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_file(path, "w") as handle:
            handle.write("half of the new")
            raise RuntimeError("disk gone")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["labels.json"]


def test_text_binary_and_json_files_are_written_whole(tmp_path):
    with atomic_file(tmp_path / "a.txt", "w", sync_folder=True) as handle:
        handle.write("naïve café\n")
    atomic_write_bytes(tmp_path / "b.bin", b"\x00\x01")
    write_json_atomic(tmp_path / "c.json", {"ü": [1, 2]})
    assert (tmp_path / "a.txt").read_bytes() == "naïve café\n".encode("utf-8")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "c.json").read_text(encoding="utf-8") == '{\n  "ü": [\n    1,\n    2\n  ]\n}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.bin", "c.json"]


def test_the_temporary_is_a_hidden_sibling_that_shard_cleanup_recognises(tmp_path):
    tmp = temp_sibling(tmp_path / "00003.tar")
    assert tmp.parent == tmp_path and tmp.name.startswith(".00003.tar.tmp")


def test_on_an_object_store_the_file_appears_whole_or_not_at_all(tmp_path, monkeypatch):
    """The remote branch of the same helper (fsspec's memory store): uploaded once the block ends
    cleanly; an error uploads nothing and leaves no local temporary."""
    import tempfile

    from sgpipe.storage import RemotePath

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the local temporaries go
    folder = RemotePath("memory://atomic-test")
    path = folder / "labels.json"
    atomic_write_bytes(path, b"old")
    with pytest.raises(RuntimeError):
        with atomic_file(path, "w") as handle:
            handle.write("half of the new")
            raise RuntimeError("connection gone")
    assert path.read_bytes() == b"old"
    assert list(tmp_path.iterdir()) == []
    write_json_atomic(folder / "c.json", {"ü": 1}, sync_folder=True)  # nothing to fsync there
    assert (folder / "c.json").read_text() == '{\n  "ü": 1\n}\n'
    assert folder.list_names() == {"labels.json", "c.json"}


def test_a_store_without_atomic_puts_gets_a_temporary_name_and_a_rename(monkeypatch):
    from sgpipe.storage import RemotePath

    folder = RemotePath("memory://atomic-rename")
    monkeypatch.setattr(RemotePath, "atomic_put", property(lambda self: False))
    moves = []
    real_move = RemotePath.move_to
    monkeypatch.setattr(
        RemotePath, "move_to", lambda self, target: moves.append(self.name) or real_move(self, target)
    )
    atomic_write_bytes(folder / "00001.tar", b"tar bytes")
    assert (folder / "00001.tar").read_bytes() == b"tar bytes"
    assert moves == [temp_sibling(folder / "00001.tar").name]
    assert folder.list_names() == {"00001.tar"}
