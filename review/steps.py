"""One model of a change, whatever wrote it: the steps a `pulumi preview --json` digest lists, or
the difference between two offline plans (the base branch's and the head's).

Cost, risk and the pull-request comment all read this model, so that they judge a real preview
and an offline plan alike, and a preview made with `--show-replacement-steps` alike with one made
without. The digest's shape is the engine's own (pulumi/pulumi `sdk/pkg/display/json.go`:
`PreviewDigest`, `PreviewStep`; the states are `apitype.ResourceV3`; the ops are
`apitype.OpType`), not a guess of it:

- `steps[]`: `op`, `urn`, `provider`, `oldState`, `newState` (each with `inputs` and `outputs`),
  `diffReasons`, `replaceReasons`, `detailedDiff` (null when the provider gave no detailed diff,
  `{}` when it gave an empty one: the engine keeps the two apart);
- `changeSummary`: a count per op, which counts the `same` steps the digest does not list (only a
  `same` step whose `protect` changed is listed, and the root stack always);
- `config`: the stack's config, secrets blinded;
- an unknown value is the engine's sentinel string (`UNKNOWN`), a secret is `"[secret]"`
  (`MassageSecrets`): two plans compare their secrets masked, so a changed secret shows only
  where something else changes with it (a Docker secret's content-derived name does).

A replacement is one `replace` step without `--show-replacement-steps`, and `replace`,
`create-replacement` and `delete-replaced` with it (`delete-replaced` first when the resource is
deleted before it is replaced): `load_change` folds them into one `replace` step, remembering the
ops it saw and the order.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, cast

UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
"""The engine's sentinel for a value not known until the update runs (`plugin.UnknownStringValue`)."""
OFFLINE_UNKNOWN = "[unknown]"
"""How the offline plan writes that sentinel (review/plan.py)."""

ENGINE_OPS = (
    "same", "create", "update", "delete", "replace", "create-replacement", "delete-replaced",
    "read", "read-replacement", "refresh", "discard", "discard-replaced", "remove-pending-replace",
    "import", "import-replacement",
)
"""Every op the engine emits (`apitype.OpType`), in the engine's order."""

REPLACEMENT_PARTS = frozenset({"create-replacement", "delete-replaced"})
REPLACEMENTS_FILE = Path(__file__).with_name("replacements.json")


def is_unknown(value: object) -> bool:
    """Whether a property value is not known before the update (either spelling of the sentinel)."""
    return value in (UNKNOWN, OFFLINE_UNKNOWN)


