-- The cityops state database on PostgreSQL 15 (docs/operations.md, "PostgreSQL").
-- Run once as the superuser, with the password as a psql variable (not in this file):
--   sudo -u postgres psql -v ON_ERROR_STOP=1 -v password="$(cat /root/cityops-pg.pw)" \
--        -f deploy/postgresql/setup.sql
-- then in /etc/cityops/secrets.env:
--   CITYOPS_DATABASE__URL=postgresql+psycopg://cityops:PASSWORD@127.0.0.1:5432/cityops
-- The services create and upgrade their tables themselves (numbered migrations in
-- schema_migrations, applied by whichever starts first), as this role.

CREATE ROLE cityops LOGIN PASSWORD :'password';
-- A connection limit leaves room for the superuser when a pool runs away:
-- 3 services x SQLAlchemy's 5 + 10 overflow = 45, plus the CLI.
ALTER ROLE cityops CONNECTION LIMIT 60;

-- UTF-8 whatever the cluster's default: unit names and notes are Vietnamese.
CREATE DATABASE cityops OWNER cityops ENCODING 'UTF8' TEMPLATE template0;
REVOKE ALL ON DATABASE cityops FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE cityops TO cityops;

\connect cityops
-- The tables live in public, which cityops owns: nobody else may create objects there.
ALTER SCHEMA public OWNER TO cityops;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
