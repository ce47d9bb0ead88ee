#!/usr/bin/env bash
# Start the S3-compatible object store the tests use: OpenStack Swift with s3api on
# 127.0.0.1:18080 (access key test:tester, secret testing), via ../shared/scripts/start-swift-s3.sh
# (beside the repository). Idempotent: a store that is already running is left as it is.
# Run by scripts/test (any scripts/setup-*.sh); runnable on its own.
set -euo pipefail
cd "$(dirname "$0")/.."
starter=../shared/scripts/start-swift-s3.sh
if [ ! -f "$starter" ]; then
    echo "setup-swift: $starter not found; S3 tests will be skipped" >&2
    exit 0
fi
if bash "$starter" status >/dev/null 2>&1; then
    echo "setup-swift: S3 store already running" >&2
    exit 0
fi
bash "$starter" start >&2
