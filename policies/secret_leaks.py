"""Secrets: no service environment variable or command-line argument, no rendered config (Swarm
configs, machine user data, plain SSM parameters) and no other property carries a secret value.
Secrets travel as Swarm secrets, mounted as files under /run/secrets/ and named by `*_FILE`
variables, or through the cloud's secret store.

What a policy is handed decides how a leak can be seen. At `pulumi up` the engine hands the pack
plaintext (a Pulumi secret's mask exists only in the offline plan), and at a first preview a value
computed from a generated password is unknown. So leaks are found two ways, neither by the mask:
- by where a value comes from (`no-generated-secret-outside-secret-stores`): a property computed
  directly from a generated password or private key, on any resource that is not a secret store
  (a Docker secret, an SSM SecureString, the deployment's own SSH connection), is a leak whatever
  its value; the engine knows these property dependencies at preview as well as at `up`;
- by what a value says (`no-secret-in-service-environment`, `no-secret-in-rendered-config`): a
  literal in a place that holds a password, in the syntaxes our files use (`NAME=value`, YAML,
  `export`, space-separated directives such as Redis `requirepass` or HAProxy `stats auth`, libpq's
  `password=`, SQL's `PASSWORD '...'`, cloud-init's `chpasswd` and users, gzip or base64 layers),
  or a value shaped like a key or a URL with a password. This catches a password typed in by hand,
  which no dependency shows. A reference to a secret (`/run/secrets/...`, `$VAR`, `${file}`,
  `file://`) is not a leak.
"""

from __future__ import annotations

import base64
import binascii
import email
import gzip
import io
import re
import shlex
import zlib
from collections.abc import Iterator, Mapping
from typing import Any, cast

import yaml
from pulumi_policy import PolicyConfigSchema, PolicyResource, ResourceValidationArgs, Severity, StackValidationArgs

from policies.common import get, items, judge_each, mapping, resource_policy, stack_policy
from policies.identity import UNKNOWN, peek

SECRET_NAME = re.compile(r"pass(word|wd|phrase)?|secret|token|api[_-]?key|private[_-]?key|access[_-]?key|credential|masterauth", re.IGNORECASE)
Rule = tuple[str, re.Pattern[str], str]
"""A word a match cannot be without (tested first: a cheap test that spares most texts the
regex), the pattern, and what it finds."""


def _rules(rows: tuple[tuple[str, str, str], ...], flags: int = 0) -> tuple[Rule, ...]:
    return tuple((word, re.compile(pattern, flags), what) for word, pattern, what in rows)


def _found(rules: tuple[Rule, ...], text: str) -> Iterator[tuple[re.Match[str], str]]:
    """Each match of the rules in the text, with what it finds; a rule is run only on a text that
    has its word (in any case when the rule ignores case).
    """
    lowered = text.lower()
    for word, pattern, what in rules:
        if word in (lowered if pattern.flags & re.IGNORECASE else text):
            yield from ((match, what) for match in pattern.finditer(text))


