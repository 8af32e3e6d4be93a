#!/bin/sh
# The entrypoint of the project's PostgreSQL image: one image, three services, chosen by the first
# argument (the service's command):
#   patroni [CONFIG]     a Patroni member (and its pgBackRest server); CONFIG is its patroni.yml, a Docker secret
#   backup-agent         the backup node's scheduler and pgBackRest repository server
#   pgbackrest-server    a database host's `pgbackrest server`, which the backup node reads from
#   healthcheck          the image's HEALTHCHECK, for whichever of the above the container runs
# Secrets stay in their files under the secrets directory: nothing here reads one into a variable,
# and the services refuse to start with a secret in their environment.
# Paths are the container's unless overridden (only the tests do): DPC_SECRETS_DIR, DPC_PGDATA,
# DPC_PGWAL, DPC_BACKUP_AGENT, DPC_HEALTHCHECK; and the backup server's restart delay, DPC_BACKUP_SERVER_RESTART_SECONDS.
set -eu

readonly EX_USAGE=64
readonly EX_CONFIG=78

secrets_dir=${DPC_SECRETS_DIR:-/run/secrets}
pgdata=${DPC_PGDATA:-/var/lib/postgresql/data/pgdata}
pgwal=${DPC_PGWAL:-/var/lib/postgresql/wal/pg_wal}
backup_agent=${DPC_BACKUP_AGENT:-/usr/local/bin/dpc-backup-agent}
healthcheck=${DPC_HEALTHCHECK:-/usr/local/lib/dpc/healthcheck.py}

fail() {
  code=$1
  shift
  printf 'dpc-entrypoint: %s\n' "$*" >&2
  exit "$code"
}

# A service whose environment carries a password or key was deployed against this image's rules
# (secrets are files); better to stop than to pass it on to PostgreSQL, Patroni or pgBackRest.
refuse_secrets_in_environment() {
  names=$(env | sed -n 's/^\([A-Za-z_][A-Za-z0-9_]*\)=.*/\1/p' | grep -E 'PASSWORD|PASSPHRASE|CIPHER_PASS|_TOKEN$|_KEY$' || true)
  if [ -n "$names" ]; then
    fail "$EX_CONFIG" "refusing to start: secret-looking environment variables are set ($(echo "$names" | tr '\n' ' ')); deliver secrets as files under $secrets_dir"
  fi
}

# PostgreSQL insists on a data directory only its owner can enter; the WAL directory gets the same.
private_directory() {
  dir=$1
  if [ ! -d "$dir" ]; then
    mkdir -m 0700 "$dir" 2>/dev/null ||
      fail "$EX_CONFIG" "cannot create $dir: its parent (the mounted volume) must exist and be owned by $(id -un) (uid $(id -u))"
  fi
  owner=$(stat -c %u "$dir")
  [ "$owner" = "$(id -u)" ] ||
    fail "$EX_CONFIG" "$dir is owned by uid $owner, not by $(id -un) (uid $(id -u)); chown the volume on the host"
  [ "$(stat -c %a "$dir")" = 700 ] || chmod 0700 "$dir"
}

run_patroni() {
  [ "$#" -le 1 ] || fail "$EX_USAGE" "usage: patroni [CONFIG]"
  config=${1:-$secrets_dir/patroni.yml}
  [ -f "$config" ] ||
    fail "$EX_CONFIG" "the Patroni configuration $config is missing: attach the Docker secret that holds it"
  [ -r "$config" ] ||
    fail "$EX_CONFIG" "the Patroni configuration $config is not readable by $(id -un) (uid $(id -u)): give the secret that uid"
  private_directory "$pgdata"
  private_directory "$pgwal"
  serve_backups_while_running &
  exec patroni "$config"
}

# Whether this (sub)shell's parent is still `pid`: once the main process exits, the shell is
# re-parented, even while the dead process waits, unreaped, as a zombie.
still_child_of() {
  read -r _ _ _ parent _ </proc/self/stat
  [ "$parent" = "$1" ]
}

# The member's `pgbackrest server`, which the backup node reads backups from, runs beside Patroni in
# the same container (it needs the data directory and PostgreSQL's socket) and is restarted if it
# stops, for as long as this container's main process (Patroni, after the exec) lives. It is not
# part of the health check: a stopped backup server must not make Swarm restart a database.
serve_backups_while_running() {
  main_process=$$
  while still_child_of "$main_process"; do
    pgbackrest server || printf 'dpc-entrypoint: pgbackrest server stopped (exit %s); restarting\n' "$?" >&2
    sleep "${DPC_BACKUP_SERVER_RESTART_SECONDS:-5}"
  done
}

umask 0077
command=${1:-patroni}
[ "$#" -eq 0 ] || shift

case "$command" in
  patroni)
    refuse_secrets_in_environment
    run_patroni "$@"
    ;;
  backup-agent)
    refuse_secrets_in_environment
    exec "$backup_agent" "$@"
    ;;
  pgbackrest-server)
    refuse_secrets_in_environment
    exec pgbackrest server "$@"
    ;;
  healthcheck)
    exec python3 "$healthcheck" "$@"
    ;;
  *)
    fail "$EX_USAGE" "unknown command '$command': expected patroni [CONFIG], backup-agent, pgbackrest-server or healthcheck"
    ;;
esac
