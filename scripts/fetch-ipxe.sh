#!/usr/bin/env bash
# Fetch the iPXE binaries the boot stick needs into .tools/ipxe: ipxe-amd64.efi (UEFI; a build from 2021 on,
# which runs autoexec.ipxe from the stick) and ipxe.lkrn (legacy BIOS, through syslinux). They come from Debian
# trixie's `ipxe` package, pinned by version and sha256, downloaded with apt from the same mirror this machine's
# Debian sources use (so a LAN mirror works), without adding trixie to the system.
# Another source can be given with the stack setting `bootloader` instead. Fetched once per machine: later
# checkouts take them from the shared cache (scripts/cache.sh).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/cache.sh"
dest="$root/.tools/ipxe"
version="1.21.1+git20250501.dad20602+dfsg-1"
sha256="eeaca79dbde0fb86c102bf1d362c6f6a67ed0ddab38b3dd12e1b332339f5dd99"

if [ -f "$dest/ipxe-amd64.efi" ] && [ "$(cat "$dest/.version" 2>/dev/null)" = "$version" ]; then
    exit 0
fi
if from_cache "ipxe-$version-${sha256:0:16}" "$dest"; then
    echo "$version" > "$dest/.version"
    exit 0
fi

# The Debian archive this machine installs bookworm (or any suite) main from.
mirror="$(apt-cache policy 2>/dev/null | sed -n 's#^ *[0-9]* \(https\?://[^ ]*\) [a-z-]*/main amd64 Packages$#\1#p' | grep -v security | head -n1)"
[ -n "$mirror" ] || { echo "fetch-ipxe: no Debian mirror with a 'main' component in this machine's apt sources" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror trixie main" > "$work/sources.list"
apt_opts=(-q -o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o APT::Sandbox::User=root)
echo "Fetching Debian trixie's ipxe $version from $mirror" >&2
apt-get "${apt_opts[@]}" update >/dev/null
(cd "$work" && apt-get "${apt_opts[@]}" download "ipxe=$version" >/dev/null)
deb="$(ls "$work"/ipxe_*.deb)"
echo "$sha256  $deb" | sha256sum -c --quiet - || {
    echo "fetch-ipxe: $deb does not have the pinned sha256; refusing it" >&2
    exit 1
}
dpkg-deb -x "$deb" "$work/x"
mkdir -p "$dest"
install -m 0644 "$work/x/usr/lib/ipxe/ipxe-amd64.efi" "$work/x/usr/lib/ipxe/ipxe.lkrn" "$dest/"
to_cache "ipxe-$version-${sha256:0:16}" "$dest" ipxe-amd64.efi ipxe.lkrn
echo "$version" > "$dest/.version"
