"""Linux network namespaces as stand-in hosts (the cluster smoke run's, the local Swarm's nodes): one private /24 behind a bridge that lives in a
namespace of its own, so nothing is added to, or routed through, the machine's own network.

Every host namespace gets a loopback and one veth whose other end is on the bridge. Processes are
started inside a namespace as an unprivileged user with an empty environment (no inherited `PG*`
or proxy variables). Teardown stops what was started, kills whatever is still inside the
namespaces, and deletes them, which also deletes their veths and the bridge.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import json
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

COMMAND_TIMEOUT = 10.0
"""Seconds any single `ip` command may take."""

STOP_GRACE = 15.0
"""Seconds started processes get to shut down cleanly (Patroni stops PostgreSQL) before SIGKILL."""

CRASH_TIMEOUT = 10.0
"""Seconds a crashed host's processes may take to be gone after SIGKILL."""

CLEAN_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"

_CLONE_NEWNET = 0x40000000

T = TypeVar("T")


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=COMMAND_TIMEOUT)


def require_namespaces() -> None:
    """Fail (never skip) when this machine cannot run the smoke run: it is only run where it must."""
    problems: list[str] = []
    if os.geteuid() != 0:
        problems.append("it must run as root (network namespaces, and running each service as its own user)")
    try:
        _ip("netns", "list")
    except (OSError, subprocess.SubprocessError) as error:
        problems.append(f"`ip netns` is unavailable ({error}); install iproute2")
    if problems:
        raise RuntimeError("The cluster smoke run cannot start: " + "; ".join(problems))


def unused_subnet(candidates: Sequence[str]) -> ipaddress.IPv4Network:
    """The first candidate /24 that no address or route of the machine overlaps, so that a reader
    of any log never confuses a namespace address with a real one.
    """
    used: list[ipaddress.IPv4Network] = []
    for line in json.loads(_ip("-j", "-4", "addr").stdout):
        used += [ipaddress.IPv4Network(f"{a['local']}/{a['prefixlen']}", strict=False) for a in line["addr_info"]]
    for route in json.loads(_ip("-j", "-4", "route", "show", "table", "all").stdout):
        if route["dst"] not in ("default", "0.0.0.0/0"):
            used.append(ipaddress.IPv4Network(route["dst"], strict=False))
    for candidate in map(ipaddress.IPv4Network, candidates):
        if not any(candidate.overlaps(network) for network in used):
            return candidate
    raise RuntimeError(f"every candidate subnet {list(candidates)} overlaps an address or route of this machine: {used}")


@dataclass
class Started:
    """A process started in a namespace, with the log file its output goes to."""

    name: str
    namespace: str
    process: subprocess.Popen[bytes]
    log: Path


