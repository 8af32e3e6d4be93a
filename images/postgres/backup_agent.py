#!/usr/bin/python3
"""The backup node's agent: pgBackRest's repository server and the backup schedule (seed §4.3).

pgBackRest has no scheduler and no daemon of its own besides `pgbackrest server`, so this process
is both, in one container:

- it runs `pgbackrest server`, the TLS endpoint through which the database hosts archive WAL to
  the repositories; when that server dies the agent exits, and Swarm restarts the task;
- on start it runs `stanza-create` (idempotent) and `check`, retrying until the cluster answers;
- every day at 02:00 UTC it takes the day's backups (`scheduled_backups`): a full backup on
  Sundays and on the 1st of the month, a differential on other days, to the local repository;
  full days also go to every other (offsite) repository. UTC has no daylight-saving jumps, so
  02:00 comes exactly once a day;
- after each day's run it writes node-exporter textfile metrics for the backup alerts:
  `dpc_backup_last_success_timestamp_seconds{type}` and `dpc_backup_last_run_success{type}`,
  keeping the values of the other type from the previous file.

`--now` takes today's backups at once and exits (operators, tests); the pgBackRest options come
from its configuration and PGBACKREST_* environment variables, as for any pgbackrest command.
Standard library only: it runs under the image's Debian python3.
"""

from __future__ import annotations

import argparse
import configparser
import datetime as dt
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

BackupType = Literal["full", "diff"]
BACKUP_TYPES: tuple[BackupType, ...] = ("full", "diff")

STANZA = "main"
"""dpc.cluster.BACKUP_STANZA."""
BACKUP_TIME_UTC = dt.time(2, 0)
LOCAL_REPOSITORY = 1
DEFAULT_CONFIG = "/etc/pgbackrest/pgbackrest.conf"
DEFAULT_METRICS_FILE = "/var/lib/node-exporter/textfile/dpc_backup.prom"
"""dpc.cluster: Paths.node_exporter_textfiles / BACKUP_METRICS_FILE."""
INIT_RETRY_SECONDS = 60
SLEEP_STEP_SECONDS = 30
"""Longest single sleep: the agent wakes this often to notice its server dying or the clock moving."""

SUCCESS_METRIC = "dpc_backup_last_success_timestamp_seconds"
RUN_METRIC = "dpc_backup_last_run_success"
_METRIC_HELP = {
    SUCCESS_METRIC: "Unix time at which the last successful backup of this type finished.",
    RUN_METRIC: "1 if the last backup run of this type succeeded on every repository, else 0.",
}
_SAMPLE = re.compile(r'^(?P<metric>\w+)\{type="(?P<type>\w+)"\} (?P<value>\S+)$')

log = logging.getLogger("dpc-backup-agent")


@dataclass(frozen=True)
class Backup:
    """One pgBackRest backup: its type and the repository it goes to."""

    type: BackupType
    repository: int


@dataclass
class TypeMetrics:
    """What the metrics file says about one backup type; None: not known yet."""

    last_success: float | None = None
    last_run_success: bool | None = None


def backup_type(day: dt.date) -> BackupType:
    """Full on Sundays (the seed's weekly full) and on the 1st (its monthly full); differential on
    other days (its daily backup).
    """
    return "full" if day.weekday() == 6 or day.day == 1 else "diff"


def next_run(now: dt.datetime) -> dt.datetime:
    """The first 02:00 UTC strictly after `now` (an aware datetime)."""
    now = now.astimezone(dt.UTC)
    today = dt.datetime.combine(now.date(), BACKUP_TIME_UTC, tzinfo=dt.UTC)
    return today if today > now else today + dt.timedelta(days=1)


def scheduled_backups(day: dt.date, repositories: Sequence[int]) -> tuple[Backup, ...]:
    """The backups of one day: the day's type to the local repository; on full days a full to each
    other (offsite) repository as well, which keeps only the weekly and monthly fulls.
    """
    kind = backup_type(day)
    return tuple(Backup(kind, repository) for repository in sorted(repositories) if repository == LOCAL_REPOSITORY or kind == "full")


def configured_repositories(config_text: str) -> tuple[int, ...]:
    """The repository indexes a pgBackRest configuration defines (repo1 always exists)."""
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.read_string(config_text)
    indexes = {LOCAL_REPOSITORY}
    for section in parser.sections():
        indexes |= {int(match.group(1)) for key in parser[section] if (match := re.match(r"repo(\d+)-", key))}
    return tuple(sorted(indexes))


def unknown_metrics() -> dict[BackupType, TypeMetrics]:
    """Nothing known yet about any backup type: no metrics file, or a fresh one."""
    state: dict[BackupType, TypeMetrics] = {}
    for kind in BACKUP_TYPES:
        state[kind] = TypeMetrics()
    return state


def parse_metrics(text: str) -> dict[BackupType, TypeMetrics]:
    """The values of a metrics file this agent wrote, so a run of one type keeps the other's."""
    state = unknown_metrics()
    samples = [match for line in text.splitlines() if (match := _SAMPLE.match(line))]
    for kind in BACKUP_TYPES:
        for sample in (sample for sample in samples if sample["type"] == kind):
            if sample["metric"] == SUCCESS_METRIC:
                state[kind].last_success = float(sample["value"])
            elif sample["metric"] == RUN_METRIC:
                state[kind].last_run_success = sample["value"] == "1"
    return state