_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
_ASSIGNMENT = re.compile(
    r"""^[ \t]*(?:export[ \t]+|readonly[ \t]+|local[ \t]+|-[ \t]+)?["']?(?P<name>[A-Za-z_][\w.-]*)["']?[ \t]*[:=][ \t]*(?P<value>.*?)[ \t]*$""",
    re.MULTILINE,
)
"""A line that assigns a value to a name: `NAME=value`, `name: value`, `name = value`, `export
NAME=...`, a YAML list's `- name: value`."""
_NOT_A_SECRET = re.compile(r"[_.-](file|path|dir|encryption|type|length|ttl|name|id|arn|query|command)$", re.IGNORECASE)
"""Names like a secret's that say what they hold is about a secret, not one: where it is
(`*_FILE`, `*_path`), what it is called, how it is made (`password_encryption`)."""
_YAML_BLOCK = ("|", ">", "|-", ">-")
_ARGUMENT_ASSIGNMENT = re.compile(r"^([A-Za-z_][\w.-]*)=(.*)$", re.DOTALL)
_PASSWORD_SHORT_FLAGS = ("-a", "-p")
"""Short flags that give common clients their password (`redis-cli -a`, `mysql -p`). A letter says
nothing by itself, so these are named here; a number after them is a port (`redis-cli -p 6379`)."""
_HEALTHCHECK_FORMS = ("CMD", "CMD-SHELL", "NONE")
"""The first word of a Docker health check, which says how to run the rest; no argument itself."""
_CRYPT_HASH = re.compile(r"^\$(1|2[abxy]?|5|6|y|gy|7|argon2(id|i|d)?)\$")
"""A crypt(3) password hash (`$6$salt$...`): starts with `$` like a shell expansion, but is a
credential an attacker can crack offline, as much a leak as the password."""
_PRINTED_LITERAL = re.compile(r"""^\$\(\s*(?:echo|printf)\s+(?:-\w+\s+)*['"]?[^\s$'"`)]""")
_QUOTED = r"'(?:[^'\\\n]|\\.)*'|\"(?:[^\"\\\n]|\\.)*\""
_SHAPES = _rules(
    (
        ("private key", r"(?-i:(?P<value>-----BEGIN [A-Z ]*PRIVATE KEY-----))", "what looks like a private key"),
        ("akia", r"(?-i:(?P<value>\bAKIA[0-9A-Z]{16}\b))", "what looks like a cloud access key"),
        ("asia", r"(?-i:(?P<value>\bASIA[0-9A-Z]{16}\b))", "what looks like a cloud access key"),
        ("://", r"(?P<value>://[^/\s:@]*:[^/\s@$]+@)", "what looks like a URL with a password"),
        ("swmtkn-1-", r"(?-i:(?P<value>\bSWMTKN-1-[0-9a-z]{20,}))", "what looks like a Swarm join token"),
        ("requirepass", r"^[ \t]*requirepass[ \t]+(?P<value>\S+)", "a literal password in Redis's requirepass"),
        ("masterauth", r"^[ \t]*masterauth[ \t]+(?P<value>\S+)", "a literal password in Redis's masterauth"),
        ("stats", r"^[ \t]*stats[ \t]+auth[ \t]+[^:\s]+:(?P<value>\S+)", "a literal password in HAProxy's stats auth"),
        ("password", r"^[ \t]*user[ \t]+\S+[ \t]+(?:insecure-)?password[ \t]+(?P<value>\S+)", "a literal password in an HAProxy userlist"),
        ("user", r"^[ \t]*user[ \t]+\S+(?:[ \t]+\S+)*?[ \t]+[>#](?P<value>[^\s>#]+)", "a literal password in a Redis ACL"),
        ("password", rf"(?:^|[ \t;?&'\"(])password[ \t]*=[ \t]*(?P<value>['\"]{{0,2}}[^\s;&'\")]+|{_QUOTED})", "a literal libpq or ini password="),
        ("password", rf"\bpassword[ \t]+(?P<value>{_QUOTED})", "a literal password in an SQL PASSWORD"),
        ('"', r'^[ \t]*"[^"\n]+"[ \t]+"(?P<value>[^"\n]+)"[ \t]*$', "a literal password in a PgBouncer userlist entry"),
        ("machine", r"^[ \t]*machine[ \t]+\S+.*\bpassword[ \t]+(?P<value>\S+)", "a literal password in a netrc entry"),
        ("chpasswd", r"[A-Za-z_][\w.-]*:(?P<value>[^\s'\":|]+)['\"]?[ \t]*\|[ \t]*(?:sudo[ \t]+)?chpasswd\b", "a literal password piped to chpasswd"),
    ),
    re.MULTILINE | re.IGNORECASE,
)
"""Values shaped like a secret whatever their name (keys, join tokens, a URL's password), and the
places our files' syntaxes keep a password: space-separated directives (Redis, HAProxy, netrc),
libpq keyword strings and ini keys (`password=`, also in a URL's query), SQL, PgBouncer's userlist
and a shell's `user:pass | chpasswd`; each with its value's group, a leak when it holds a literal.
Each is searched over a whole text at once (user data is thousands of lines, and the pack has a
time budget)."""
_EMBEDDED_BASE64 = re.compile(r"[A-Za-z0-9+/]{64,}={0,2}")
"""A long base64 run inside a script (`echo ... | base64 -d | sh`): decoded and read as well."""
_WRITE_FILES_ENCODINGS = ("b64", "base64", "gz+b64", "gzip+base64", "gz+base64", "gzip+b64")
"""cloud-init's `write_files` encodings; the file is written decoded."""
_DECODE_LAYERS = 3
_MAX_DECODED = 1 << 20
"""Bounds on unwrapping base64 and gzip layers: enough for user data (16 KiB) wrapped a few times,
never a decompression bomb."""


