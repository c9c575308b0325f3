#!/usr/bin/env bash
# Link .tools/test-assets to the shared cache (scripts/cache.sh), where every checkout on this machine finds the
# tests' assets, and build them there now (harness/build_assets.py), so that the tests find them ready.
# A .tools/test-assets that is a directory (made before the cache was shared) is kept as it is.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/cache.sh"
link="$root/.tools/test-assets"
mkdir -p "$cache/test-assets" "$root/.tools"
if [ -L "$link" ] || [ ! -e "$link" ]; then
    ln -sfn "$cache/test-assets" "$link"
fi
cd "$root"
exec "$root/.venv/bin/python" -m harness.build_assets
