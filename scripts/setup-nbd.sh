#!/usr/bin/env bash
# Disks over NBD and VM disks in a hypervisor need Debian's QEMU tools, nbdkit with its Python
# plugin and libnbd (its Python binding is Debian's only: there is none on PyPI); the tests
# drive real QEMU (TCG, no KVM needed). Install them once when any is missing.
# `--runtime`: only what the service itself runs (nbdkit and its Python plugin), for ./scripts/serve.
set -euo pipefail
packages=(qemu-utils qemu-system-x86 nbdkit nbdkit-plugin-python libnbd-bin python3-libnbd)
if [ "${1:-}" = "--runtime" ]; then
    packages=(nbdkit nbdkit-plugin-python)
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
