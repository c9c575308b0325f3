#!/bin/bash
# Put the server's files from the stick (made by pulumi up) where k3s reads them, before it starts, at every boot.
# The cluster's PKI: the same bytes each time, which k3s accepts; a file that differs from the datastore's copy
# and is newer stops k3s ("newer than datastore"), which is what a CA rotated without `k3s certificate rotate-ca`
# should do. And each chart's secret values, as a Secret manifest that k3s applies.
#   ephemeros-server-files         the PKI into {{ L.K3S_TLS_DIR }}, the secret values into the manifests
#   ephemeros-server-files DIR     only the PKI, into DIR laid out the same: `k3s certificate rotate-ca --path=DIR`
set -euo pipefail
target="${1:-{{ L.K3S_TLS_DIR }}}"
umask 077
{% for name, path in pki.items() %}
install -D -m {{ "0600" if path.endswith(".key") else "0644" }} {{ L.SECRETS_DIR }}/{{ name }} "$target/{{ path }}"
{% endfor %}
[ $# -eq 0 ] || exit 0
{% for name, path in manifests.items() %}
install -D -m 0600 {{ L.SECRETS_DIR }}/{{ name }} {{ path }}
{% endfor %}