@dataclass
class Network:
    """A bridge namespace and host namespaces, named with a per-run tag so runs never collide."""

    subnet: ipaddress.IPv4Network
    prefix: str = "dpcsmoke"
    """What every namespace's name starts with: whose they are (`ip netns list`)."""
    tag: str = field(default_factory=lambda: secrets.token_hex(3))
    hosts: dict[str, str] = field(default_factory=dict[str, str])
    """Host name → its IPv4 address."""
    ports: dict[str, str] = field(default_factory=dict[str, str])
    """Host name → the bridge's port its veth is plugged into (in the switch namespace)."""
    started: list[Started] = field(default_factory=list[Started])
    _namespaces: list[str] = field(default_factory=list[str])

    @property
    def switch(self) -> str:
        """The bridge's namespace."""
        return f"{self.prefix}-{self.tag}-switch"

    def namespace(self, host: str) -> str:
        """A host's namespace."""
        return f"{self.prefix}-{self.tag}-{host}"

    def _add_namespace(self, name: str) -> None:
        _ip("netns", "add", name)
        self._namespaces.append(name)
        _ip("-n", name, "link", "set", "lo", "up")

    def create(self, hosts: Sequence[str]) -> None:
        """The bridge and one namespace per host, with addresses .11, .12, ... in host order."""
        self._add_namespace(self.switch)
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.switch, "link", "set", "br0", "up")
        for index, host in enumerate(hosts):
            namespace = self.namespace(host)
            self._add_namespace(namespace)
            port = f"port{index}"
            _ip("-n", self.switch, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", namespace)
            _ip("-n", self.switch, "link", "set", port, "master", "br0", "up")
            address = str(self.subnet.network_address + 11 + index)  # as `adopt` finds them again
            _ip("-n", namespace, "addr", "add", f"{address}/{self.subnet.prefixlen}", "dev", "eth0")
            _ip("-n", namespace, "link", "set", "eth0", "up")
            self.hosts[host] = address
            self.ports[host] = port

    def adopt(self, hosts: Sequence[str]) -> None:
        """Takes over the namespaces `create` made for these hosts in an earlier run (same prefix,
        tag and subnet), so this run can use and delete them.
        """
        self._namespaces = [self.switch, *(self.namespace(host) for host in hosts)]
        self.hosts = {host: str(self.subnet.network_address + 11 + index) for index, host in enumerate(hosts)}

    def command(self, host: str, user: str, argv: Sequence[str], *, home: Path, open_files: int | None = None) -> list[str]:
        """Argv run in the host's namespace as `user`, with nothing of the caller's environment.

        `open_files` sets its file descriptor limit, soft and hard, which a service such as
        PgBouncer does not raise itself: set twice, by root before runuser (raising the hard limit,
        which the service could not) and again after it, because runuser's PAM session
        (pam_limits) puts the soft limit back to 1024 whatever the caller's was.
        """
        limit = ["prlimit", f"--nofile={open_files}:{open_files}"] if open_files is not None else []
        return [
            "ip", "netns", "exec", self.namespace(host), *limit,
            "runuser", "-u", user, "--",
            "env", "-i", f"PATH={CLEAN_PATH}", f"HOME={home}", "LANG=C.UTF-8",
            *limit, *argv,
        ]  # fmt: skip

    def run(self, host: str, user: str, argv: Sequence[str], *, home: Path, timeout: float) -> subprocess.CompletedProcess[str]:
        """A command to completion in the host's namespace (used for one-off probes), in `home`."""
        return subprocess.run(self.command(host, user, argv, home=home), capture_output=True, text=True, timeout=timeout, check=False, cwd=home)

    def start(self, name: str, host: str, user: str, argv: Sequence[str], *, home: Path, log: Path, open_files: int | None = None) -> Started:
        """A long-running service in the host's namespace, its output appended to `log` (a service
        restarted on the same host keeps its earlier output), in its own session. It starts in its
        `home`, as a service manager starts it, never in the caller's directory, which its user may
        not enter (a checkout under a private directory).
        """
        command = self.command(host, user, argv, home=home, open_files=open_files)
        with log.open("ab") as output:
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, start_new_session=True, cwd=home)
        started = Started(name, self.namespace(host), process, log)
        self.started.append(started)
        return started

    def _pids(self, namespace: str) -> list[int]:
        try:
            listed = _ip("netns", "pids", namespace).stdout.split()
        except subprocess.CalledProcessError:
            return []
        return [int(pid) for pid in listed]

    def processes(self, host: str, program: str) -> list[int]:
        """The pids of the processes running `program` (by its command name) in the host's namespace."""
        return [pid for pid in self._pids(self.namespace(host)) if _program(pid) == program]

    def _signal_namespace(self, namespace: str, sig: signal.Signals) -> int:
        """Signal every process inside one namespace; how many there were."""
        count = 0
        for pid in self._pids(namespace):
            try:
                os.kill(pid, sig)
                count += 1
            except ProcessLookupError:
                pass
        return count

    def _signal_all(self, sig: signal.Signals) -> int:
        """Signal every process left inside the namespaces; how many there were."""
        return sum(self._signal_namespace(namespace, sig) for namespace in self._namespaces)

    def crash(self, host: str) -> int:
        """The host's machine crashing: SIGKILL to every process in its namespace at once, so none
        shuts down or cleans up. Every process, not a process group: Patroni starts PostgreSQL in a
        session of its own so that it outlives Patroni, which a machine crash does not allow.
        Returns how many processes were killed, once none is left and the started ones are reaped.
        """
        namespace = self.namespace(host)
        killed = self._signal_namespace(namespace, signal.SIGKILL)
        deadline = time.monotonic() + CRASH_TIMEOUT
        while self._pids(namespace):
            if time.monotonic() >= deadline:
                raise RuntimeError(f"processes of {host} still alive {CRASH_TIMEOUT:.0f}s after SIGKILL: {self._pids(namespace)}")
            time.sleep(0.05)
            killed += self._signal_namespace(namespace, signal.SIGKILL)
        for started in self.started:
            if started.namespace == namespace:
                started.process.wait(timeout=COMMAND_TIMEOUT)
        return killed

    def freeze(self, host: str) -> int:
        """The host's machine hanging (a stalled hypervisor, a long GC pause of the whole box):
        SIGSTOP to every process in its namespace. Its sockets stay open and its peers see only
        silence, unlike a crash. Returns how many processes were stopped.
        """
        return self._signal_namespace(self.namespace(host), signal.SIGSTOP)

    def thaw(self, host: str) -> int:
        """The frozen host running again from where it stopped: SIGCONT to every process."""
        return self._signal_namespace(self.namespace(host), signal.SIGCONT)

    def cut(self, host: str) -> None:
        """The host's network cable pulled: its bridge port goes down, so nothing passes either way
        while its processes run on and still reach each other on the host's own address.
        """
        _ip("-n", self.switch, "link", "set", self.ports[host], "down")

    def heal(self, host: str) -> None:
        """The cable back in: the host's bridge port up again."""
        _ip("-n", self.switch, "link", "set", self.ports[host], "up")

    def kill(self, host: str, program: str) -> int:
        """The host's processes running `program` dying at once (SIGKILL), the rest of the host
        running on: a service crashing, not its machine; how many there were, once gone.
        """
        pids = self.processes(host, program)
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + CRASH_TIMEOUT
        while any(map(_running, pids)):
            if time.monotonic() >= deadline:
                raise RuntimeError(f"{program} on {host} still alive {CRASH_TIMEOUT:.0f}s after SIGKILL")
            time.sleep(0.05)
        return len(pids)

    def stop(self, host: str, program: str) -> int:
        """SIGTERM to the host's processes running `program`, waited for as a service manager
        waits (STOP_GRACE, then SIGKILL); how many there were. For stopping one service of a host
        and starting it again, as an operator restarting it does.
        """
        pids = self.processes(host, program)
        for pid in pids:
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        while (alive := [pid for pid in pids if _running(pid)]) and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid in alive:
            os.kill(pid, signal.SIGKILL)
        return len(pids)

    def teardown(self, *, stop_last: Sequence[str] = ()) -> list[str]:
        """Stop everything and delete every namespace; the problems met, so a failing teardown is
        reported instead of hiding the test's own failure.

        The services named in `stop_last` (etcd) are stopped only once every other one has exited,
        all of those at once: Patroni stops its PostgreSQL cleanly only while it reaches etcd, and
        stopping the members one by one would leave a synchronous standby waiting for a primary
        that is already gone.
        """
        problems: list[str] = []
        self._signal_all(signal.SIGCONT)  # a frozen host's processes cannot act on SIGTERM
        for group in (
            [started for started in self.started if started.name not in stop_last],
            [started for started in self.started if started.name in stop_last],
        ):
            deadline = time.monotonic() + STOP_GRACE
            for started in group:
                if started.process.poll() is None:
                    _terminate(started)
            while time.monotonic() < deadline and any(started.process.poll() is None for started in group):
                time.sleep(0.1)
        deadline = time.monotonic() + COMMAND_TIMEOUT
        while time.monotonic() < deadline and any(self._pids(n) for n in self._namespaces):
            time.sleep(0.2)
        left = sorted(_program(pid) or f"pid {pid} (gone)" for namespace in self._namespaces for pid in self._pids(namespace))
        if killed := self._signal_all(signal.SIGKILL):
            problems.append(f"{killed} process(es) did not stop within {STOP_GRACE:.0f}s of their SIGTERM and were killed: {', '.join(left)}")
        for started in self.started:
            try:
                started.process.wait(timeout=COMMAND_TIMEOUT)
            except subprocess.TimeoutExpired:
                problems.append(f"{started.name} (pid {started.process.pid}) did not exit")
        for namespace in reversed(self._namespaces):
            try:
                _ip("netns", "del", namespace)
            except subprocess.CalledProcessError as error:
                problems.append(f"deleting namespace {namespace}: {error.stderr.strip()}")
        self._namespaces.clear()
        return problems

    def delete_leftovers(self) -> list[str]:
        """Kills what runs in, and deletes, every namespace of this prefix and tag, whoever made
        them (a run of another process); the problems met.
        """
        problems: list[str] = []
        for namespace in self.leftovers():
            self._signal_namespace(namespace, signal.SIGKILL)
            try:
                _ip("netns", "del", namespace)
            except subprocess.CalledProcessError as error:
                problems.append(f"deleting namespace {namespace}: {error.stderr.strip()}")
        return problems

    def leftovers(self) -> list[str]:
        """Namespaces of this run that still exist (empty after a clean teardown)."""
        listed = _ip("netns", "list").stdout.split("\n")
        return [line.split()[0] for line in listed if line.startswith(f"{self.prefix}-{self.tag}-")]