_SECRET_MANAGER_NAME = re.compile(r"projects/[^/\s]+/secrets/[^/\s]+(/versions/[^/\s]+)?")
"""A Secret Manager secret's resource name (`projects/p/secrets/name`, a version's too): where a GCP
node reads a secret from, as an SSM parameter's path is on AWS."""
_KEY_VAULT_SECRET = re.compile(r"https://[0-9A-Za-z-]{3,24}\.vault\.azure\.net/secrets/[0-9A-Za-z-]{1,127}(/[0-9a-f]{32})?/?")
"""A Key Vault secret's identifier (`https://<vault>.vault.azure.net/secrets/<name>`, a version's
too): where an Azure node reads a secret from. A secret's bare name is not one: any short literal
is shaped like it."""
_FLAGS = ("true", "false")
"""What a setting named like a secret holds when it only switches something (cloud-init's `lock_passwd: true`)."""


def _reference(value: str) -> bool:
    """Whether a value points at a secret instead of holding it: a file path, a Secret Manager
    secret's name, a Key Vault secret's identifier, a shell or template expansion, a YAML block's marker,
    an on/off flag, or nothing at all. A crypt hash is no reference, nor a command substitution that only prints a literal (`$(echo aHVudGVy | base64 -d)`).
    """
    if _CRYPT_HASH.match(value) or _PRINTED_LITERAL.match(value):
        return False
    return (not value or value.startswith(("/", "$", "file:", ":'", ':"')) or value in _YAML_BLOCK or value.lower() in _FLAGS
            or bool(_SECRET_MANAGER_NAME.fullmatch(value)) or bool(_KEY_VAULT_SECRET.fullmatch(value)))


def _literal(value: str) -> bool:
    return not _reference(value.strip().strip("'\""))


def shapes(text: str) -> Iterator[tuple[int, str]]:
    """Each of `_SHAPES` in the text that holds a literal, as (offset, what it holds)."""
    for match, what in _found(_SHAPES, text):
        if _literal(match.group("value")):
            yield match.start(), what


def _named_problem(name: str, value: str, allowed_names: list[str]) -> str | None:
    if name not in allowed_names and not _NOT_A_SECRET.search(name) and SECRET_NAME.search(name) and _literal(value):
        return f"{name} is named like a secret and holds a literal value"
    return None


def secret_problem(name: str, value: str, allowed_names: list[str]) -> str | None:
    """Why the pair `name`=`value` carries a secret, or None when it does not."""
    shape = next((what for _, what in shapes(value)), None)
    return f"{name} holds {shape}" if shape else _named_problem(name, value, allowed_names)


def _scan(text: str, allowed_names: list[str], depth: int = 0) -> Iterator[tuple[int, str]]:
    """Every secret in a text, as (offset, message): `_SHAPES`, secret-named assignments, and what
    long base64 runs inside it decode to.
    """
    yield from ((offset, f"it holds {what}") for offset, what in shapes(text))
    for match in _ASSIGNMENT.finditer(text):
        problem = _named_problem(match.group("name"), match.group("value"), allowed_names)
        if problem:
            yield match.start(), problem
    if depth < _DECODE_LAYERS:
        for match in _EMBEDDED_BASE64.finditer(text):
            inner = decoded(match.group())
            if inner != match.group():
                yield from ((match.start(), f"base64 inside it: {problem}") for _, problem in _scan(inner, allowed_names, depth + 1))


