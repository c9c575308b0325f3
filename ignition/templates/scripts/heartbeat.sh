#!/bin/bash
# Ping this node's heartbeat check: its plain URL when the local k3s is healthy, its /fail URL (with the
# reason as the body) when it is not. HEARTBEAT_URL comes from the stick; it is a credential, so it goes to
# curl on standard input and never onto a command line.
set -u
role="${1:?usage: $0 server|agent}"

reason=""
if ! systemctl is-active --quiet {{ L.K3S_UNIT }}; then
    reason="{{ L.K3S_UNIT }} is $(systemctl is-active {{ L.K3S_UNIT }})"
elif [ "$role" = server ]; then
    if ! out=$({{ L.K3S_BINARY }} kubectl --kubeconfig {{ L.K3S_KUBECONFIG }} get --raw=/readyz 2>&1); then
        reason="API server not ready: $out"
    fi
elif ! curl -fsS -m 5 -o /dev/null http://127.0.0.1:10248/healthz; then
    reason="kubelet is not healthy"
fi

# What this node booted: its config, its boot script (which names the Flatcar release and the kernel arguments), the
# release itself and k3s. After `pulumi up`, a node that still reports an old digest (compare `pulumi stack output
# nodes`, or run `make status`) has not been rebooted yet.
config=$(cut -c1-12 {{ L.CONFIG_DIGEST }} 2>/dev/null)
boot=$(sed -n 's/.*\<{{ L.BOOT_DIGEST_ARG | replace(".", "\\.") }}=\([0-9a-f]\{12\}\).*/\1/p' /proc/cmdline)
flatcar=$(. /etc/os-release 2>/dev/null && echo "${VERSION:-}")
k3s=$({{ L.K3S_BINARY }} --version 2>/dev/null | head -n1 | cut -d' ' -f1-3)
booted="config ${config:-unknown}; boot ${boot:-unknown}; flatcar ${flatcar:-unknown}; ${k3s:-k3s version unknown}"

ping() {
    printf 'url = "%s"\n' "$1" |
        curl -fsS -m 20 --retry 5 --retry-all-errors --retry-delay 10 -o /dev/null \
            --data-raw "$(hostname): ${reason:-k3s $role healthy}; $booted" -K -
}

url="${HEARTBEAT_URL%/}"
if [ -n "$reason" ]; then
    url="$url/fail"
fi
ping "$url"
status=$?
# The cluster's check stays up while any server is healthy: only healthy servers ping it, never its /fail.
if [ -z "$reason" ] && [ -n "${CLUSTER_HEARTBEAT_URL:-}" ]; then
    ping "$CLUSTER_HEARTBEAT_URL" || status=1
fi
exit "$status"
