#!/bin/sh
# The postgres:15 container's first start (deploy/compose.yaml): runs setup.sql with the
# password of the cityops role from POSTGRES_CITYOPS_PASSWORD (/etc/cityops/postgres.env).
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v password="$POSTGRES_CITYOPS_PASSWORD" -f /opt/cityops/setup.sql
