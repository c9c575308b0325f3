#!/bin/bash
# Point this node's dynamic DNS names at its current address: {{ names | map(attribute="fqdn") | join(", ") }}.
# A name shared by the servers is claimed only while the local k3s API server is ready: with RFC 2136 it holds
# every healthy server's address (a claim lasts {{ lease }} s unless renewed, and an unhealthy server releases its
# own); Namecheap keeps one address per name, the last healthy server's. The credentials
# (NAMECHEAP_DDNS_PASSWORD, DNS_TSIG_SECRET) come from the stick as environment, never on a command line.
set -u

# The address this node reaches the rest of the network from (the default route's source).
address=$(ip -4 route get 192.0.2.1 | sed -n 's/.* src \([0-9.]*\).*/\1/p')
if [ -z "$address" ]; then
    echo "no IPv4 default route yet" >&2
    exit 1
fi
failed=0
{% if namecheap %}

namecheap() {
    if printf 'url = "%s?host=%s&domain=%s&password=%s&ip=%s"\n' \
        "{{ namecheap.update_url }}" "$1" "{{ namecheap_domain }}" "$NAMECHEAP_DDNS_PASSWORD" "$address" |
        curl -fsS -m 20 --retry 5 --retry-all-errors --retry-delay 10 -K - | grep -q '<ErrCount>0</ErrCount>'; then
        echo "namecheap: $1.{{ namecheap_domain }} -> $address"
    else
        echo "namecheap: updating $1.{{ namecheap_domain }} failed" >&2
        failed=1
    fi
}
{% endif %}
{% if rfc2136 %}

# rfc2136 [-claim|-release] NAME: NAME alone, or this node's place in a name the servers share.
rfc2136() {
    {{ L.DNS_UPDATER }} -server "{{ rfc2136.endpoint }}" -zone {{ rfc2136.zone }} \
        -key-name {{ rfc2136.key_name }} -algorithm {{ rfc2136.algorithm }} -ttl {{ rfc2136.ttl }} \
        -lease {{ lease }}s "$@" A "$address" || failed=1
}
{% endif %}

healthy_server() {
    {{ L.K3S_BINARY }} kubectl --kubeconfig {{ L.K3S_KUBECONFIG }} get --raw=/readyz >/dev/null 2>&1
}
{% for name in names %}

{% if name.only_when_healthy_server %}
if healthy_server; then
{% if name.via_namecheap %}
    namecheap "{{ name.namecheap_host }}"
{% endif %}
{% if name.via_rfc2136 %}
    rfc2136 -claim "{{ name.fqdn }}"
else
    rfc2136 -release "{{ name.fqdn }}"
{% endif %}
fi
{% else %}
{% if name.via_namecheap %}
    namecheap "{{ name.namecheap_host }}"
{% endif %}
{% if name.via_rfc2136 %}
    rfc2136 "{{ name.fqdn }}"
{% endif %}
{% endif %}
{% endfor %}
exit "$failed"
