"""agents.atomic: the old file survives a failed write; a good write replaces it whole."""

from __future__ import annotations

import os

import pytest

from agents.atomic import atomic_path, atomic_write_text


def test_a_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "sub" / "results.json"
    atomic_write_text(path, "old")
    atomic_write_text(path, "new")
    assert path.read_text() == "new" and os.listdir(path.parent) == ["results.json"]
    assert path.stat().st_mode & 0o777 == 0o644


def test_a_failing_writer_leaves_the_old_file(tmp_path):
    path = tmp_path / "model.zip"
    path.write_bytes(b"good")
    with pytest.raises(RuntimeError, match="disk full"), atomic_path(path) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("disk full")
    assert path.read_bytes() == b"good" and os.listdir(tmp_path) == ["model.zip"]
