"""The local Swarm's rolling deployment (engine.deploy.roll, converged) against a stand-in manager:
the order `ServiceSpec.after` gives, the Patroni members' leader-last order and switchover, when
a member counts as converged, and where a roll stops.
The real Swarm's behaviour is measured by tests/swarm/test_rolling_update.py."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from benchmarks.rolling_update import MemberReplaced, Phase, leader_went_last
from dpc.config import settings_from_stack_file
from dpc.swarm_spec import Converge
from engine import deploy as deploy_module
from engine import lab as lab_module
from engine.deploy import StackObjects, Switchover, SwitchoverError, UpdateGivenUpError, converged, leader_last, rest_credentials, roll, stack_objects

PROJECT_ROOT = Path(__file__).resolve().parents[2]
MONITOR = 30
TEMPLATE = {"ContainerSpec": {"Image": "dpc-postgres:new"}, "Runtime": "container", "ForceUpdate": 0}


def _stamp(seconds_ago: float) -> str:
    moment = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=seconds_ago)
    return moment.isoformat().replace("+00:00", "Z")


def _task(image: str, state: str, seconds_ago: float) -> dict[str, Any]:
    return {"Spec": {"ContainerSpec": {"Image": image}, "ForceUpdate": 0}, "Status": {"State": state, "Timestamp": _stamp(seconds_ago)}}


class Manager:
    """One service as the Engine API shows it: its spec, its update status and its tasks."""

    def __init__(self, tasks: list[dict[str, Any]], status: Mapping[str, str] | None = None) -> None:
        self.tasks = tasks
        self.service: dict[str, Any] = {
            "Spec": {"TaskTemplate": TEMPLATE, "Mode": {"Replicated": {"Replicas": 1}}, "UpdateConfig": {"Monitor": MONITOR * 10**9}},
            "UpdateStatus": dict(status or {"State": "updating"}),
        }

    def by_name(self, kind: str, name: str) -> dict[str, Any]:
        return self.service

    def filtered(self, path: str, **filters: list[str]) -> list[dict[str, Any]]:
        return self.tasks


def test_a_task_converges_once_it_has_run_the_new_spec_for_the_update_monitor_period() -> None:
    assert converged(Manager([_task("dpc-postgres:new", "running", MONITOR + 1)]), "patroni-1")
    assert not converged(Manager([_task("dpc-postgres:new", "running", 1)]), "patroni-1"), "running for an instant is not converged"
    assert not converged(Manager([_task("dpc-postgres:old", "running", MONITOR + 1)]), "patroni-1"), "a task of the old spec never counts"
    assert not converged(Manager([_task("dpc-postgres:new", "starting", MONITOR + 1)]), "patroni-1")
    assert not converged(Manager([_task("dpc-postgres:old", "running", MONITOR + 1)], {"State": "rollback_started"}), "patroni-1")


@pytest.mark.parametrize("state", ["rollback_completed", "paused", "rollback_paused"])
def test_an_update_swarm_gave_up_raises(state: str) -> None:
    with pytest.raises(UpdateGivenUpError, match=state):
        converged(Manager([_task("dpc-postgres:old", "running", MONITOR + 1)], {"State": state, "Message": "task failed"}), "patroni-1")


@pytest.fixture(scope="module")
def objects() -> StackObjects:
    settings = settings_from_stack_file(PROJECT_ROOT / "Pulumi.local.yaml")
    full = stack_objects(settings, encrypted_overlays=False, endpoint_mode="dnsrr", missing_images={})
    quick = Converge(delay_seconds=0, timeout_seconds=5)
    wanted = ("etcd-1", "etcd-2", "patroni-1", "patroni-2", "patroni-3", "haproxy")
    return replace(full, services=tuple(replace(s, converge=quick if s.converge else None) for s in full.services if s.name in wanted))


class Swarm:
    """What `roll` sends (by deploy) and when each service converges: `converges_after` looks at a
    service before it counts as converged; `gives_up` raises instead."""

    def __init__(self, converges_after: int = 1, gives_up: str = "") -> None:
        self.versions: dict[str, int] = {}
        self.events: list[str] = []
        self.looks: dict[str, int] = {}
        self.converges_after = converges_after
        self.gives_up = gives_up

    def by_name(self, kind: str, name: str) -> dict[str, Any]:
        return {"Version": {"Index": self.versions.get(name, 0)}}

    def deploy(self, manager: object, objects: StackObjects, *_: object) -> None:
        for service in objects.services:
            self.versions[service.name] = self.versions.get(service.name, 0) + 1
            self.events.append(f"sent {service.name}")

    def converged(self, manager: object, name: str) -> bool:
        if name == self.gives_up:
            raise UpdateGivenUpError(name, "rollback_completed", "task failed")
        self.looks[name] = self.looks.get(name, 0) + 1
        done = self.looks[name] >= self.converges_after
        if done:
            self.events.append(f"converged {name}")
        return done


@pytest.fixture
def swarm(monkeypatch: pytest.MonkeyPatch) -> Swarm:
    fake = Swarm(converges_after=2)
    monkeypatch.setattr(deploy_module, "deploy", fake.deploy)
    monkeypatch.setattr(deploy_module, "converged", fake.converged)
    monkeypatch.setattr(deploy_module, "POLL_INTERVAL", 0.0)
    return fake


def test_roll_sends_each_member_only_once_the_one_it_follows_has_converged(objects: StackObjects, swarm: Swarm) -> None:
    rolled = roll(swarm, objects, {}, {}, "key")
    events = swarm.events
    assert events[:3] == ["sent etcd-1", "sent patroni-1", "sent haproxy"], "services that follow none are sent at once"
    for earlier, later in (("etcd-1", "etcd-2"), ("patroni-1", "patroni-2"), ("patroni-2", "patroni-3")):
        assert events.index(f"converged {earlier}") < events.index(f"sent {later}"), events
    assert {r.service for r in rolled} == {"etcd-1", "etcd-2", "patroni-1", "patroni-2", "patroni-3", "haproxy"}
    assert all(r.sent_at <= r.converged_at for r in rolled)


def test_roll_stops_where_swarm_gives_an_update_up(objects: StackObjects, swarm: Swarm) -> None:
    swarm.gives_up = "patroni-1"
    with pytest.raises(UpdateGivenUpError, match="patroni-1"):
        roll(swarm, objects, {}, {}, "key")
    assert "sent patroni-2" not in swarm.events and "sent patroni-3" not in swarm.events


def test_roll_waits_for_no_service_that_did_not_change(objects: StackObjects, swarm: Swarm, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(swarm, "deploy", lambda *_: None)
    monkeypatch.setattr(deploy_module, "deploy", swarm.deploy)
    assert roll(swarm, objects, {}, {}, "key") == []
    assert swarm.looks == {}


class Patroni:
    """A Patroni cluster that `roll` asks for its roles and for switchovers: a switchover makes the
    candidate the leader and the leader a replica, `refuses` makes it fail instead."""

    def __init__(self, swarm: Swarm, roles: dict[str, str], refuses: bool = False) -> None:
        self.swarm = swarm
        self.roles = roles
        self.refuses = refuses

    def cluster(self) -> dict[str, Any]:
        states = {"leader": "running"}
        return {"members": [{"name": name, "role": role, "state": states.get(role, "streaming")} for name, role in self.roles.items()]}

    def switchover(self, leader: str, candidate: str) -> None:
        self.swarm.events.append(f"switchover {leader} → {candidate}")
        if self.refuses:
            raise SwitchoverError("refused")
        self.roles[leader], self.roles[candidate] = "replica", "leader"


@pytest.fixture
def patroni_roll(swarm: Swarm, monkeypatch: pytest.MonkeyPatch) -> Swarm:
    """`swarm`, where every Patroni member's spec changes."""
    monkeypatch.setattr(deploy_module, "changes", lambda *_: True)
    return swarm