def _strings(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(str(item) for item in cast(list[object], value))


def _mapping(value: object) -> Mapping[str, Any]:
    return cast(Mapping[str, Any], value) if isinstance(value, dict) else {}


@dataclass(frozen=True)
class Step:
    """One resource's step, normalised: `op` is one of `ENGINE_OPS`, a replacement is always one
    `replace` step (with `engine_ops` what the digest listed for it), `old`/`new` are the engine's
    states (`type`, `urn`, `inputs`, `outputs`, `protect`, `dependencies`, ...) or None.
    """

    urn: str
    type: str
    op: str
    old: Mapping[str, Any] | None
    new: Mapping[str, Any] | None
    diff_reasons: tuple[str, ...] = ()
    replace_reasons: tuple[str, ...] = ()
    detailed_diff: Mapping[str, Mapping[str, Any]] | None = None
    provider: str = ""
    engine_ops: tuple[str, ...] = ()
    delete_before_replace: bool = False
    notes: tuple[str, ...] = ()
    """What the model could not decide for this step (e.g. no replace-on-change table for its type)."""

    @property
    def name(self) -> str:
        """The resource's name, the URN's last part."""
        return self.urn.rsplit("::", 1)[-1]

    @property
    def custom(self) -> bool:
        """Whether a provider manages the resource (False for components and the stack)."""
        state = self.new or self.old or {}
        return bool(state.get("custom", False))

    @property
    def parent(self) -> str:
        """The parent resource's URN ("" for the stack)."""
        state = self.new or self.old or {}
        return str(state.get("parent") or "")

    @property
    def dependencies(self) -> tuple[str, ...]:
        """The URNs this resource depends on (the new state's, else the old's)."""
        state = self.new if self.new is not None else self.old or {}
        return _strings(state.get("dependencies"))

    @property
    def protect_old(self) -> bool | None:
        """Whether the resource was protected before the change (None: it did not exist)."""
        return None if self.old is None else bool(self.old.get("protect", False))

    @property
    def protect_new(self) -> bool | None:
        """Whether the resource is protected after the change (None: it will not exist)."""
        return None if self.new is None else bool(self.new.get("protect", False))

    def inputs(self, side: str = "new") -> Mapping[str, Any]:
        """The inputs of the state on `side` ("new" or "old"), {} when there is none."""
        state = self.new if side == "new" else self.old
        return _mapping((state or {}).get("inputs"))

    def outputs(self, side: str = "new") -> Mapping[str, Any]:
        """The outputs of the state on `side` ("new" or "old"), {} when there is none."""
        state = self.new if side == "new" else self.old
        return _mapping((state or {}).get("outputs"))

    def value(self, path: str, side: str = "new") -> Any:
        """A property by dotted path (`rootBlockDevice.volumeSize`), from the inputs, else from the
        outputs: a provider's defaults (a gp3 volume's IOPS) are in the outputs only. None if absent.
        """
        for properties in (self.inputs(side), self.outputs(side)):
            found = _at_path(properties, path)
            if found is not None:
                return found
        return None

    @property
    def changed_properties(self) -> tuple[str, ...]:
        """Every property path the step changes, sorted: the detailed diff's paths, the diff and the
        replace reasons.
        """
        paths = set(self.diff_reasons) | set(self.replace_reasons) | set(self.detailed_diff or {})
        return tuple(sorted(paths))


_SEGMENT = re.compile(r"[^.\[\]]+")


def _path_segments(path: str) -> list[str]:
    """`a.b[0].c` → ["a", "b", "0", "c"]; quoted keys (`tags["Name"]`) keep their text."""
    return [segment.strip('"') for segment in _SEGMENT.findall(path)]


def _at_path(properties: Mapping[str, Any], path: str) -> Any:
    current: Any = properties
    for segment in _path_segments(path):
        if isinstance(current, dict):
            current = cast(dict[str, Any], current).get(segment)
        elif isinstance(current, list) and segment.isdigit() and int(segment) < len(cast(list[Any], current)):
            current = cast(list[Any], current)[int(segment)]
        else:
            return None
    return current


@dataclass(frozen=True)
class Change:
    """A stack's change: its steps in the digest's order, the engine's count per op (which counts
    the `same` steps a digest leaves out), the stack's config, and where it came from
    (`preview`: a digest as read; `offline-diff`: two offline plans compared).
    """

    steps: tuple[Step, ...]
    change_summary: Mapping[str, int]
    config: Mapping[str, str] = field(default_factory=dict[str, str])
    source: str = "preview"
    _by_urn: dict[str, Step] = field(init=False, repr=False, compare=False)
    _needed_by: dict[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Indexes the steps by URN and by what they need, once (the blast radius reads them per step)."""
        needed_by: dict[str, set[str]] = {}
        for step in self.steps:
            provider = step.provider.rsplit("::", 1)[0] if step.provider else ""
            for needed in {*step.dependencies, provider}:
                if needed and needed != step.urn:
                    needed_by.setdefault(needed, set()).add(step.urn)
        object.__setattr__(self, "_by_urn", {step.urn: step for step in self.steps})
        object.__setattr__(self, "_needed_by", {urn: tuple(sorted(users)) for urn, users in needed_by.items()})

    @property
    def stack(self) -> str:
        """The stack's name, from the first URN (`urn:pulumi:<stack>::<project>::...`)."""
        for step in self.steps:
            parts = step.urn.split(":", 3)
            if len(parts) == 4 and parts[:2] == ["urn", "pulumi"]:
                return parts[2]
        return ""

    def step(self, urn: str) -> Step | None:
        """The step of a URN, None if the change does not list it."""
        return self._by_urn.get(urn)

    def direct_dependents(self, urn: str) -> tuple[str, ...]:
        """The resources of the change that name `urn` in their own `dependencies` or as their provider, sorted."""
        return self._needed_by.get(urn, ())

    def dependents(self, urn: str) -> tuple[str, ...]:
        """Every resource of the change that depends on `urn`, directly or through others, through
        `dependencies` and provider references, sorted: the blast radius of replacing it.
        """
        needed_by = self._needed_by
        seen: set[str] = set()
        todo = [urn]
        while todo:
            for user in needed_by.get(todo.pop(), ()):
                if user not in seen:
                    seen.add(user)
                    todo.append(user)
        return tuple(sorted(seen))


def _step_from_digest(raw: Mapping[str, Any]) -> Step:
    old = cast(Mapping[str, Any] | None, raw.get("oldState"))
    new = cast(Mapping[str, Any] | None, raw.get("newState"))
    state = new or old or {}
    detailed = raw.get("detailedDiff")
    return Step(
        urn=str(raw["urn"]),
        type=str(state.get("type") or _type_of(str(raw["urn"]))),
        op=str(raw["op"]),
        old=old,
        new=new,
        diff_reasons=_strings(raw.get("diffReasons")),
        replace_reasons=_strings(raw.get("replaceReasons")),
        detailed_diff=cast(Mapping[str, Mapping[str, Any]], detailed) if isinstance(detailed, dict) else None,
        provider=str(raw.get("provider") or state.get("provider") or ""),
        engine_ops=(str(raw["op"]),),
    )


def _type_of(urn: str) -> str:
    """The resource type from a URN (`...::<parent types>$<type>::<name>`)."""
    qualified = urn.split("::")[-2] if urn.count("::") >= 3 else ""
    return qualified.rsplit("$", 1)[-1]


def _fold_replacements(steps: list[Step]) -> list[Step]:
    """One `replace` step per replaced resource, at the place of the first of its steps."""
    parts: dict[str, list[Step]] = {}
    for step in steps:
        if step.op == "replace" or step.op in REPLACEMENT_PARTS:
            parts.setdefault(step.urn, []).append(step)
    folded: list[Step] = []
    done: set[str] = set()
    for step in steps:
        group = parts.get(step.urn)
        if group is None:
            folded.append(step)
        elif step.urn not in done:
            done.add(step.urn)
            folded.append(_one_replacement(group))
    return folded


def _one_replacement(group: list[Step]) -> Step:
    ops = tuple(step.op for step in group)
    if ops == ("delete-replaced",):
        return group[0]  # a pending delete left by an earlier replacement: a deletion, nothing replaces it
    main = next((step for step in group if step.op == "replace"), None)
    create = next((step for step in group if step.op == "create-replacement"), None)
    base = main or create or group[0]
    delete_first = ops.index("delete-replaced") < ops.index("create-replacement") if {"delete-replaced", "create-replacement"} <= set(ops) else False
    return Step(
        urn=base.urn,
        type=base.type,
        op="replace",
        old=base.old or next((s.old for s in group if s.old is not None), None),
        new=base.new or next((s.new for s in group if s.new is not None), None),
        diff_reasons=base.diff_reasons or next((s.diff_reasons for s in group if s.diff_reasons), ()),
        replace_reasons=base.replace_reasons or next((s.replace_reasons for s in group if s.replace_reasons), ()),
        detailed_diff=base.detailed_diff if base.detailed_diff is not None else next((s.detailed_diff for s in group if s.detailed_diff is not None), None),
        provider=base.provider,
        engine_ops=ops,
        delete_before_replace=delete_first,
    )


def change_from_digest(digest: Mapping[str, Any]) -> Change:
    """The change a `pulumi preview --json` digest (or one offline plan, read as a preview of a new
    stack) describes, replacements folded into one step each.
    """
    raw_steps = cast(list[Mapping[str, Any]], digest.get("steps") or [])
    steps = _fold_replacements([_step_from_digest(raw) for raw in raw_steps])
    summary = {str(op): int(count) for op, count in _mapping(digest.get("changeSummary")).items()}
    config = {str(key): str(value) for key, value in _mapping(digest.get("config")).items()}
    return Change(steps=tuple(steps), change_summary=summary, config=config, source="preview")


@dataclass(frozen=True)
class ReplaceRule:
    """What replaces a resource of one type when it changes, from the provider's schema (the
    table's `source` says which): `properties` always, each of `when`'s only while the resource's
    inputs hold the given values (an instance's user data replaces it only with
    `userDataReplaceOnChange: true`).
    """

    properties: tuple[str, ...]
    source: str
    when: Mapping[str, Mapping[str, Any]] = field(default_factory=dict[str, Mapping[str, Any]])


@cache
def replacement_table(path: Path = REPLACEMENTS_FILE) -> Mapping[str, ReplaceRule]:
    """Each type's replace-on-change property paths, as the table file records them."""
    data = cast(dict[str, Any], json.loads(path.read_text()))
    sources = cast(dict[str, str], data["sources"])
    return {
        type_: ReplaceRule(
            tuple(cast(list[str], entry["replaceOnChanges"])),
            sources[cast(str, entry["source"])],
            cast(dict[str, Mapping[str, Any]], entry.get("when", {})),
        )
        for type_, entry in cast(dict[str, dict[str, Any]], data["types"]).items()
    }


def _normal_path(path: str) -> tuple[str, ...]:
    """A property path without list indices (`ebsBlockDevices[1].iops` → ebsBlockDevices, iops):
    the table names properties, not list elements.
    """
    return tuple(segment for segment in _path_segments(path) if not segment.isdigit() and segment != "*")


def _overlaps(prop: str, changed: str) -> bool:
    """Whether the changed path is the property, lies inside it, or holds it (a whole block changed)."""
    forcing, path = _normal_path(prop), _normal_path(changed)
    shortest = min(len(forcing), len(path))
    return forcing[:shortest] == path[:shortest]


def _inside(changed: str, prop: str) -> bool:
    """Whether the changed path is the property or lies inside it (`ignoreChanges` semantics)."""
    forcing, path = _normal_path(prop), _normal_path(changed)
    return path[: len(forcing)] == forcing


def replaces(rule: ReplaceRule, changed: str, inputs: Mapping[str, Any]) -> bool:
    """Whether changing the property at path `changed` replaces a resource with these (new) inputs."""
    if any(_overlaps(prop, changed) for prop in rule.properties):
        return True
    return any(
        _overlaps(prop, changed) and all(inputs.get(key) == value for key, value in condition.items())
        for prop, condition in rule.when.items()
    )


def _diff_paths(old: Any, new: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(path, kind) of every difference between two input values, kind as the engine's detailed
    diff spells it (add, delete, update); lists of differing length differ as a whole.
    """
    if isinstance(old, dict) and isinstance(new, dict):
        old_map, new_map = cast(dict[str, Any], old), cast(dict[str, Any], new)
        for key in sorted(old_map.keys() | new_map.keys()):
            path = f"{prefix}.{key}" if prefix else key
            if key not in new_map:
                yield path, "delete"
            elif key not in old_map:
                yield path, "add"
            else:
                yield from _diff_paths(old_map[key], new_map[key], path)
    elif isinstance(old, list) and isinstance(new, list) and len(cast(list[Any], old)) == len(cast(list[Any], new)) and prefix:
        for index, (before, after) in enumerate(zip(cast(list[Any], old), cast(list[Any], new), strict=True)):
            yield from _diff_paths(before, after, f"{prefix}[{index}]")
    elif old != new:
        yield prefix, "update"


def _referencing(value: Any, ids: frozenset[str], prefix: str) -> Iterator[str]:
    """The paths inside a property value whose text holds one of `ids`: where a replaced
    resource's id, or an ARN or URL made from it, went into the property.
    """
    if isinstance(value, dict):
        for key, item in sorted(cast(dict[str, Any], value).items()):
            yield from _referencing(item, ids, f"{prefix}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(cast(list[Any], value)):
            yield from _referencing(item, ids, f"{prefix}[{index}]")
    elif isinstance(value, str) and any(known in value for known in ids):
        yield prefix


def _plan_states(plan: Mapping[str, Any], name: str) -> dict[str, Mapping[str, Any]]:
    states: dict[str, Mapping[str, Any]] = {}
    for raw in cast(list[Mapping[str, Any]], plan.get("steps") or []):
        if raw.get("op") != "create" or not isinstance(raw.get("newState"), dict):
            raise ValueError(f"{name}: not an offline plan (step {raw.get('urn')} is {raw.get('op')!r}, where a plan lists only creates)")
        states[str(raw["urn"])] = cast(Mapping[str, Any], raw["newState"])
    return states


def _top_keys(paths: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted({_path_segments(path)[0] for path in paths if path}))


def change_between_plans(base: Mapping[str, Any], head: Mapping[str, Any], table: Mapping[str, ReplaceRule] | None = None) -> Change:
    """The change from the base plan to the head plan, as the engine would list it: resources only
    in the head are created, only in the base deleted, in both with other inputs updated, or
    replaced where the provider replaces on that property (`replacement_table`). A replaced
    resource's outputs (its id, its ARN) are unknown until it is replaced, so a property that
    depends on it changes too, which replaces its users in turn where that property forces it, as
    the engine's preview would show. The resource options the plan records count as the engine
    counts them: `ignoreChanges` (what the program leaves to a replacement one node at a time) and
    `replaceOnChanges`. A type the table lacks is an update with a note
    saying so.
    Unchanged resources are listed as `same` steps (as `--show-sames` lists them), so that what
    reads the change sees the whole stack after it.
    """
    from review.mocks import mock_id  # noqa: PLC0415  (the ids the offline plan's mocks gave; the mocks load the SDK, which a preview's review never needs)

    rules = replacement_table() if table is None else table
    old_states, new_states = _plan_states(base, "base"), _plan_states(head, "head")
    replaced: set[str] = set()
    replaced_ids: set[str] = set()
    steps: list[Step] = []
    for urn, new in new_states.items():  # the head's order puts what a resource needs before it
        old = old_states.get(urn)
        type_ = str(new.get("type", ""))
        if old is None:
            steps.append(Step(urn, type_, "create", None, new, provider=str(new.get("provider") or ""), engine_ops=("create",)))
            continue
        diff = dict(_diff_paths(_mapping(old.get("inputs")), _mapping(new.get("inputs"))))
        inputs = _mapping(new.get("inputs"))
        for prop, users in _mapping(new.get("propertyDependencies")).items():
            if replaced.intersection(_strings(users)) and prop not in diff:
                # Only where the replaced resource's id went is unknown until it is replaced (a
                # service's secret reference, not its whole task spec), else the whole property.
                where = [path for path in _referencing(inputs.get(prop), frozenset(replaced_ids), prop) if path not in diff]
                diff.update(dict.fromkeys(where or [prop], "update"))
        ignored = _strings(new.get("ignoreChanges"))
        waiting = sorted(path for path in diff if any(_inside(path, prop) for prop in ignored))
        diff = {path: kind for path, kind in diff.items() if path not in waiting}
        notes: tuple[str, ...] = ()
        if waiting:
            notes = (f"{', '.join(waiting)} changed but ignored (ignoreChanges): applied only when the resource is replaced",)
        if not diff:
            steps.append(Step(urn, type_, "same", old, new, provider=str(new.get("provider") or ""), engine_ops=("same",), notes=notes))
            continue
        rule = rules.get(type_)
        own = ReplaceRule(_strings(new.get("replaceOnChanges")), "the resource's replaceOnChanges option")
        forcing = tuple(path for path in diff if replaces(own, path, {}) or (rule is not None and replaces(rule, path, inputs)))
        if rule is None and bool(new.get("custom")) and not forcing:
            notes = (*notes, f"no replace-on-change table for {type_}: this update may be a replacement")
        op = "replace" if forcing else "update"
        if forcing:
            replaced.add(urn)
            replaced_ids.add(mock_id(type_, urn.rsplit("::", 1)[-1]))
        detailed = {path: {"kind": f"{kind}-replace" if path in forcing else kind, "inputDiff": True} for path, kind in sorted(diff.items())}
        steps.append(Step(
            urn, type_, op, old, new,
            diff_reasons=_top_keys(diff), replace_reasons=_top_keys(forcing), detailed_diff=detailed,
            provider=str(new.get("provider") or ""), engine_ops=(op,), notes=notes,
        ))
    steps.extend(
        Step(urn, str(old.get("type", "")), "delete", old, None, provider=str(old.get("provider") or ""), engine_ops=("delete",))
        for urn, old in reversed(old_states.items()) if urn not in new_states
    )
    summary: dict[str, int] = {}
    for step in steps:
        summary[step.op] = summary.get(step.op, 0) + 1
    return Change(steps=tuple(steps), change_summary=dict(sorted(summary.items())), source="offline-diff")


def _read_json(path: Path) -> Mapping[str, Any]:
    data: object = json.loads(path.read_text())
    if not isinstance(data, dict) or not isinstance(cast(dict[str, Any], data).get("steps", []), list):
        raise ValueError(f"{path}: not a plan or a preview digest (a JSON object with a list of steps)")
    return cast(Mapping[str, Any], data)


def load_change(plan: Path, base: Path | None = None) -> Change:
    """The change in `plan`: a `pulumi preview --json` digest (or an offline plan, read as the
    preview of a new stack) as it stands; with `base`, both offline plans, compared.
    """
    if base is None:
        return change_from_digest(_read_json(plan))
    return change_between_plans(_read_json(base), _read_json(plan))


def count_ops(steps: Sequence[Step]) -> dict[str, int]:
    """Steps per op, in the engine's order of ops."""
    counts = {op: 0 for op in ENGINE_OPS}
    for step in steps:
        counts[step.op] = counts.get(step.op, 0) + 1
    return {op: n for op, n in counts.items() if n}
