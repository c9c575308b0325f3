#!/bin/bash
# kured's sentinel command, run on the host (kured enters its mount namespace): exit 0 when this node should
# reboot now, 1 when not. A reboot is asked for by {{ L.REBOOT_SENTINEL }}.
{% if server %}
# kured reboots one node at a time, but knows nothing of a server that is down for another reason: this server
# reboots only while every other server is Ready, so that two servers are never down together (with embedded etcd,
# three servers would lose their quorum). The servers are the Nodes k3s labels {{ L.CONTROL_PLANE_LABEL }}=true,
# read at every run, so that adding or removing one changes no other server's config: a server with no Node (not
# joined yet, or removed with kubectl delete node) holds nothing back, and when the API does not answer, nothing is
# known and the reboot waits.
{% endif %}
# EPHEMEROS_ROOT (for tests only) runs it against a scratch root instead of /.
set -u
root="${EPHEMEROS_ROOT:-}"
[ -f "$root{{ L.REBOOT_SENTINEL }}" ] || exit 1
{% if server %}
listed="$("$root{{ L.OPT_BIN }}/kubectl" --kubeconfig "$root{{ L.K3S_KUBECONFIG }}" --request-timeout=20s \
    get nodes --selector '{{ L.CONTROL_PLANE_LABEL }}=true' \
    -o 'jsonpath={range .items[*]}{"server "}{.metadata.name}{" "}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' \
    2>&1)" || { echo "reboot held back: the servers could not be listed (${listed})"; exit 1; }
# Only the lines that start with "server": kubectl may print warnings too.
while read -r word name ready; do
    [ "$word" = server ] && [ "$name" != "{{ node_name }}" ] || continue
    if [ "$ready" != True ]; then
        echo "reboot held back: server $name is not Ready (${ready:-no Ready condition})"
        exit 1
    fi
done <<< "$listed"
{% endif %}
exit 0
