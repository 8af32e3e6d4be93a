"""The offline plan's mocks: each cloud's resources and data sources answered by that cloud's own
mocks (`providers/<cloud>/mocks.py`, chosen by the type token's package, `aws:`, `gcp:` or `azure-native:`), and
what every cloud shares answered here (pulumi-random, tls, command, docker), so that every
dependent value of the program resolves as it would against the cloud.

With `preview`, every mock answers as the engine does in a stack's first `pulumi preview` instead:
a resource to be created has no id yet and its provider computes nothing, so it echoes its inputs
and every other output (ids, addresses, generated names, passwords, keys, digests) stays unknown.
"""

from __future__ import annotations

import datetime
import hashlib
import importlib
import ipaddress
from collections.abc import Mapping
from typing import Any, Protocol, cast

import pulumi

CLOUD_MOCKS = {"aws": "providers.aws.mocks", "gcp": "providers.gcp.mocks", "azure-native": "providers.azure.mocks"}
"""The module of each cloud's mocks, by the package of its type tokens. Each has `for_stack(config,
today, preview=...)` giving its mocks and `mock_id(typ, name, inputs, provider_inputs)`; imported on
first use, so a plan of one cloud loads nothing of another.
"""


def digest(text: str, length: int) -> str:
    """A stable stand-in derived from a name: the same name gives the same id, address or key."""
    return hashlib.sha256(text.encode()).hexdigest()[:length]


SECRET_SIG, SECRET_MARK = "4dabf18193072939515e22adb298388d", "1b47061264138c4ac30d75fd1eb44270"
"""How the engine's wire format marks a value secret."""


def secret(value: str) -> dict[str, str]:
    """An output the provider's schema declares secret, marked secret as the engine would mark it."""
    return {SECRET_SIG: SECRET_MARK, "value": value}


def generated_password(name: str, length: int) -> str:
    """The value the mocks give a generated password: tests look for it where it must not be."""
    return digest(name, length)


def _pem(kind: str, name: str) -> str:
    """A PEM-shaped stand-in: the plan shows where a key or certificate goes, never a real one."""
    return f"-----BEGIN {kind}-----\nmock-{digest(name, 32)}\n-----END {kind}-----\n"


def _generated(typ: str, name: str, state: dict[str, Any]) -> dict[str, Any]:
    """What the random, TLS and Docker providers compute: stand-ins of the same shape."""
    if typ == "random:index/randomPassword:RandomPassword":
        return {"result": secret(generated_password(name, int(state.get("length", 32))))}
    if typ == "tls:index/privateKey:PrivateKey":
        return {
            "privateKeyPem": secret(_pem("PRIVATE KEY", name)),
            "publicKeyPem": _pem("PUBLIC KEY", name),
            "privateKeyOpenssh": secret(_pem("OPENSSH PRIVATE KEY", name)),
            "publicKeyOpenssh": f"ssh-ed25519 mock{digest(name, 32)}\n",
        }
    if typ in {"tls:index/selfSignedCert:SelfSignedCert", "tls:index/locallySignedCert:LocallySignedCert"}:
        return {"certPem": _pem("CERTIFICATE", name)}
    if typ == "tls:index/certRequest:CertRequest":
        return {"certRequestPem": _pem("CERTIFICATE REQUEST", name)}
    if typ == "docker:index/image:Image":
        repository = str(state["imageName"]).rsplit(":", 1)[0]
        return {"repoDigest": f"{repository}@sha256:{hashlib.sha256(str(state['imageName']).encode()).hexdigest()}"}
    return {}


def cloud_of(token: str) -> str:
    """The package a resource type or data source belongs to: `aws` for `aws:ec2/vpc:Vpc` and for
    its provider `pulumi:providers:aws`.
    """
    return token.removeprefix("pulumi:providers:").split(":")[0]


class _CloudMockIds(Protocol):
    def __call__(self, typ: str, name: str, inputs: Mapping[str, Any], provider_inputs: Mapping[str, Any]) -> str: ...


