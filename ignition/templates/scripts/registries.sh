#!/bin/bash
# Assemble k3s's {{ L.REGISTRIES_FILE }} before k3s starts, at every boot: its public part from the Ignition
# ({{ L.REGISTRIES_PUBLIC }}: the mirrors, and the TLS of hosts without credentials), then, when the stick has one,
# its secret part ({{ L.SECRETS_DIR }}/{{ L.REGISTRIES_AUTH }}: the entries of the hosts with credentials). The
# public part ends with its `configs:` mapping, and the secret part holds only entries of it, so they join as text.
# EPHEMEROS_ROOT (for tests only) runs it against a scratch root instead of /.
set -euo pipefail
root="${EPHEMEROS_ROOT:-}"
target="$root{{ L.REGISTRIES_FILE }}"
umask 077
mkdir -p "$(dirname "$target")"
cat "$root{{ L.REGISTRIES_PUBLIC }}" > "$target.new"
if [ -f "$root{{ L.SECRETS_DIR }}/{{ L.REGISTRIES_AUTH }}" ]; then
    cat "$root{{ L.SECRETS_DIR }}/{{ L.REGISTRIES_AUTH }}" >> "$target.new"
fi
mv -f "$target.new" "$target"
