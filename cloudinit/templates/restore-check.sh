#!/bin/bash
# {{ D.RESTORE_CHECK }}: prove that the newest dump restores. Restore it into a scratch database, check that the
# kine table is there and holds rows, drop the database, and report to the restore check's heartbeat (/start,
# then success or the exit status, with what was found).
set -uo pipefail
bucket="{{ D.RCLONE_REMOTE }}:{{ bucket }}/{{ prefix }}"
scratch="{{ D.RESTORE_CHECK_DATABASE }}"
ping_url="${RESTORE_CHECK_URL:-}"

{% include "dumps-helpers.sh" %}

check() {
    set -e
    # Dumps are named k3s-<UTC time>.dump: the newest of every schedule's folder sorts last.
    newest=$(
        for schedule in {{ schedules | map(attribute="name") | join(" ") }}; do
            rclone lsf --files-only "$bucket$schedule/" | sed "s|^|$schedule/|"
        done | sort -t / -k 2 | tail -n 1
    )
    if [ -z "$newest" ]; then
        echo "no dump in $bucket to restore"
        return 1
    fi
    as_postgres dropdb --if-exists "$scratch"
    as_postgres createdb -O {{ D.ROLE }} "$scratch"
    rclone cat "$bucket$newest" | as_postgres pg_restore --no-owner --role={{ D.ROLE }} --exit-on-error -d "$scratch"
    rows=$(as_postgres psql --no-psqlrc -tA -d "$scratch" -c "SELECT count(*) FROM kine")
    if [ "$rows" -eq 0 ]; then
        echo "restored $newest, but its kine table is empty"
        return 1
    fi
    echo "restored $newest: its kine table holds $rows rows"
}

ping /start "restore check starting"
output=$( (check) 2>&1 )
status=$?
as_postgres dropdb --if-exists "$scratch" || status=1
echo "$output"
ping "/$status" "$output"
exit "$status"