def render_metrics(state: dict[BackupType, TypeMetrics]) -> str:
    """The textfile collector's format; a type with no value yet has no sample (`absent()`)."""
    lines: list[str] = []
    for metric in (SUCCESS_METRIC, RUN_METRIC):
        lines += [f"# HELP {metric} {_METRIC_HELP[metric]}", f"# TYPE {metric} gauge"]
        for kind in BACKUP_TYPES:
            value = state[kind].last_success if metric == SUCCESS_METRIC else state[kind].last_run_success
            if value is not None:
                lines.append(f'{metric}{{type="{kind}"}} {int(value) if isinstance(value, bool) else f"{value:.3f}"}')
    return "\n".join(lines) + "\n"


def write_atomically(path: Path, text: str) -> None:
    """Write next to the target and rename over it, so node-exporter never reads half a file (the
    temporary name does not end in .prom, which the collector would read).
    """
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def record_run(path: Path, kind: BackupType, succeeded: bool, finished_at: float) -> None:
    """Update the metrics file with one run's outcome, keeping everything else it says."""
    state = parse_metrics(path.read_text()) if path.exists() else unknown_metrics()
    state[kind].last_run_success = succeeded
    if succeeded:
        state[kind].last_success = finished_at
    write_atomically(path, render_metrics(state))


Runner = Callable[[Sequence[str]], int]


def run_command(command: Sequence[str]) -> int:
    """Run a command with the agent's own output streams, so its log goes to the container's."""
    log.info("running %s", " ".join(command))
    return subprocess.run(command, check=False).returncode


@dataclass(frozen=True)
class Agent:
    """The schedule's actions, with the program to run and where to write the metrics."""

    pgbackrest: str
    metrics_file: Path
    repositories: tuple[int, ...]
    run: Runner = run_command

    def pgbackrest_command(self, *arguments: str) -> list[str]:
        """A pgbackrest command line for this cluster's stanza."""
        return [self.pgbackrest, f"--stanza={STANZA}", "--log-level-console=info", *arguments]

    def initialise(self) -> bool:
        """Create the stanza in every repository (a no-op when it exists) and check that WAL
        archiving reaches them.
        """
        return all(self.run(self.pgbackrest_command(command)) == 0 for command in ("stanza-create", "check"))

    def back_up(self, day: dt.date, clock: Callable[[], float] = time.time) -> bool:
        """Take the day's backups, then record the outcome; every backup is tried even when an
        earlier one failed, and the run succeeds only if all did.
        """
        backups = scheduled_backups(day, self.repositories)
        results = [self.run(self.pgbackrest_command(f"--type={b.type}", f"--repo={b.repository}", "backup")) == 0 for b in backups]
        succeeded = all(results)
        record_run(self.metrics_file, backup_type(day), succeeded, clock())
        log.info("%s backups of %s: %s", backup_type(day), day.isoformat(), "succeeded" if succeeded else "FAILED")
        return succeeded


def _terminate(signal_number: int, _frame: object) -> None:
    """Docker stops the container with SIGTERM: leave through the normal exit path, which stops
    the repository server and any running pgbackrest.
    """
    raise SystemExit(128 + signal_number)


def serve(agent: Agent) -> int:
    """The long-running agent: the repository server, the stanza, then the daily schedule."""
    server = subprocess.Popen([agent.pgbackrest, "server"])
    try:
        while not agent.initialise():
            log.warning("stanza-create or check failed; retrying in %d s", INIT_RETRY_SECONDS)
            time.sleep(INIT_RETRY_SECONDS)
        while True:
            due = next_run(dt.datetime.now(dt.UTC))
            log.info("next backup at %s", due.isoformat())
            while (remaining := (due - dt.datetime.now(dt.UTC)).total_seconds()) > 0:
                if server.poll() is not None:
                    log.error("pgbackrest server exited with %s", server.returncode)
                    return 1
                time.sleep(min(remaining, SLEEP_STEP_SECONDS))
            agent.back_up(due.date())
    finally:
        server.terminate()
        server.wait()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: `dpc-backup-agent [--now]`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--now", action="store_true", help="take today's scheduled backups now and exit")
    parser.add_argument("--metrics-file", type=Path, default=Path(DEFAULT_METRICS_FILE))
    parser.add_argument("--pgbackrest", default="pgbackrest", help="the pgbackrest program")
    options = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    signal.signal(signal.SIGTERM, _terminate)
    config = Path(os.environ.get("PGBACKREST_CONFIG", DEFAULT_CONFIG))
    repositories = configured_repositories(config.read_text()) if config.is_file() else (LOCAL_REPOSITORY,)
    agent = Agent(pgbackrest=options.pgbackrest, metrics_file=options.metrics_file, repositories=repositories)
    if options.now:
        return 0 if agent.initialise() and agent.back_up(dt.datetime.now(dt.UTC).date()) else 1
    return serve(agent)


if __name__ == "__main__":
    sys.exit(main())