def _members_sent(events: list[str]) -> list[str]:
    return [event for event in events if event.startswith(("sent patroni", "switchover"))]


def test_roll_replaces_the_replicas_first_then_switches_over_to_the_synchronous_standby_then_replaces_the_old_leader(
    objects: StackObjects, patroni_roll: Swarm
) -> None:
    patroni = Patroni(patroni_roll, {"patroni-1": "leader", "patroni-2": "sync_standby", "patroni-3": "replica"})
    rolled = roll(patroni_roll, objects, {}, {}, "key", patroni=patroni)
    assert _members_sent(patroni_roll.events) == ["sent patroni-3", "sent patroni-2", "switchover patroni-1 → patroni-2", "sent patroni-1"]
    events = patroni_roll.events
    order = ["converged patroni-3", "sent patroni-2", "converged patroni-2", "switchover patroni-1 → patroni-2"]
    assert [events.index(event) for event in order] == sorted(events.index(event) for event in order), events
    switched = [r.switchover for r in rolled if r.switchover is not None]
    assert [(s.leader, s.candidate) for s in switched] == [("patroni-1", "patroni-2")]
    assert next(r for r in rolled if r.service == "patroni-1").began_at <= next(r for r in rolled if r.service == "patroni-1").sent_at


def test_roll_keeps_the_static_order_without_patroni_and_switches_over_to_no_one(objects: StackObjects, patroni_roll: Swarm) -> None:
    roll(patroni_roll, objects, {}, {}, "key")
    assert _members_sent(patroni_roll.events) == ["sent patroni-1", "sent patroni-2", "sent patroni-3"]


def test_roll_does_not_switch_over_from_a_leader_whose_spec_does_not_change(objects: StackObjects, swarm: Swarm, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deploy_module, "changes", lambda _manager, alone, *_: alone.services[0].name != "patroni-2")
    patroni = Patroni(swarm, {"patroni-1": "replica", "patroni-2": "leader", "patroni-3": "sync_standby"})
    roll(swarm, objects, {}, {}, "key", patroni=patroni)
    assert not [event for event in swarm.events if event.startswith("switchover")]
    assert _members_sent(swarm.events)[:2] == ["sent patroni-1", "sent patroni-3"]


