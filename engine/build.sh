#!/usr/bin/env bash
# Build the Pulumi engine from Go modules into .tools/bin: the CLI (engine/cli pins github.com/pulumi/pulumi/pkg/v3),
# our Python language host (engine/langhost), and the two helper scripts that ship inside the SDK module
# (pulumi-language-python-exec and the dynamic-provider shim pulumi-resource-pulumi-python).
# Versions and checksums are pinned by the go.mod and go.sum files; the Pulumi version must equal the pulumi
# Python package's in requirements.txt. A stamp of the inputs makes a second run return at once, and an engine built
# before by any checkout on this machine is taken from the shared cache (scripts/cache.sh).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/cache.sh"
bin="$root/.tools/bin"
version="$(sed -n 's/^pulumi==\([0-9.]*\).*/\1/p' "$root/requirements.txt")"
[ -n "$version" ] || { echo "engine/build.sh: no pulumi==<version> pin in requirements.txt" >&2; exit 1; }

command -v go >/dev/null || { echo "engine/build.sh: Go is needed to build the Pulumi engine (https://go.dev/dl)" >&2; exit 1; }
export GOFLAGS="-mod=readonly -buildvcs=false"  # a Go older than go.mod asks for fetches the right toolchain

stamp="$( { echo "$version"; go version; cat "$root"/engine/cli/go.{mod,sum} "$root"/engine/langhost/*; } | sha256sum | cut -d' ' -f1)"
if [ -x "$bin/pulumi" ] && [ "$(cat "$bin/.engine-stamp" 2>/dev/null)" = "$stamp" ]; then
    exit 0
fi

mkdir -p "$bin"
rm -f "$bin/.engine-stamp"
if ! from_cache "engine-$stamp" "$bin"; then
    echo "Building Pulumi $version from Go modules into $bin (the first build takes a few minutes)..." >&2
    (cd "$root/engine/cli" && go build -trimpath \
        -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$version" \
        -o "$bin/.pulumi.tmp" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi)
    (cd "$root/engine/langhost" && go build -trimpath -ldflags "-s -w -X main.version=$version" \
        -o "$bin/.pulumi-language-python.tmp" .)
    mv -f "$bin/.pulumi.tmp" "$bin/pulumi"
    mv -f "$bin/.pulumi-language-python.tmp" "$bin/pulumi-language-python"
    sdk="$(cd "$root/engine/langhost" && go list -m -f '{{.Dir}}' github.com/pulumi/pulumi/sdk/v3)"
    install -m 0755 "$sdk/python/cmd/pulumi-language-python-exec" "$sdk/python/dist/pulumi-resource-pulumi-python" \
        "$bin/"
    to_cache "engine-$stamp" "$bin" pulumi pulumi-language-python pulumi-language-python-exec \
        pulumi-resource-pulumi-python
fi
echo "$stamp" > "$bin/.engine-stamp"
"$bin/pulumi" version >&2
