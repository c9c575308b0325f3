#!/bin/bash
# Point this node's Namecheap dynamic DNS record at its current address and, on a server whose API server is
# ready, claim the shared {{ primary_host }} record too. NAMECHEAP_DDNS_PASSWORD comes from the stick and goes
# to curl on standard input, never onto a command line.
set -eu

# The address this node reaches the rest of the network from (the default route's source).
address=$(ip -4 route get 192.0.2.1 | sed -n 's/.* src \([0-9.]*\).*/\1/p')
if [ -z "$address" ]; then
    echo "no IPv4 default route yet" >&2
    exit 1
fi

update() {
    printf 'url = "%s?host=%s&domain=%s&password=%s&ip=%s"\n' \
        "{{ update_url }}" "$1" "{{ domain }}" "$NAMECHEAP_DDNS_PASSWORD" "$address" |
        curl -fsS -m 20 --retry 5 --retry-all-errors --retry-delay 10 -K - |
        grep -q '<ErrCount>0</ErrCount>' || { echo "updating $1 failed" >&2; return 1; }
    echo "$1.{{ domain }} -> $address"
}

update "{{ node_host }}"
{% if role == "server" %}
if {{ L.K3S_BINARY }} kubectl --kubeconfig {{ L.K3S_KUBECONFIG }} get --raw=/readyz >/dev/null 2>&1; then
    update "{{ primary_host }}"
fi
{% endif %}