def decoded(value: str) -> str:
    """Text as a machine or Docker reads it: base64 (standard or URL-safe) and gzip layers
    unwrapped, a few deep; anything that does not decode to text is taken as it is.
    """
    text = value
    for _ in range(_DECODE_LAYERS):
        unwrapped = _unwrap(text)
        if unwrapped is None:
            break
        text = unwrapped
    return text


def _unwrap(text: str) -> str | None:
    """One base64 or gzip layer off `text`, or None when it has none."""
    compact = "".join(text.split())
    if len(compact) < 8 or not re.fullmatch(r"[A-Za-z0-9+/_-]+=*", compact):
        return None
    try:
        raw = base64.b64decode(compact.replace("-", "+").replace("_", "/") + "=" * (-len(compact) % 4), validate=True)
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.GzipFile(fileobj=io.BytesIO(raw)).read(_MAX_DECODED)
        result = raw.decode()
    except (binascii.Error, UnicodeDecodeError, OSError, EOFError, zlib.error):
        return None
    return result if result.isprintable() or "\n" in result or "\t" in result else None


def _multipart(text: str) -> list[str]:
    """The parts of MIME multipart user data (cloud-init's format for several parts), each decoded."""
    if not text.lstrip().lower().startswith(("content-type: multipart", "mime-version")):
        return [text]
    parts: list[str] = []
    for part in email.message_from_string(text).walk():
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            parts.append(decoded(payload.decode(errors="replace")))
    return parts or [text]


def text_problems(label: str, text: str, allowed_names: list[str]) -> Iterator[str]:
    """The secrets in a rendered file or user data: decoded (base64, gzip, MIME parts), searched
    whole (`_scan`), and for cloud-config what only its structure shows (`_cloud_config_problems`).
    One message a line, by line number.
    """
    for part in _multipart(decoded(text)):
        found: dict[int, str] = {}
        for offset, problem in _scan(part, allowed_names):
            found.setdefault(part.count("\n", 0, offset) + 1, problem)
        yield from (f"{label}, line {number}: {problem}" for number, problem in sorted(found.items()))
        yield from _cloud_config_problems(label, part, allowed_names)


def _cloud_config_problems(label: str, text: str, allowed_names: list[str]) -> Iterator[str]:
    """cloud-init's `chpasswd` (its `user:password` lines hold no name a line search could know)
    and `write_files` contents in an encoding, read decoded. Parsed only when the text has either:
    YAML parsing is the costly part of reading user data.
    """
    if not text.startswith("#cloud-config") or ("chpasswd" not in text and "encoding" not in text):
        return
    try:
        document: Any = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError:
        return
    yield from (f"{label}: {problem}" for problem in _chpasswd_problems(get(document, "chpasswd")))
    for entry in items(get(document, "write_files")):
        content, encoding = get(entry, "content"), str(get(entry, "encoding") or "").lower()
        if isinstance(content, str) and encoding in _WRITE_FILES_ENCODINGS:
            yield from text_problems(f"{label}, write_files {get(entry, 'path')}", content, allowed_names)


