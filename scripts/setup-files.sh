#!/usr/bin/env bash
# File-level restore parses a backup's filesystems inside libguestfs's small QEMU appliance
# (the kernel's own drivers, sandboxed from the service): libguestfs-tools, its Python binding
# (Debian's only: none on PyPI) and a kernel for the appliance. The tests also make filesystem
# images without root: e2fsprogs (mkfs.ext4 -d), xfsprogs (protofile), dosfstools + mtools
# (mkfs.vfat + mcopy), fdisk (sfdisk).
# `--runtime`: only what the service itself runs, for ./scripts/serve.
set -euo pipefail
packages=(libguestfs-tools python3-guestfs linux-image-amd64 qemu-utils e2fsprogs xfsprogs dosfstools mtools fdisk)
if [ "${1:-}" = "--runtime" ]; then
    packages=(libguestfs-tools python3-guestfs linux-image-amd64 qemu-utils)
fi
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing ${missing[*]}" >&2
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