def _terminate(started: Started) -> None:
    """SIGTERM to the service itself, as a service manager sends it, not to the runuser that
    started it: runuser forwards the signal but kills its child 2 s later, too soon for a
    Patroni standby, which waits up to 2 × loop_wait for the primary to release it.
    """
    children = Path(f"/proc/{started.process.pid}/task/{started.process.pid}/children")
    try:
        pids = [int(pid) for pid in children.read_text().split()]
    except FileNotFoundError:
        pids = []
    for pid in pids or [started.process.pid]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


def _program(pid: int) -> str | None:
    """A process's command name; None once it is gone."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except FileNotFoundError:
        return None


def _running(pid: int) -> bool:
    """Whether a process is still there and not a zombie waiting for its parent to reap it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def open_files_limit(pid: int) -> tuple[int, int]:
    """A running process's file descriptor limit, soft and hard, as the kernel applies it."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise RuntimeError(f"no open-files limit in /proc/{pid}/limits")


class NamespaceClient:
    """Runs callables on threads that have joined a namespace's network stack.

    A network namespace belongs to a thread, not a process: every socket these threads open (libpq's,
    urllib's) is in the namespace, while the test process itself stays in the machine's own, so
    the test can speak to the hosts as a client on their network would, without a subprocess per call.
    """

    def __init__(self, namespace: str, *, threads: int = 4) -> None:
        """`threads` calls may run at once, so that one call hanging on a silent peer (a frozen or
        cut-off host) does not hold back the next: a drill keeps probing while a write waits.
        """
        self._namespace = namespace
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=f"netns-{namespace}", initializer=self._enter)

    def _enter(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        with open(f"/run/netns/{self._namespace}", "rb") as handle:
            if libc.setns(handle.fileno(), _CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns into {self._namespace}")

    def call(self, function: Callable[..., T], *args: object, timeout: float) -> T:
        """function(*args) inside the namespace, waited for at most `timeout` seconds."""
        return self.submit(function, *args).result(timeout=timeout)

    def submit(self, function: Callable[..., T], *args: object) -> Future[T]:
        """function(*args) inside the namespace, not waited for (a long-running client)."""
        return self._executor.submit(function, *args)

    def close(self) -> None:
        """Stops the threads (calls still running are not waited for)."""
        self._executor.shutdown(wait=False, cancel_futures=True)


def unmount_under(root: Path) -> list[str]:
    """Unmounts every mount point below `root`, deepest first (containers' overlays, netns files)."""
    problems: list[str] = []
    prefix = str(root.resolve()) + "/"
    mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    for mount in sorted((m for m in mounts if m.startswith(prefix)), key=len, reverse=True):
        result = subprocess.run(["umount", "-l", mount], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            problems.append(f"umount {mount}: {result.stderr.strip()}")
    return problems
