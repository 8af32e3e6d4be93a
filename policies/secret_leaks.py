"""Secrets: no service environment variable or command-line argument and no rendered config (Swarm
configs, machine user data) carries a secret value. Secrets travel as Swarm secrets, mounted as
files under /run/secrets/ and named by `*_FILE` variables, or through the cloud's secret store.

A policy sees what the engine hands it: the plain value, or in the offline plan the mask
"[secret]" that a Pulumi secret leaves. A value is taken for a secret when a Pulumi secret went
into it, when it looks like one (a private key, a cloud access key, a URL with a password), or when
its name says so (PASSWORD, TOKEN, ...) and it holds a literal rather than a reference (a file path,
a `$` expansion). A command-line flag is such a name, its value written `--flag=value` or as the next
argument; `NAME=value` arguments are assignments like any other.
"""

from __future__ import annotations

import base64
import binascii
import re
import shlex
from collections.abc import Iterator
from typing import Any

from pulumi_policy import PolicyConfigSchema, ResourceValidationArgs, Severity

from dpc.config import SECRET_SHOWN
from policies.common import get, items, mapping, resource_policy

SECRET_NAME = re.compile(r"pass(word|wd|phrase)?|secret|token|api[_-]?key|private[_-]?key|access[_-]?key|credential", re.IGNORECASE)
_SECRET_LOOKS = (
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    re.compile(r"\b[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@"),
)
_ASSIGNMENT = re.compile(r"""^\s*(?:export\s+|-\s+)?["']?([A-Za-z_][\w.-]*)["']?\s*(?::|=)\s*(.*?)\s*$""")
_YAML_BLOCK = ("|", ">", "|-", ">-")
_ARGUMENT_ASSIGNMENT = re.compile(r"^([A-Za-z_][\w.-]*)=(.*)$", re.DOTALL)
_PASSWORD_SHORT_FLAGS = ("-a", "-p")
"""Short flags that give common clients their password (`redis-cli -a`, `mysql -p`). A letter says
nothing by itself, so these are named here; a number after them is a port (`redis-cli -p 6379`)."""
_HEALTHCHECK_FORMS = ("CMD", "CMD-SHELL", "NONE")
"""The first word of a Docker health check, which says how to run the rest; no argument itself."""


def _reference(value: str) -> bool:
    """Whether a value points at a secret instead of holding it: a file path, a shell or template
    expansion, or nothing at all.
    """
    return not value or value.startswith(("/", "$", "file:")) or value in _YAML_BLOCK


def secret_problem(name: str, value: str, allowed_names: list[str]) -> str | None:
    """Why the pair `name`=`value` carries a secret, or None when it does not."""
    if SECRET_SHOWN in value:
        return f"{name} holds a Pulumi secret"
    if any(pattern.search(value) for pattern in _SECRET_LOOKS):
        return f"{name} holds what looks like a key or a password"
    literal = value.strip("'\"")
    if name not in allowed_names and not name.upper().endswith(("_FILE", "-FILE")) and SECRET_NAME.search(name) and not _reference(literal):
        return f"{name} is named like a secret and holds a literal value"
    return None


def rendered_problems(label: str, text: str, allowed_names: list[str]) -> Iterator[str]:
    """The secrets in a rendered file: each `name: value` or `name=value` line is checked, and
    the whole text is searched for anything that looks like a key.
    """
    for number, line in enumerate(text.splitlines(), start=1):
        match = _ASSIGNMENT.match(line)
        problem = secret_problem(match.group(1), match.group(2), allowed_names) if match else secret_problem(f"line {number}", line, allowed_names)
        if problem:
            yield f"{label}, line {number}: {problem}"


def _allowed_names(args: ResourceValidationArgs) -> list[str]:
    return list(args.get_config()["allowedNames"])


def _tokens(argv: list[str]) -> list[str]:
    """The words of a command line, with those of shell strings (`sh -c "..."`, a CMD-SHELL
    health check) split out, so that a secret inside a script is seen like any other argument.
    """
    words: list[str] = []
    for argument in argv:
        try:
            words.extend(shlex.split(argument) if any(c.isspace() for c in argument) else [argument])
        except ValueError:
            words.extend(argument.split())
    return words


def _flag_value(word: str, following: str | None) -> tuple[str, str, int] | None:
    """A flag, its value and how many words they take (`--flag=value`: one, `--flag value`: two);
    None for a word that is no flag, or a negated one (`--no-password` takes no value).
    """
    if not word.startswith("-") or word in ("-", "--") or word[1].isdigit() or word.lstrip("-").lower().startswith("no-"):
        return None
    flag, has_value, value = word.partition("=")
    if has_value:
        return flag, value, 1
    if following is not None and not following.startswith("-"):
        return flag, following, 2
    return flag, "", 1


def _flag_problem(flag: str, value: str, allowed_names: list[str]) -> str | None:
    """Why the flag `flag` given `value` carries a secret: named like one (`--requirepass`), or a
    client's password flag holding a literal that is not a port.
    """
    problem = secret_problem(flag.lstrip("-"), value, allowed_names)
    literal = value.strip("'\"")
    if problem is None and flag in _PASSWORD_SHORT_FLAGS and not _reference(literal) and not literal.isdigit():
        problem = f"{flag} gives a password and holds a literal value"
    return problem


