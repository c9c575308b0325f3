#!/usr/bin/env bash
# Build the programs ephemeros serves to its nodes next to their Ignition configs, into .tools/nodetools:
#   ephemeros-dnsupdate     RFC 2136 updates with TSIG                        (from nodetools/dnsupdate)
#   ephemeros-etcd-rejoin   a wiped k3s server's stale etcd member removed    (from nodetools/etcdrejoin)
# Static, reproducible (same source, same bytes), pinned by go.mod and go.sum. Each program has its own stamp of
# its inputs, so a second run returns at once and a changed program rebuilds alone; a program built before by any
# checkout on this machine is taken from the shared cache (scripts/cache.sh).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/cache.sh"
out="$root/.tools/nodetools"
command -v go >/dev/null || { echo "nodetools/build.sh: Go is needed (https://go.dev/dl)" >&2; exit 1; }
export GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=0 GOOS=linux GOARCH=amd64

# build DIRECTORY BINARY: nodetools/DIRECTORY into $out/BINARY, unless its stamp says it is built already.
build() {
    local dir="$root/nodetools/$1" binary="$2" stamp
    stamp="$( { go version; cat "$dir"/*; } | sha256sum | cut -d' ' -f1)"
    if [ -x "$out/$binary" ] && [ "$(cat "$out/.$1.stamp" 2>/dev/null)" = "$stamp" ]; then
        return 0
    fi
    mkdir -p "$out"
    rm -f "$out/.$1.stamp"
    if ! from_cache "nodetools-$1-$stamp" "$out"; then
        (cd "$dir" && go build -trimpath -ldflags "-s -w -buildid=" -o "$out/.$binary.tmp" .)
        mv -f "$out/.$binary.tmp" "$out/$binary"
        to_cache "nodetools-$1-$stamp" "$out" "$binary"
    fi
    echo "$stamp" > "$out/.$1.stamp"
}

build dnsupdate ephemeros-dnsupdate
build etcdrejoin ephemeros-etcd-rejoin
