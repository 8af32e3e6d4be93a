#!/bin/sh
# Patroni's post_bootstrap: creates the application's roles, database, grants and extensions on the
# new cluster's first primary. Patroni passes the superuser's connection string as the argument.
set -eu
connection="$1"
exec /usr/lib/postgresql/15/bin/psql --no-psqlrc --quiet --set ON_ERROR_STOP=1 --dbname "$connection" <<'SQL'
SET log_statement = 'none';
SET log_min_duration_statement = -1;
SET log_min_error_statement = 'panic';
SET pgaudit.log = 'none';
\set app_password `cat /run/secrets/app_user_password`
CREATE ROLE app_user LOGIN PASSWORD :'app_password';
\set readonly_password `cat /run/secrets/readonly_user_password`
CREATE ROLE readonly_user LOGIN PASSWORD :'readonly_password';
\set exporter_password `cat /run/secrets/postgres_exporter_password`
CREATE ROLE postgres_exporter LOGIN PASSWORD :'exporter_password';
\set pgbouncer_auth_password `cat /run/secrets/pgbouncer_auth_password`
CREATE ROLE pgbouncer_auth LOGIN PASSWORD :'pgbouncer_auth_password';
CREATE DATABASE distributed_postgres_cluster ENCODING 'UTF8';
REVOKE ALL ON DATABASE distributed_postgres_cluster FROM PUBLIC;
GRANT CONNECT ON DATABASE distributed_postgres_cluster TO app_user, readonly_user, postgres_exporter, pgbouncer_auth;
GRANT pg_monitor TO postgres_exporter;
\connect distributed_postgres_cluster
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
CREATE EXTENSION IF NOT EXISTS pgaudit;
GRANT USAGE ON SCHEMA public TO app_user, readonly_user;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO app_user;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO app_user;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO readonly_user;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO app_user;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO app_user;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO readonly_user;
CREATE SCHEMA pgbouncer;
REVOKE ALL ON SCHEMA pgbouncer FROM PUBLIC;
GRANT USAGE ON SCHEMA pgbouncer TO pgbouncer_auth;
CREATE FUNCTION pgbouncer.get_auth(p_username text) RETURNS TABLE (username text, password text)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog
    AS $$SELECT rolname::text, rolpassword FROM pg_catalog.pg_authid
          WHERE rolname = p_username AND rolcanlogin AND NOT rolsuper AND NOT rolreplication$$;
REVOKE ALL ON FUNCTION pgbouncer.get_auth(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgbouncer.get_auth(text) TO pgbouncer_auth;
SQL
