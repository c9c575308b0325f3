#!/bin/bash
# ephemeros: bring PostgreSQL up with the configuration above, once the packages are installed: the package
# started it with its defaults. Then make the k3s role and database, and start the dump timers. First of all,
# only root may ask the metadata service from now on (and at every boot).
set -euo pipefail
systemctl daemon-reload
systemctl enable --now {{ D.METADATA_UNIT }}
for dir in /etc/postgresql/*/main/conf.d; do
    install -o postgres -g postgres -m 0644 {{ D.CONFIG }} "$dir/ephemeros.conf"
done
systemctl restart postgresql
for attempt in $(seq 1 60); do
    pg_isready --quiet && break
    sleep 2
done
pg_isready
runuser -u postgres -- psql --no-psqlrc --quiet --set ON_ERROR_STOP=1 < {{ D.SETUP_SQL }}  # root reads it, 0600
rm -f {{ D.SETUP_SQL }}
{% for schedule in schedules %}
systemctl enable --now {{ schedule.timer }}
{% endfor %}
{% if schedules %}
systemctl enable --now {{ D.RESTORE_CHECK }}.timer
{% endif %}
echo "{{ D.READY_MESSAGE }}"