class CloudMocks(Protocol):
    """What a cloud's mocks answer (a `pulumi.runtime.Mocks`, typed)."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        """The resource's id (none at preview) and its state."""
        ...

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        """The data source's answer."""
        ...


def mock_id(typ: str, name: str, inputs: Mapping[str, Any] | None = None, provider_inputs: Mapping[str, Any] | None = None) -> str:
    """The id the mocks give a resource of this type and name (and, where the cloud's ids name its
    project, region or zone as GCP's do, these inputs and its provider's): shaped like the cloud's, stable.
    """
    module = CLOUD_MOCKS.get(cloud_of(typ)) if not typ.startswith("pulumi:providers:") else None
    if module is None:
        return f"{name}-{digest(name, 8)}"
    cloud_id: _CloudMockIds = importlib.import_module(module).mock_id
    return cloud_id(typ, name, inputs or {}, provider_inputs or {})


class ProviderMocks(pulumi.runtime.Mocks):
    """What the mocks of a cloud whose ids and addresses depend on where a resource is (GCP's project
    and region, Azure's subscription) keep: each explicit provider's settings, and the ranges of the
    subnets made, from which machines get their addresses.
    """

    def __init__(self, defaults: dict[str, Any], *, preview: bool) -> None:
        self.defaults = defaults
        """The provider's settings where a resource has no explicit provider."""
        self.preview = preview
        """Answer as a first preview: every resource is a create, known only by its inputs."""
        self.providers: dict[str, dict[str, Any]] = {}
        """The settings of each explicit provider of the cloud, by name."""
        self.ranges: dict[str, ipaddress.IPv4Network | ipaddress.IPv6Network] = {}
        """Each subnet's range by the references machines name it with: they get addresses in it."""

    def _provider(self, provider: str | None) -> dict[str, Any]:
        """The settings of the provider a resource uses (a reference `urn::id`)."""
        name = provider.split("::")[-2] if provider else ""
        return self.providers.get(name, self.defaults)


class PlanMocks(pulumi.runtime.Mocks):
    """The mocks of one stack: each cloud's resources to its mocks, the rest answered here."""

    def __init__(self, config: Mapping[str, str], today: datetime.date | None = None, *, preview: bool = False) -> None:
        self.config = config
        self.today = today or datetime.datetime.now(datetime.UTC).date()
        """The day the lookups answer for (images deprecate with time)."""
        self.preview = preview
        """Answer as a first preview: every resource is a create, known only by its inputs."""
        self.clouds: dict[str, CloudMocks] = {}

    def _cloud(self, token: str) -> CloudMocks | None:
        """The mocks of the cloud a type or data source belongs to, made on its first use."""
        cloud = cloud_of(token)
        if cloud not in CLOUD_MOCKS:
            return None
        if cloud not in self.clouds:
            self.clouds[cloud] = importlib.import_module(CLOUD_MOCKS[cloud]).for_stack(self.config, self.today, preview=self.preview)
        return self.clouds[cloud]

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        """A cloud's resource as its mocks answer; another (a password, a key, a Docker image or
        service, a command) gets a stable id and what its provider computes, or at preview its
        inputs alone.
        """
        cloud = self._cloud(args.typ)
        if cloud is not None:
            return cloud.new_resource(args)
        state: dict[str, Any] = dict(cast(dict[str, Any], args.inputs))  # pyright: ignore[reportUnknownMemberType]  # the SDK types inputs as a bare dict
        if self.preview:
            return "", state
        return mock_id(args.typ, args.name), state | _generated(args.typ, args.name, state)

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        """A data source, answered by its cloud's mocks; a command run on the deploy host (pulumi-command's
        `local.run`) answers a stand-in output derived from the command, never running it.
        """
        if args.token == "command:local:run":
            command = str(cast(dict[str, Any], args.args).get("command", ""))  # pyright: ignore[reportUnknownMemberType]  # the SDK types args as a bare dict
            return {"command": command, "stdout": f"mock-output-{digest(command, 16)}", "stderr": ""}, []
        cloud = self._cloud(args.token)
        if cloud is None:
            raise NotImplementedError(f"the offline plan has no answer for data source {args.token}")
        return cloud.call(args)
