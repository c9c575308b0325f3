#!/bin/bash
# Ask kured for a reboot when what is served for this node now differs from what it booted (its Ignition config,
# its boot script), or when it has been up {{ max_uptime_days }} days (0: no limit): write kured's sentinel
# {{ L.REBOOT_SENTINEL }} with the reasons. The sentinel is on tmpfs, so the reboot clears it. When nothing differs
# any more (a change undone before the reboot), a sentinel this check wrote is removed; anyone else's is kept. A
# fetch that fails changes nothing and fails the unit, so a broken server never reboots the cluster.
# EPHEMEROS_ROOT (for tests only) runs the check against a scratch root instead of /.
set -euo pipefail
root="${EPHEMEROS_ROOT:-}"
sentinel="$root{{ L.REBOOT_SENTINEL }}"
config_url='{{ config_url }}'
boot_url='{{ boot_url }}'
max_uptime_days={{ max_uptime_days }}
mark="ephemeros-update-check"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

fetch() {
    if ! curl -fsS --max-time 60 --retry 3 --retry-delay 5 --retry-connrefused -o "$2" "$1"; then
        echo "cannot fetch $1: nothing compared, nothing changed" >&2
        exit 1
    fi
}

reasons=""  # each ends with "; "

# The Ignition config: the node booted the digest in {{ L.CONFIG_DIGEST }}; the served config holds the same file
# with the digest of the config now served, as one data: URL in Ignition's canonical JSON.
booted_config="$(cat "$root{{ L.CONFIG_DIGEST }}")"
fetch "$config_url" "$work/config"
served_config="$(grep -o '"source":"data:,[0-9a-f]\{64\}%0A"},"mode":[0-9]*,"overwrite":true,"path":"{{ L.CONFIG_DIGEST }}"' \
    "$work/config" | grep -o '[0-9a-f]\{64\}' | head -n 1 || true)"
if [ -z "$served_config" ]; then
    echo "$config_url holds no {{ L.CONFIG_DIGEST }}: is it this node's ephemeros config? Nothing changed" >&2
    exit 1
fi
if [ "$served_config" != "$booted_config" ]; then
    reasons+="config ${booted_config:0:12} booted, ${served_config:0:12} served; "
fi

# The boot script: the node booted with {{ L.BOOT_DIGEST_ARG }}=<sha256 of the script, that value left out> on its
# kernel command line (bootmedia.boot_script.boot_digest).
booted_boot="$(tr ' ' '\n' < "$root/proc/cmdline" | sed -n 's/^{{ boot_arg }}=\([0-9a-f]\{64\}\)$/\1/p' | head -n 1)"
if [ -z "$booted_boot" ]; then
    echo "booted without {{ L.BOOT_DIGEST_ARG }}= (from a stick older than served boot scripts: write it again); boot script not compared" >&2
else
    fetch "$boot_url" "$work/boot"
    served_boot="$(sed '0,/ {{ boot_arg }}=[0-9a-f]*/s// {{ L.BOOT_DIGEST_ARG }}=/' "$work/boot" | sha256sum | cut -d ' ' -f 1)"
    if [ "$served_boot" != "$booted_boot" ]; then
        reasons+="boot script ${booted_boot:0:12} booted, ${served_boot:0:12} served; "
    fi
fi

if [ "$max_uptime_days" -gt 0 ]; then
    up="$(cut -d . -f 1 "$root/proc/uptime")"
    if [ "$up" -ge $((max_uptime_days * 86400)) ]; then
        reasons+="up $((up / 86400)) days, the most is $max_uptime_days; "
    fi
fi

# A config that needs a file the node's stick lacks (a feature turned on whose secrets only a new stick carries) waits
# for that stick: booting the config with the old stick would leave the feature broken.
needed="$(grep -o '"source":"data:,[^"]*"},"mode":[0-9]*,"overwrite":true,"path":"{{ L.STICK_FILES }}"' \
    "$work/config" | sed 's/^"source":"data:,\([^"]*\)".*/\1/; s/%0A/ /g' || true)"
missing=""
for name in $needed; do
    [ -e "$root{{ L.SECRETS_DIR }}/$name" ] || missing+="$name "
done
if [ -n "$reasons" ] && [ -n "$missing" ]; then
    if [ -f "$sentinel" ] && grep -q "^$mark: " "$sentinel"; then
        rm -f "$sentinel"
    fi
    echo "reboot needed, but not before this node's stick is written again: the config served needs ${missing% } on" \
        "it (pulumi up made the new image); then reboot it. Nothing asked of kured meanwhile: ${reasons%; }"
    exit 0
fi

if [ -n "$reasons" ]; then
    mkdir -p "$(dirname "$sentinel")"
    printf '%s: %s\n' "$mark" "${reasons%; }" > "$sentinel.new"
    mv -f "$sentinel.new" "$sentinel"
    echo "reboot needed: ${reasons%; }"
elif [ -f "$sentinel" ] && grep -q "^$mark: " "$sentinel"; then
    rm -f "$sentinel"
    echo "no reboot needed any more: the sentinel is removed"
else
    echo "up to date: config ${booted_config:0:12}"
fi
