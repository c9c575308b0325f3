#!/usr/bin/env bash
# Build the real servers and clients the tests run on loopback, into .tools/testtools/bin:
#   etcd            etcd, etcdctl                (testtools/etcd pins go.etcd.io/etcd/server/v3 and etcdctl/v3)
#   kine            kine                         (testtools/kine pins github.com/k3s-io/kine)
#   kube-apiserver  kube-apiserver, kubectl      (testtools/kube-apiserver pins k8s.io/kubernetes)
#   versitygw       versitygw                    (testtools/versitygw pins github.com/versity/versitygw)
#   helm-crds       crds/helm.cattle.io_*.yaml   (testtools/helm-crds pins github.com/k3s-io/helm-controller; no build)
# Usage: testtools/build.sh [tool ...]   (no tool: all of them)
# Each directory is a wrapper Go module whose go.mod and go.sum pin the versions and checksums; the binaries are
# static (CGO_ENABLED=0) linux/amd64 builds. Each tool has its own stamp of its inputs, so a second run returns at
# once and a changed pin rebuilds only that tool; a tool built before by any checkout on this machine is taken from
# the shared cache (scripts/cache.sh). The Makefile builds the tools side by side, one process each.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/cache.sh"
out="$root/.tools/testtools"
bin="$out/bin"
recipe_version=1  # bump when a change here should rebuild every tool
all_tools=(etcd kine kube-apiserver versitygw helm-crds)

command -v go >/dev/null || { echo "testtools/build.sh: Go is needed to build the test tools (https://go.dev/dl)" >&2; exit 1; }
export GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=0 GOOS=linux GOARCH=amd64

# recipe TOOL sets: module (whose version names the build), binaries (name=package ...), tags, xflags (-X flags;
# @V@ stands for the module's version), note (said while building).
recipe() {
    tags="" xflags="" note=""
    case "$1" in
    etcd)
        module=go.etcd.io/etcd/server/v3
        binaries="etcd=go.etcd.io/etcd/server/v3 etcdctl=go.etcd.io/etcd/etcdctl/v3" ;;  # its version is a constant
    kine)
        module=github.com/k3s-io/kine
        binaries="kine=github.com/k3s-io/kine"
        tags="nats"  # as upstream's scripts/build; without cgo its sqlite driver is modernc.org/sqlite
        xflags="-X github.com/k3s-io/kine/pkg/version.Version=@V@" ;;
    kube-apiserver)
        module=k8s.io/kubernetes
        binaries="kube-apiserver=k8s.io/kubernetes/cmd/kube-apiserver kubectl=k8s.io/kubernetes/cmd/kubectl"
        tags="selinux,notest,grpcnotrace"  # as upstream's hack/lib/golang.sh for release builds
        local p
        for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
            xflags+=" -X $p.gitVersion=@V@ -X $p.gitMajor=@MAJOR@ -X $p.gitMinor=@MINOR@"
        done
        note=" (first build takes several minutes)" ;;
    versitygw)
        module=github.com/versity/versitygw
        binaries="versitygw=github.com/versity/versitygw/cmd/versitygw"
        xflags="-X main.Version=@V@" ;;
    *)
        echo "testtools/build.sh: unknown tool '$1' (known: ${all_tools[*]})" >&2; exit 2 ;;
    esac
}

# helm-crds: the CRDs k3s's helm-controller module ships, copied out of the verified module download.
fetch_crds() {
    local dir="$root/testtools/helm-crds" stamp source
    stamp="$( { echo "$recipe_version"; cat "$dir"/go.mod "$dir"/go.sum; } | sha256sum | cut -d' ' -f1)"
    if [ -f "$out/crds/helm.cattle.io_helmcharts.yaml" ] && [ "$(cat "$out/helm-crds.stamp" 2>/dev/null)" = "$stamp" ]; then
        return 0
    fi
    rm -f "$out/helm-crds.stamp"
    if ! from_cache "helm-crds-$stamp" "$out/crds"; then
        source="$(cd "$dir" && go mod download -json github.com/k3s-io/helm-controller | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')"
        mkdir -p "$out/crds"
        install -m 0644 "$source"/pkg/crds/yaml/generated/helm.cattle.io_*.yaml "$out/crds/"
        (cd "$out/crds" && to_cache "helm-crds-$stamp" . helm.cattle.io_*.yaml)
    fi
    echo "$stamp" > "$out/helm-crds.stamp"
}

build_tool() {
    local tool="$1" dir="$root/testtools/$1" name pkg have=1 stamp version ldflags names
    if [ "$tool" = helm-crds ]; then
        fetch_crds
        return 0
    fi
    recipe "$tool"
    stamp="$( { echo "$recipe_version $CGO_ENABLED $GOOS $GOARCH $GOFLAGS|$module|$binaries|$tags|$xflags"; go version
                (cd "$dir" && find . -type f | LC_ALL=C sort | xargs sha256sum); } | sha256sum | cut -d' ' -f1)"
    for name in $binaries; do [ -x "$bin/${name%%=*}" ] || have=0; done
    if [ "$have" = 1 ] && [ "$(cat "$out/$tool.stamp" 2>/dev/null)" = "$stamp" ]; then
        return 0
    fi

    mkdir -p "$bin"
    rm -f "$out/$tool.stamp"
    if from_cache "$tool-$stamp" "$bin"; then
        echo "$stamp" > "$out/$tool.stamp"
        return 0
    fi

    version="$(cd "$dir" && go list -m -f '{{.Version}}' "$module")"
    echo "Building $tool $version$note..." >&2
    ldflags="${xflags//@V@/$version}"
    if [[ "$version" =~ ^v([0-9]+)\.([0-9]+)\. ]]; then
        ldflags="${ldflags//@MAJOR@/${BASH_REMATCH[1]}}"
        ldflags="${ldflags//@MINOR@/${BASH_REMATCH[2]}}"
    fi
    names=()
    for name in $binaries; do
        pkg="${name#*=}" name="${name%%=*}"
        # One binary at a time: linking kube-apiserver alone peaks at a few GB.
        (cd "$dir" && go build -trimpath -tags "$tags" -ldflags "-s -w -buildid= $ldflags" -o "$bin/.$name.tmp" "$pkg")
        mv -f "$bin/.$name.tmp" "$bin/$name"
        names+=("$name")
    done
    to_cache "$tool-$stamp" "$bin" "${names[@]}"
    echo "$stamp" > "$out/$tool.stamp"
}

[ $# -gt 0 ] || set -- "${all_tools[@]}"
for tool in "$@"; do
    build_tool "$tool"
done