@pytest.mark.parametrize(
    ("roles", "refuses"),
    [
        ({"patroni-1": "leader", "patroni-2": "replica", "patroni-3": "replica"}, False),
        ({"patroni-1": "leader", "patroni-2": "sync_standby", "patroni-3": "replica"}, True),
    ],
    ids=["no synchronous standby", "Patroni refuses"],
)
def test_roll_stops_before_the_leader_when_it_cannot_switch_over(objects: StackObjects, patroni_roll: Swarm, roles: dict[str, str], refuses: bool) -> None:
    with pytest.raises(SwitchoverError):
        roll(patroni_roll, objects, {}, {}, "key", patroni=Patroni(patroni_roll, roles, refuses))
    assert "sent patroni-1" not in patroni_roll.events


def test_leader_last_puts_a_member_patroni_does_not_show_first() -> None:
    cluster = {"members": [{"name": "patroni-1", "role": "leader"}, {"name": "patroni-3", "role": "sync_standby"}]}
    assert leader_last(["patroni-1", "patroni-2", "patroni-3"], cluster) == ["patroni-2", "patroni-3", "patroni-1"]


def test_rest_credentials_come_from_the_members_patroni_yml_when_it_has_them() -> None:
    assert rest_credentials("restapi:\n  authentication: {username: patroni, password: 's3:cret'}\n") == "patroni:s3:cret"
    assert rest_credentials("restapi:\n  listen: 0.0.0.0:8008\n") is None


def _phase(leaders: tuple[str, ...], order: tuple[tuple[str, str, bool], ...]) -> Phase:
    """A measured update phase: Patroni's leaders in turn, and the members as replaced (name, role
    when the roll began on it, whether a switchover came first)."""
    switchover = Switchover("patroni-1", "patroni-2", 0.0, 1.0)
    members = tuple(MemberReplaced(name, "worker", role, 3, 0.0, switchover if switched else None, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0)
                    for name, role, switched in order)  # fmt: skip
    before = {name: (role, "running" if role == "leader" else "streaming") for name, role, _ in order}
    return Phase("update", 0.0, 1.0, 1.0, members, before, leaders, 0.0, 0, {}, {}, (), None, {}, ())


LEADER_LAST = (("patroni-2", "replica", False), ("patroni-3", "sync_standby", False), ("patroni-1", "leader", True))


@pytest.mark.parametrize(
    ("leaders", "order", "problems"),
    [
        (("patroni-1", "none", "patroni-2"), LEADER_LAST, 0),
        (("patroni-1", "none", "patroni-2", "none", "patroni-3"), LEADER_LAST, 1),
        (("patroni-1", "patroni-1"), LEADER_LAST, 1),
        (("patroni-1", "none", "patroni-2"), (LEADER_LAST[2], LEADER_LAST[0], LEADER_LAST[1]), 2),
        (("patroni-1", "none", "patroni-2"), (*LEADER_LAST[:2], ("patroni-1", "leader", False)), 1),
    ],
    ids=["leader last, one change", "two changes", "no change", "leader first", "no switchover"],
)
def test_the_measured_roll_is_judged_leader_last_only_when_it_was(leaders: tuple[str, ...], order: tuple[tuple[str, str, bool], ...], problems: int) -> None:
    assert len(leader_went_last(_phase(leaders, order))) == problems


class Services:
    """A manager that knows only which services exist."""

    def __init__(self, names: set[str]) -> None:
        self.names = names

    def by_name(self, kind: str, name: str) -> dict[str, Any] | None:
        return {"Spec": {"Name": name}} if name in self.names else None


class Lab:
    """What `converge_stack` reads of a Deployment."""

    def __init__(self, objects: StackObjects, running: set[str]) -> None:
        self.manager, self.objects = Services(running), objects
        self.secret_values: dict[str, str] = {}
        self.images: dict[str, str] = {}
        self.naming_key = "k"
        self.control = object()

    def patroni(self) -> object:
        return self.control


@pytest.mark.parametrize(
    ("running", "changed", "sent"),
    [
        (set[str](), True, "deploy"),  # a first deploy: nothing runs, every service at once
        ({"etcd-1", "patroni-1", "patroni-2", "patroni-3"}, True, "roll"),  # a later one that changes something: leader-last
        ({"etcd-1", "patroni-1", "patroni-2", "patroni-3"}, False, "deploy"),  # nothing changed: nothing to roll, Patroni not asked
    ],
)
def test_the_labs_stack_is_rolled_leader_last_once_its_members_run(
    objects: StackObjects, monkeypatch: pytest.MonkeyPatch, running: set[str], changed: bool, sent: str
) -> None:
    calls: list[tuple[str, object]] = []
    monkeypatch.setattr(lab_module, "changes", lambda *args: changed)
    monkeypatch.setattr(lab_module, "deploy_stack", lambda *args: calls.append(("deploy", None)))
    monkeypatch.setattr(lab_module, "roll", lambda *args, patroni: calls.append(("roll", patroni)))
    lab = Lab(objects, running)
    lab_module.converge_stack(lab)  # pyright: ignore[reportArgumentType]
    assert calls == [(sent, lab.control if sent == "roll" else None)]
