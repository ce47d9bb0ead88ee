"""Filesystem images made without root, for file-level restore tests and the benchmark:
ext4 (`mkfs.ext4 -d`), XFS (a protofile), FAT (`mkfs.vfat` + `mcopy`), a GPT or MBR table
(`sfdisk` on an image file) with the filesystems written at their partitions' offsets."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

MiB = 1 << 20
SECTOR = 512
TOOLS = ("mkfs.ext4", "mkfs.xfs", "mkfs.vfat", "mcopy", "sfdisk")


def need_image_tools() -> None:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: run scripts/setup-files.sh")


def source_tree(root: Path, *, links: bool = True) -> Path:
    """A small tree: text, a 3 MiB random file, nesting, an empty file, a non-ASCII name, and
    (with `links`) a relative link, an absolute one and one that climbs out."""
    (root / "docs" / "nested").mkdir(parents=True)
    (root / "hello.txt").write_bytes(b"hello from the backup\n")
    (root / "docs" / "report.bin").write_bytes(os.urandom(3 * MiB + 123))
    (root / "docs" / "nested" / "empty.txt").write_bytes(b"")
    (root / "docs" / "r\u00e9sum\u00e9.txt").write_bytes("caf\u00e9\n".encode())
    os.chmod(root / "hello.txt", 0o640)
    if links:
        (root / "report-link").symlink_to("docs/report.bin")
        (root / "passwd-link").symlink_to("/etc/passwd")
        (root / "docs" / "escape").symlink_to("../../../../../etc")
    return root


def ext4(image: Path, tree: Path, size: int, features: str = "") -> Path:
    """`features` as `mkfs.ext4 -O` takes them (e.g. `inline_data`: small files in their inode)."""
    _run(
        "mkfs.ext4",
        "-q",
        "-F",
        *(["-O", features] if features else []),
        "-E",
        "root_owner=0:0",
        "-d",
        str(tree),
        str(image),
        f"{size // 1024}k",
    )
    return image


def xfs(image: Path, tree: Path, size: int) -> Path:
    proto = image.with_suffix(".proto")
    proto.write_text("/dev/null\n0 0\nd--755 0 0\n" + _proto_entries(tree, 1) + "$\n")
    with image.open("wb") as handle:
        handle.truncate(size)
    _run("mkfs.xfs", "-q", "-f", "-p", str(proto), str(image))
    return image


def _proto_entries(directory: Path, depth: int) -> str:
    pad = " " * depth
    lines = []
    for entry in sorted(directory.iterdir()):
        mode = f"{entry.lstat().st_mode & 0o777:03o}"
        if entry.is_symlink():
            lines.append(f"{pad}{entry.name} l--{mode} 0 0 {os.readlink(entry)}\n")
        elif entry.is_dir():
            lines.append(f"{pad}{entry.name} d--{mode} 0 0\n")
            lines.append(_proto_entries(entry, depth + 1) + f"{pad}$\n")
        else:
            lines.append(f"{pad}{entry.name} ---{mode} 0 0 {entry}\n")
    return "".join(lines)


def vfat(image: Path, tree: Path, size: int) -> Path:
    image.unlink(missing_ok=True)
    _run("mkfs.vfat", "-C", str(image), str(size // 1024))
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
    plain = image.with_suffix(".tree")  # FAT has no links: a copy of the tree without them
    shutil.copytree(
        tree, plain, ignore=lambda d, names: [n for n in names if (Path(d) / n).is_symlink()]
    )
    for entry in sorted(plain.iterdir()):
        subprocess.run(
            ["mcopy", "-s", "-m", "-i", str(image), str(entry), "::"],
            check=True,
            capture_output=True,
            env=env,
        )
    return image


def partitioned(image: Path, size: int, label: str, parts: list[Path]) -> list[int]:
    """A `label` ("gpt" or "dos") table on a sparse `size`-byte image with `parts` written at
    their partitions' offsets (1 MiB aligned); the offsets."""
    with image.open("wb") as handle:
        handle.truncate(size)
    start = MiB
    script = [f"label: {label}"]
    offsets = []
    for part in parts:
        length = part.stat().st_size
        script.append(f"start={start // SECTOR}, size={length // SECTOR}, type=linux")
        offsets.append(start)
        start += (length + MiB - 1) // MiB * MiB
    if label == "gpt":
        script = [line.replace("type=linux", "type=L") for line in script]
    else:
        script = [line.replace("type=linux", "type=83") for line in script]
    subprocess.run(
        ["sfdisk", "-q", str(image)], input="\n".join(script) + "\n", text=True, check=True
    )
    with image.open("r+b") as disk:
        for part, offset in zip(parts, offsets, strict=True):
            _copy_sparse(part, disk, offset)
    return offsets


def _copy_sparse(part: Path, disk: object, offset: int) -> None:
    with part.open("rb") as source:
        position = 0
        while chunk := source.read(4 * MiB):
            if chunk.count(0) != len(chunk):
                disk.seek(offset + position)  # type: ignore[attr-defined]
                disk.write(chunk)  # type: ignore[attr-defined]
            position += len(chunk)


def corrupt_superblock(image: Path) -> Path:
    """Zero an ext4 image's primary superblock (its bytes 1024-2047)."""
    with image.open("r+b") as handle:
        handle.seek(1024)
        handle.write(b"\0" * 1024)
    return image


def _run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True)
