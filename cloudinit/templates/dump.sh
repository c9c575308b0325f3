#!/bin/bash
# ephemeros-dump SCHEDULE KEEP: dump the k3s database to the bucket under <prefix><SCHEDULE>/, keep the newest KEEP
# there, and report the run to the dumps' heartbeat check (/start, then success or the exit status). pipefail:
# a failing pg_dump fails the run, whatever rclone says after it.
set -uo pipefail
schedule="${1:?usage: ephemeros-dump SCHEDULE KEEP}"
keep="${2:?usage: ephemeros-dump SCHEDULE KEEP}"
folder="{{ D.RCLONE_REMOTE }}:{{ bucket }}/{{ prefix }}$schedule"
ping_url="${HEARTBEAT_URL:-}"

{% include "dumps-helpers.sh" %}

dump() {
    set -e
    name="k3s-$(date -u +%Y%m%dT%H%M%SZ).dump"
    as_postgres pg_dump --format=custom --dbname={{ D.DATABASE }} | rclone rcat "$folder/$name"
    rclone lsf --files-only "$folder/" | sort | head -n -"$keep" | while read -r old; do
        rclone deletefile "$folder/$old"
    done
    echo "$schedule dump $name; kept the newest $keep"
}

ping /start "$schedule dump starting"
output=$( (dump) 2>&1 )
status=$?
echo "$output"
ping "/$status" "$output"
exit "$status"
