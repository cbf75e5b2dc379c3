#!/bin/sh
# Create the cityops database, its retention policy and users on InfluxDB 1.x with
# [http] auth-enabled = true (deploy/influxdb/influxdb.conf). Safe to run again: it
# changes passwords and privileges to what the environment says.
#
#   INFLUX_ADMIN_PASSWORD=...  INFLUX_INGEST_PASSWORD=...  INFLUX_DASHBOARD_PASSWORD=... \
#   INFLUX_ALERTS_PASSWORD=...  sh deploy/influxdb/setup.sh
#
# Optional: INFLUX_URL (http://127.0.0.1:8086), INFLUX_DATABASE (cityops),
# INFLUX_RETENTION (400d: raw readings are kept this long), INFLUX_ADMIN_USER (admin),
# INFLUX_INGEST_USER (cityops_ingest), INFLUX_DASHBOARD_USER (cityops_dashboard),
# INFLUX_ALERTS_USER (cityops_alerts).
# Talks HTTP with curl: Debian's influxdb 1.6 package has no `influx` shell.
set -eu

url=${INFLUX_URL:-http://127.0.0.1:8086}
database=${INFLUX_DATABASE:-cityops}
retention=${INFLUX_RETENTION:-400d}
admin=${INFLUX_ADMIN_USER:-admin}
ingest_user=${INFLUX_INGEST_USER:-cityops_ingest}
dashboard_user=${INFLUX_DASHBOARD_USER:-cityops_dashboard}
alerts_user=${INFLUX_ALERTS_USER:-cityops_alerts}

fail() {
    echo "setup.sh: $*" >&2
    exit 1
}

need() {  # need NAME VALUE: a password that is set and safe inside an InfluxQL string
    [ -n "$2" ] || fail "thiếu / missing $1"
    case $2 in
        *\'* | *\"* | *\\*) fail "$1 must not contain quotes or backslashes" ;;
    esac
}
need INFLUX_ADMIN_PASSWORD "${INFLUX_ADMIN_PASSWORD:-}"
need INFLUX_INGEST_PASSWORD "${INFLUX_INGEST_PASSWORD:-}"
need INFLUX_DASHBOARD_PASSWORD "${INFLUX_DASHBOARD_PASSWORD:-}"
need INFLUX_ALERTS_PASSWORD "${INFLUX_ALERTS_PASSWORD:-}"
printf '%s' "$database" | grep -Eq '^[A-Za-z_][A-Za-z0-9_]*$' ||
    fail "INFLUX_DATABASE must be letters, digits and _: '$database'"
printf '%s' "$retention" | grep -Eq '^([0-9]+[hdw]|INF)$' ||
    fail "INFLUX_RETENTION must be like 400d, 52w, 720h or INF: '$retention'"

# Credentials go to curl through a 0600 file, not the command line (ps shows that).
curl_config=$(mktemp)
trap 'rm -f "$curl_config"' EXIT
printf 'user = "%s:%s"\n' "$admin" "$INFLUX_ADMIN_PASSWORD" >"$curl_config"

answer=""
query() {  # query STATEMENT: POST /query as the admin; fails on any error in the answer
    answer=$(printf '%s' "$1" | curl -sS -K "$curl_config" -w '\n%{http_code}' \
        --data-urlencode 'q@-' "$url/query") || fail "InfluxDB at $url does not answer"
    code=$(printf '%s\n' "$answer" | tail -n 1)
    answer=$(printf '%s\n' "$answer" | sed '$d')
    [ "$code" = 200 ] || return 1
    case $answer in *'"error"'*) return 1 ;; esac
}

# 1. The admin. With no admin yet, InfluxDB takes only this statement, without a password.
query "CREATE USER \"$admin\" WITH PASSWORD '$INFLUX_ADMIN_PASSWORD' WITH ALL PRIVILEGES" ||
    query "SET PASSWORD FOR \"$admin\" = '$INFLUX_ADMIN_PASSWORD'" ||
    fail "cannot create or sign in as the admin '$admin' (wrong INFLUX_ADMIN_PASSWORD?): $answer"

# 2. The database, and the retention policy "raw" as its default: cityops writes with
#    store.influxdb.retention_policy: null, i.e. into the default policy.
query "CREATE DATABASE \"$database\"" || fail "CREATE DATABASE $database: $answer"
query "SHOW RETENTION POLICIES ON \"$database\"" || fail "SHOW RETENTION POLICIES: $answer"
case $answer in
    *'["raw",'*) verb=ALTER ;;
    *) verb=CREATE ;;
esac
query "$verb RETENTION POLICY \"raw\" ON \"$database\" DURATION $retention REPLICATION 1 DEFAULT" ||
    fail "$verb RETENTION POLICY raw: $answer"

# 3. One user per service, with only what it needs.
user() {  # user NAME PASSWORD PRIVILEGE
    query "CREATE USER \"$1\" WITH PASSWORD '$2'" ||
        query "SET PASSWORD FOR \"$1\" = '$2'" || fail "user $1: $answer"
    query "REVOKE ALL PRIVILEGES ON \"$database\" FROM \"$1\"" || fail "revoke $1: $answer"
    query "GRANT $3 ON \"$database\" TO \"$1\"" || fail "grant $3 to $1: $answer"
    echo "$1: $3 on $database"
}
user "$ingest_user" "$INFLUX_INGEST_PASSWORD" WRITE         # cityops ingest: writes only
user "$dashboard_user" "$INFLUX_DASHBOARD_PASSWORD" READ    # cityops dashboard: reads only
user "$alerts_user" "$INFLUX_ALERTS_PASSWORD" ALL           # cityops alerts: reads, writes VN_AQI

echo "OK: database $database, retention raw $retention (default), admin $admin"