def _chpasswd_problems(value: Any) -> Iterator[str]:
    """cloud-init's `chpasswd`: `list` (a text of `user:password` lines, or a list) and `users`
    (each with a `password`); `R`/`RANDOM` and `type: RANDOM` ask cloud-init to generate one.
    """
    entries = get(value, "list")
    lines = entries.splitlines() if isinstance(entries, str) else [str(e) for e in items(entries)]
    for line in lines:
        password = line.partition(":")[2].strip()
        if password and password not in ("R", "RANDOM") and _literal(password):
            yield "chpasswd.list sets a literal password"
    for user in items(get(value, "users")):
        password = get(user, "password")
        if isinstance(password, str) and str(get(user, "type") or "").upper() != "RANDOM" and _literal(password):
            yield "chpasswd.users sets a literal password"


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
    or the next argument), `NAME=value` assignments, anything that is or looks like a secret, and in
    a script argument (`sh -c "..."`) what `_scan` finds (`user:pass | chpasswd`, base64 inside).
    A flag's value that is no secret is checked again as an argument of its own (`-e PASSWORD=x`).
    """
    for argument in argv:
        for _, problem in _scan(argument, allowed_names) if any(c.isspace() for c in argument) else ():
            yield f"a script's line: {problem}"
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


def _container_problems(env: Mapping[str, Any], command: list[str], health: list[str], allowed: list[str]) -> Iterator[str]:
    for name, value in env.items():
        problem = secret_problem(name, str(value), allowed)
        if problem:
            yield f"environment variable {problem}; pass it as a Swarm secret and point {name}_FILE at /run/secrets/"
    for where, argv in (("command-line argument", command), ("health check argument", [w for w in health if w not in _HEALTHCHECK_FORMS])):
        for problem in argument_problems(argv, allowed):
            yield f"{where} {problem}; mount it as a Swarm secret and give the program its /run/secrets/ path (or a config that includes it)"


def _labels_problems(labels: Any, allowed: list[str]) -> Iterator[str]:
    """Service and container labels (`{label, value}` pairs): anyone who may list services reads them."""
    for entry in items(labels):
        problem = secret_problem(str(get(entry, "label")), str(get(entry, "value")), allowed)
        if problem:
            yield f"label {problem}"


def _service_container(args: ResourceValidationArgs) -> Iterator[str]:
    allowed = _allowed_names(args)
    container = get(args.props, "taskSpec", "containerSpec")
    command = [str(word) for word in [*items(get(container, "commands")), *items(get(container, "args"))]]
    health = [str(word) for word in items(get(container, "healthcheck", "tests"))]
    yield from _container_problems(mapping(get(container, "env")), command, health, allowed)
    yield from _labels_problems(get(args.props, "labels"), allowed)
    yield from _labels_problems(get(container, "labels"), allowed)


def _docker_container(args: ResourceValidationArgs) -> Iterator[str]:
    allowed = _allowed_names(args)
    env = {name: value for name, _, value in (str(pair).partition("=") for pair in items(get(args.props, "envs")))}
    command = [str(word) for word in [*items(get(args.props, "entrypoints")), *items(get(args.props, "command"))]]
    health = [str(word) for word in items(get(args.props, "healthcheck", "tests"))]
    yield from _container_problems(env, command, health, allowed)
    yield from _labels_problems(get(args.props, "labels"), allowed)


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
    "No Swarm service's or container's environment variable, command-line argument, health check or label carries a secret value.",
    severity=Severity.CRITICAL,
    remediation="Create a docker.Secret, list it in the service's taskSpec.containerSpec.secrets, and set NAME_FILE=/run/secrets/<name> instead of NAME; "
    "on a command line, pass the secret's path (a --password-file flag, or a config file that includes the secret) instead of its value.",
    checks={"docker:index/service:Service": _service_container, "docker:index/container:Container": _docker_container},
    config_schema=_CONFIG_SCHEMA,
)


def _rendered(args: ResourceValidationArgs, texts: list[tuple[str, tuple[str, ...]]]) -> Iterator[str]:
    """The problems of each rendered text at its path in the resource's properties. The texts known
    are judged first: one that is unknown during a preview (user data computed from resources still to
    be made) leaves the resource unjudged, as the engine reports it, only once the others have been.
    """
    allowed = _allowed_names(args)
    unknown = [path for _, path in texts if peek(args.props, *path) is UNKNOWN]
    for label, path in texts:
        text = peek(args.props, *path)
        if isinstance(text, str) and path not in unknown:
            yield from text_problems(label, text, allowed)
    for path in unknown:
        get(args.props, *path)  # raises the engine's unknown-value error


def _docker_config(args: ResourceValidationArgs) -> Iterator[str]:
    yield from _rendered(args, [("config data", ("data",)), ("config dataRaw", ("dataRaw",))])


def _aws_user_data(args: ResourceValidationArgs) -> Iterator[str]:
    yield from _rendered(args, [("user data", ("userData",)), ("user data", ("userDataBase64",))])


def _aws_launch_template(args: ResourceValidationArgs) -> Iterator[str]:
    yield from _rendered(args, [("user data", ("userData",))])


def _aws_parameter(args: ResourceValidationArgs) -> Iterator[str]:
    """A String or StringList SSM parameter is readable by anyone who may describe parameters and
    is stored unencrypted: one named like a secret, or holding one, is a leak.
    """
    if get(args.props, "type") == "SecureString":
        return
    name = str(get(args.props, "name") or args.name)
    for key in ("value", "insecureValue"):
        value = get(args.props, key)
        if not isinstance(value, str):
            continue
        problem = secret_problem(name.rsplit("/", 1)[-1], value, _allowed_names(args))
        if problem:
            yield f"a {get(args.props, 'type')} parameter: {problem}; make it a SecureString under the stack's key"
        else:
            yield from text_problems(f"parameter {key}", value, _allowed_names(args))


def _gcp_instance(args: ResourceValidationArgs) -> Iterator[str]:
    yield from _rendered(args, [("metadata user-data", ("metadata", "user-data")), ("metadata startup-script", ("metadata", "startup-script")),
                                ("metadataStartupScript", ("metadataStartupScript",))])


def _azure_vm(args: ResourceValidationArgs) -> Iterator[str]:
    yield from _rendered(args, [("customData", ("osProfile", "customData")), ("userData", ("userData",))])


NO_SECRET_IN_RENDERED_CONFIG = resource_policy(
    "no-secret-in-rendered-config",
    "No rendered config (a Swarm config, a machine's user data, a plain SSM parameter) carries a secret value.",
    severity=Severity.CRITICAL,
    remediation="Keep the secret in a docker.Secret or the cloud's secret store and render only its name or path; machines fetch it at boot.",
    checks={
        "docker:index/serviceConfig:ServiceConfig": _docker_config,
        "aws:ec2/instance:Instance": _aws_user_data,
        "aws:ec2/launchTemplate:LaunchTemplate": _aws_launch_template,
        "aws:ssm/parameter:Parameter": _aws_parameter,
        "gcp:compute/instance:Instance": _gcp_instance,
        "azure-native:compute:VirtualMachine": _azure_vm,
    },
    config_schema=_CONFIG_SCHEMA,
)

GENERATED_SECRETS = {
    "random:index/randomPassword:RandomPassword": "the generated password",
    "tls:index/privateKey:PrivateKey": "the generated private key",
    "aws:iam/accessKey:AccessKey": "the IAM access key",
    "gcp:serviceaccount/key:Key": "the service account key",
}
"""Resources whose outputs are secrets the program generates."""

_SECRET_STORES: dict[str, frozenset[str] | None] = {
    "docker:index/secret:Secret": None,
    "aws:secretsmanager/secretVersion:SecretVersion": frozenset({"secretString", "secretBinary"}),
    "gcp:secretmanager/secretVersion:SecretVersion": frozenset({"secretData"}),
    "azure-native:keyvault:Secret": frozenset({"properties"}),
    "command:remote:Command": frozenset({"connection"}),
    "tls:index/certRequest:CertRequest": frozenset({"privateKeyPem"}),
    "tls:index/selfSignedCert:SelfSignedCert": frozenset({"privateKeyPem"}),
    "tls:index/locallySignedCert:LocallySignedCert": frozenset({"caPrivateKeyPem"}),
}
"""Where a generated secret may go, by type and property (None: any property): the secret stores,
the deployment's own SSH connection, and the TLS provider signing with the key. A Docker secret's
name is derived from its content (a keyed digest, design §3.2) and is fine too. Providers take their
credentials anywhere (they stay in the engine's state), and an SSM parameter stores one only as a
SecureString (`_stores`)."""

_PUBLIC_HALF: dict[str, frozenset[str]] = {
    "aws:ec2/instance:Instance": frozenset({"userData", "userDataBase64"}),
    "aws:ec2/launchTemplate:LaunchTemplate": frozenset({"userData"}),
    "aws:ec2/keyPair:KeyPair": frozenset({"publicKey"}),
    "gcp:compute/instance:Instance": frozenset({"metadata"}),
    "azure-native:compute:VirtualMachine": frozenset({"osProfile", "tags"}),
}
"""Properties that take a generated key's public half (authorized SSH keys in user data, a key
pair, an Azure machine's `Bootstrap` tag: a digest of its custom data, which replaces the machine
when its bootstrap changes): a dependency on the key does not say which half came through, so the value is read, and
must hold no private key. During a preview the value is unknown, and the resource is left unjudged
(`judge_each` says so); at `up`, before the resource is created, it is judged. Where the engine hands
this whole-stack policy a digest in place of the user data (the AWS provider keeps `userData` as its
SHA-1), `no-secret-in-rendered-config`, which reads each resource's inputs, finds a key written there."""


