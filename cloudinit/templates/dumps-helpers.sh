{# The helpers that dump.sh and restore-check.sh share, included in each. #}
# ping SUFFIX BODY: report to the heartbeat check whose URL is in $ping_url (none: nothing to report); a ping that
# fails never fails the run.
ping() {
    [ -n "$ping_url" ] || return 0
    printf 'url = "%s%s"\n' "$ping_url" "$1" |
        curl -fsS -m 20 --retry 5 --retry-all-errors --retry-delay 10 -o /dev/null --data-raw "$2" -K - || true
}

# as_postgres COMMAND...: COMMAND as postgres with an empty environment: the bucket's keys and the ping URLs stay
# with root.
as_postgres() {
    runuser -u postgres -- env -i PATH=/usr/bin:/bin "$@"
}