def argument_problems(argv: list[str], allowed_names: list[str]) -> Iterator[str]:
    """The secrets on a command line: flags named like secrets with a literal value (`--flag=value`
    or the next argument), `NAME=value` assignments, and anything that is or looks like a secret.
    A flag's value that is no secret is checked again as an argument of its own (`-e PASSWORD=x`).
    """
    words = _tokens(argv)
    index = 0
    while index < len(words):
        word = words[index]
        flagged = _flag_value(word, words[index + 1] if index + 1 < len(words) else None)
        problem = _flag_problem(flagged[0], flagged[1], allowed_names) if flagged else None
        if flagged and problem:
            yield problem
            index += flagged[2]
            continue
        assignment = _ARGUMENT_ASSIGNMENT.match(word)
        if assignment:
            problem = secret_problem(assignment.group(1), assignment.group(2), allowed_names)
        else:
            problem = secret_problem(f"#{index + 1}", word, allowed_names)
        if problem:
            yield problem
        index += 1


def _service_container(args: ResourceValidationArgs) -> Iterator[str]:
    allowed = _allowed_names(args)
    container = get(args.props, "taskSpec", "containerSpec")
    for name, value in mapping(get(container, "env")).items():
        problem = secret_problem(name, str(value), allowed)
        if problem:
            yield f"environment variable {problem}; pass it as a Swarm secret and point {name}_FILE at /run/secrets/"
    command = [str(word) for word in [*items(get(container, "commands")), *items(get(container, "args"))]]
    health = [str(word) for word in items(get(container, "healthcheck", "tests")) if str(word) not in _HEALTHCHECK_FORMS]
    for where, argv in (("command-line argument", command), ("health check argument", health)):
        for problem in argument_problems(argv, allowed):
            yield f"{where} {problem}; mount it as a Swarm secret and give the program its /run/secrets/ path (or a config that includes it)"


_CONFIG_SCHEMA = PolicyConfigSchema({
    "allowedNames": {
        "type": "array",
        "items": {"type": "string"},
        "description": "Names that look like secrets but are not: etcd's cluster token, as variable or config key, only tells clusters apart.",
        "default": ["ETCD_INITIAL_CLUSTER_TOKEN", "initial-cluster-token"],
    },
})

NO_SECRET_IN_SERVICE_ENV = resource_policy(
    "no-secret-in-service-environment",
    "No Swarm service's environment variable, command-line argument or health check carries a secret value.",
    severity=Severity.CRITICAL,
    remediation="Create a docker.Secret, list it in the service's taskSpec.containerSpec.secrets, and set NAME_FILE=/run/secrets/<name> instead of NAME; "
    "on a command line, pass the secret's path (a --password-file flag, or a config file that includes the secret) instead of its value.",
    checks={"docker:index/service:Service": _service_container},
    config_schema=_CONFIG_SCHEMA,
)


def _decoded(text: Any) -> str:
    """Base64 content as text (Docker configs are URL-safe base64, cloud user data standard)."""
    raw = str(text)
    try:
        return base64.b64decode(raw.replace("-", "+").replace("_", "/") + "=" * (-len(raw) % 4), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return raw


def _rendered(args: ResourceValidationArgs, texts: list[tuple[str, Any]]) -> Iterator[str]:
    allowed = _allowed_names(args)
    for label, text in texts:
        if isinstance(text, str):
            yield from rendered_problems(label, text, allowed)


def _docker_config(args: ResourceValidationArgs) -> Iterator[str]:
    data = get(args.props, "data")
    yield from _rendered(args, [("config data", _decoded(data) if data is not None else None), ("config dataRaw", get(args.props, "dataRaw"))])


def _aws_user_data(args: ResourceValidationArgs) -> Iterator[str]:
    encoded = get(args.props, "userDataBase64")
    yield from _rendered(args, [("user data", get(args.props, "userData")), ("user data", _decoded(encoded) if encoded is not None else None)])


def _aws_launch_template(args: ResourceValidationArgs) -> Iterator[str]:
    encoded = get(args.props, "userData")
    yield from _rendered(args, [("user data", _decoded(encoded) if encoded is not None else None)])


def _gcp_instance(args: ResourceValidationArgs) -> Iterator[str]:
    metadata = mapping(get(args.props, "metadata"))
    yield from _rendered(args, [("metadata user-data", metadata.get("user-data")), ("metadata startup-script", metadata.get("startup-script")),
                                ("metadataStartupScript", get(args.props, "metadataStartupScript"))])


def _azure_vm(args: ResourceValidationArgs) -> Iterator[str]:
    custom, user = get(args.props, "osProfile", "customData"), get(args.props, "userData")
    yield from _rendered(args, [("customData", _decoded(custom) if custom is not None else None), ("userData", _decoded(user) if user is not None else None)])


NO_SECRET_IN_RENDERED_CONFIG = resource_policy(
    "no-secret-in-rendered-config",
    "No rendered config (a Swarm config, a machine's user data) carries a secret value.",
    severity=Severity.CRITICAL,
    remediation="Keep the secret in a docker.Secret or the cloud's secret store and render only its name or path; machines fetch it at boot.",
    checks={
        "docker:index/serviceConfig:ServiceConfig": _docker_config,
        "aws:ec2/instance:Instance": _aws_user_data,
        "aws:ec2/launchTemplate:LaunchTemplate": _aws_launch_template,
        "gcp:compute/instance:Instance": _gcp_instance,
        "azure-native:compute:VirtualMachine": _azure_vm,
    },
    config_schema=_CONFIG_SCHEMA,
)

POLICIES = [NO_SECRET_IN_SERVICE_ENV, NO_SECRET_IN_RENDERED_CONFIG]
