"""Reads a stack's `dpc:*` configuration, through `pulumi.Config` in a running program or from its
stack file for offline tools, and validates it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import pulumi
import yaml
from pulumi.runtime.config import CONFIG, get_config_env

from dpc.settings import CONFIG_NAMESPACE, Settings, settings_from_config

SECRET_SHOWN = "[secret]"


class StackFileError(ValueError):
    """A stack file that is missing or not shaped like one."""


def decode_config_value(text: str) -> object:
    """A value as the stack file wrote it: the engine hands objects, lists, numbers and booleans
    over as JSON text, and plain strings as they are.
    """
    try:
        return cast(object, json.loads(text))
    except json.JSONDecodeError:
        return text


def config_keys() -> list[str]:
    """Every key the stack sets in the program's namespace, known to the program or not, so that
    unknown keys can be reported instead of silently ignored.
    """
    keys = set(CONFIG.get()) | set(get_config_env())
    prefix = f"{CONFIG_NAMESPACE}:"
    return sorted(key.removeprefix(prefix) for key in keys if key.startswith(prefix))


def load_settings() -> Settings:
    """The validated settings of the running stack; raises SettingsError listing every problem."""
    config = pulumi.Config(CONFIG_NAMESPACE)
    return settings_from_config({key: decode_config_value(config.require(key)) for key in config_keys()})


def stack_file_config(path: Path) -> tuple[dict[str, str], list[str]]:
    """A stack file's config as the engine passes it to the program (objects as JSON text, scalars
    as text), and its secret keys, whose encrypted values are shown as "[secret]".
    """
    if not path.is_file():
        known = sorted(p.name for p in path.parent.glob("Pulumi.*.yaml"))
        raise StackFileError(f"no stack file {path.name}; stack files here: {', '.join(known) or 'none'}")
    document: object = yaml.safe_load(path.read_text()) or {}
    raw: object = cast(dict[str, Any], document).get("config") if isinstance(document, dict) else None
    if not isinstance(raw, dict):
        raise StackFileError(f"{path.name} must be a mapping with a `config:` mapping")
    config: dict[str, str] = {}
    secret_keys: list[str] = []
    for key, value in cast(dict[str, Any], raw).items():
        shown, secret = _masked(value)
        config[key] = shown if isinstance(shown, str) else json.dumps(shown)
        if secret:
            secret_keys.append(key)
    return config, secret_keys


def _masked(value: Any) -> tuple[Any, bool]:
    """A config value with every encrypted part (`secure:`, also nested, as `pulumi config set
    --secret --path` writes it) shown as "[secret]", and whether it had one: the engine then treats
    the whole key as secret.
    """
    if isinstance(value, dict):
        mapping = cast(dict[str, Any], value)
        if set(mapping) == {"secure"}:
            return SECRET_SHOWN, True
        items = {k: _masked(v) for k, v in mapping.items()}
        return {k: shown for k, (shown, _) in items.items()}, any(secret for _, secret in items.values())
    if isinstance(value, list):
        elements = [_masked(v) for v in cast(list[Any], value)]
        return [shown for shown, _ in elements], any(secret for _, secret in elements)
    return value, False


def settings_from_stack_file(path: Path) -> Settings:
    """The validated settings a stack file gives, read as the engine would hand them over."""
    config, _ = stack_file_config(path)
    prefix = f"{CONFIG_NAMESPACE}:"
    return settings_from_config({k.removeprefix(prefix): decode_config_value(v) for k, v in config.items() if k.startswith(prefix)})
