#!/usr/bin/env bash
# Build the programs ephemeros serves to its nodes next to their Ignition configs, into .tools/nodetools:
# ephemeros-dnsupdate (RFC 2136 updates with TSIG, from nodetools/dnsupdate). Static, reproducible (same
# source, same bytes), pinned by go.mod and go.sum. A second run returns at once.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$root/.tools/nodetools"
command -v go >/dev/null || { echo "nodetools/build.sh: Go is needed (https://go.dev/dl)" >&2; exit 1; }
export GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=0 GOOS=linux GOARCH=amd64

stamp="$( { go version; cat "$root"/nodetools/dnsupdate/*; } | sha256sum | cut -d' ' -f1)"
if [ -x "$out/ephemeros-dnsupdate" ] && [ "$(cat "$out/.stamp" 2>/dev/null)" = "$stamp" ]; then
    exit 0
fi
mkdir -p "$out"
(cd "$root/nodetools/dnsupdate" && go build -trimpath -ldflags "-s -w -buildid=" -o "$out/ephemeros-dnsupdate" .)
echo "$stamp" > "$out/.stamp"
