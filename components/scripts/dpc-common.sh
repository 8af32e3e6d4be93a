# shellcheck shell=bash
# Shared by the node's dpc scripts: logging, bounded retries and the Swarm's nodes as a table.
# Messages go to standard error, which is the console and cloud-init's log at boot and the journal
# under systemd. No message ever holds a secret: callers describe what failed, never with a value.

log() {
  echo "${0##*/}: $*" >&2
}

# retry ATTEMPTS PAUSE WHAT COMMAND...: runs COMMAND until it succeeds, at most ATTEMPTS times with
# PAUSE seconds between tries, logging each failure; fails with the last status. Transient
# failures (a package mirror, the secret store, a manager that is restarting) must not end a boot,
# and a permanent one must end it in bounded time, saying what failed.
retry() {
  local attempts=$1 pause=$2 what=$3 attempt=1 status
  shift 3
  while :; do
    "$@" && return 0
    status=$?
    if [ "$attempt" -ge "$attempts" ]; then
      log "$what failed $attempt times (exit $status); giving up"
      return "$status"
    fi
    log "$what failed (exit $status, attempt $attempt of $attempts); retrying in ${pause}s"
    sleep "$pause"
    attempt=$((attempt + 1))
  done
}

# apt_retried WHAT ARGS...: one apt-get run (update, upgrade, install), retried up to 20 times 30 s
# apart: a package mirror that is briefly unreachable must not end a boot, and 10 minutes of it must.
# Ubuntu's needrestart is held back: after an upgrade it restarts services on its own, and the boot
# that runs apt (cloud-init's final stage) must not be among them; what was upgraded runs from the
# next restart of its service or of the machine.
apt_retried() {
  local what=$1
  shift
  export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1
  retry 20 30 "$what" apt-get -q -o DPkg::Lock::Timeout=120 -o Dpkg::Options::=--force-confold "$@"
}

# The Swarm's nodes as seen by a manager, one line each, tab-separated: id, hostname, role, state
# (ready/down), availability, manager address without its port (empty on workers), manager
# reachability, labels as key=value joined by commas.
swarm_nodes() {
  local ids
  ids=$(docker node ls --quiet) || return 1
  # shellcheck disable=SC2086  # one node id per word
  docker node inspect $ids | jq -r '.[] | [.ID, .Description.Hostname, .Spec.Role, .Status.State,
    .Spec.Availability, ((.ManagerStatus.Addr // "") | sub(":[0-9]+$"; "")), (.ManagerStatus.Reachability // ""),
    ((.Spec.Labels // {}) | to_entries | map("\(.key)=\(.value)") | join(","))] | @tsv'
}
