#!/usr/bin/env bash
# The console's browser tests drive Debian's chromium (Playwright's own browser download
# needs the internet); install it once when it is missing.
set -euo pipefail
command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)
