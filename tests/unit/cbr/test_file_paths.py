"""Paths inside a backup: normalised lexically, never above the root; filesystem names."""

from __future__ import annotations

import pytest

from opencbr.cbr.errors import FilePathInvalid
from opencbr.cbr.files.paths import filesystem_name, parse_path


@pytest.mark.parametrize(
    ("raw", "text", "filesystem"),
    [
        ("", "/", None),
        ("/", "/", None),
        ("//part1///home/./ann/", "/part1/home/ann", "part1"),
        ("part2/a/../b", "/part2/b", "part2"),
        ("/part1/..", "/", None),
        ("/part1/../part2/x", "/part2/x", "part2"),
    ],
)
def test_paths_are_normalised(raw: str, text: str, filesystem: str | None) -> None:
    path = parse_path(raw)
    assert (path.text, path.filesystem) == (text, filesystem)


@pytest.mark.parametrize("raw", ["/..", "/part1/../../etc/passwd", "a\0b", "/" + "x" * 256])
def test_escapes_and_bad_names_are_refused(raw: str) -> None:
    with pytest.raises(FilePathInvalid):
        parse_path(raw)


def test_filesystems_are_named_after_their_partition() -> None:
    names = [filesystem_name(d) for d in ("/dev/sda1", "/dev/sda12", "/dev/sda", "/dev/vg/root")]
    assert names == ["part1", "part12", "disk", "vg-root"]
