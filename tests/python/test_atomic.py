"""Atomic writes: the result appears whole with ordinary permissions (the umask's, or the
replaced file's), and a failed write leaves the previous version untouched."""

import os
import stat

import pytest

from gleam_core.atomic import atomic_write_text


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_new_files_follow_the_umask_and_replacements_keep_their_mode(tmp_path):
    old = os.umask(0o027)
    try:
        atomic_write_text(tmp_path / "new.txt", "a")
        assert mode(tmp_path / "new.txt") == 0o640  # 0666 & ~027, not mkstemp's 0600
        kept = tmp_path / "kept.txt"
        kept.write_text("old")
        os.chmod(kept, 0o604)
        atomic_write_text(kept, "new")
        assert mode(kept) == 0o604 and kept.read_text() == "new"
    finally:
        os.umask(old)


def test_a_failed_write_keeps_the_previous_version(tmp_path):
    target = tmp_path / "t.txt"
    atomic_write_text(target, "first")

    class Unprintable:
        def __str__(self):
            raise RuntimeError("boom")
    with pytest.raises(TypeError):
        atomic_write_text(target, Unprintable())
    assert target.read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.txt"]  # no temporary left behind