def _stores(resource: PolicyResource, prop: str) -> bool:
    """Whether `resource`'s property `prop` may take a generated secret."""
    if resource.resource_type.startswith("pulumi:providers:"):
        return True
    if resource.resource_type == "aws:ssm/parameter:Parameter":
        return prop == "value" and get(resource.props, "type") == "SecureString"
    if resource.resource_type in _SECRET_STORES:
        allowed = _SECRET_STORES[resource.resource_type]
        return allowed is None or prop in allowed
    return False


def _strings(value: Any) -> Iterator[str]:
    """Every string inside a property (reading each, so that an unknown one raises)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in cast(Mapping[str, Any], value).values():
            yield from _strings(item)
    else:
        for item in items(value):
            yield from _strings(item)


def _carries_private_half(resource: PolicyResource, prop: str) -> bool:
    return any(_PRIVATE_KEY.search(decoded(text)) for text in _strings(get(resource.props, prop)))


def _provenance(resource: PolicyResource) -> Iterator[str]:
    """Each property of `resource` computed directly from a generated secret where it may not go."""
    for prop, sources in sorted(resource.property_dependencies.items()):
        generated = sorted({s.name: s for s in sources if s.resource_type in GENERATED_SECRETS}.values(), key=lambda s: s.name)
        if not generated or _stores(resource, prop):
            continue
        keys_only = all(s.resource_type == "tls:index/privateKey:PrivateKey" for s in generated)
        if keys_only and prop in _PUBLIC_HALF.get(resource.resource_type, frozenset()) and not _carries_private_half(resource, prop):
            continue
        named = ", ".join(f"{GENERATED_SECRETS[s.resource_type]} {s.name}" for s in generated)
        yield f"{prop} is computed from {named}; a generated secret reaches a service or a machine only as a Docker secret or through the cloud's secret store"


def _generated_secrets_in_plain_sight(args: StackValidationArgs) -> Iterator[tuple[str, str]]:
    yield from judge_each(args.resources, _provenance)


NO_GENERATED_SECRET_OUTSIDE_STORES = stack_policy(
    "no-generated-secret-outside-secret-stores",
    "No property outside a secret store (a service's or config's content, user data, a plain parameter, a tag) "
    "is computed from a generated password or private key.",
    severity=Severity.CRITICAL,
    remediation="Put the generated value in a docker.Secret (or an SSM SecureString for machines) "
    "and pass the consumer its name or /run/secrets/ path, never the value.",
    check=_generated_secrets_in_plain_sight,
    clouds=["aws", "azure-native", "docker", "gcp"],
)


def _password_length(args: ResourceValidationArgs) -> Iterator[str]:
    minimum = int(args.get_config()["minLength"])
    length = get(args.props, "length")
    if not isinstance(length, (int, float)) or length < minimum:
        yield f"length {length} is below the minimum of {minimum} characters"


GENERATED_PASSWORDS_LONG_ENOUGH = resource_policy(
    "generated-passwords-long-enough",
    "Every generated password is at least the configured minimum length.",
    severity=Severity.HIGH,
    remediation="Raise the RandomPassword's length (dpc.cluster.GENERATED_SECRET_LENGTHS) to at least the minimum.",
    checks={"random:index/randomPassword:RandomPassword": _password_length},
    config_schema=PolicyConfigSchema({
        "minLength": {
            "type": "integer",
            "minimum": 16,
            "description": "Fewest characters a generated password may have: 32 letters and digits are 190 bits, beyond any guessing.",
            "default": 32,
        },
    }),
)

POLICIES = [NO_SECRET_IN_SERVICE_ENV, NO_SECRET_IN_RENDERED_CONFIG, NO_GENERATED_SECRET_OUTSIDE_STORES, GENERATED_PASSWORDS_LONG_ENOUGH]
