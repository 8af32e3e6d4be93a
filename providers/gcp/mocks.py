"""The offline plan's GCP (`review.mocks` hands it every `gcp:` resource and data source): ids, self
links, service-account emails, secret and key names, addresses and the project's number, each
derived from names, so that every dependent value of the program resolves as it would on GCP.

A resource's id is the first of the import formats its pulumi-gcp class documents
(`projects/{{project}}/zones/{{zone}}/disks/{{name}}`): the Google provider's ids are these
paths, so the SDK says what each one is, also for a type no builder used when this was written.
The few whose id the provider makes otherwise (service accounts, buckets, secret versions, IAM
members, budgets, notification channels, enabled services) are answered here. The project, region and zone a path names
are the resource's own inputs or, as the provider fills them, its provider's.

With `preview`, it answers as the engine does in a stack's first `pulumi preview`: no id, the
inputs alone (with the name the provider generates where the program gives none, as its Check does
before a preview), every other output unknown.
"""

from __future__ import annotations

import datetime
import importlib
import inspect
import ipaddress
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, cast

import pulumi

from review.mocks import ProviderMocks, digest

COMPUTE_API = "https://www.googleapis.com/compute/v1/"
STORAGE_API = "https://www.googleapis.com/storage/v1/b/"
PUBLIC_RANGE = ipaddress.ip_network("203.0.113.0/24")
"""Where the mocks' external addresses come from (TEST-NET-3, RFC 5737: never a real host)."""
FALLBACK_RANGE = ipaddress.ip_network("10.0.0.0/16")
"""Internal addresses of a machine in a subnetwork the mocks did not see created."""
HEALTH_CHECK_RANGES = ("35.191.0.0/16", "130.211.0.0/22")
"""Google's health checkers, as `getNetblockIPRanges(rangeType="health-checkers")` answers (and as
https://cloud.google.com/load-balancing/docs/health-check-concepts#ip-ranges lists them)."""
_IMPORT_FORMAT = re.compile(r"can be imported using[^\n]*\n\s*\n?\s*\* `([^`]+)`")
_TEMPLATE_FIELD = re.compile(r"\{\{(\w+)\}\}")
_TEMPLATE_ALIASES = {"project_id": "project", "instance_group_id": "name"}
"""Fields of import formats named otherwise than the inputs they come from."""


def project_number(project: str) -> str:
    """The project's number (12 digits), stable for a project id."""
    return str(10**11 + int(digest(project, 12), 16) % (9 * 10**11))


def autoname(name: str) -> str:
    """The name pulumi-gcp generates from a logical name where the program gives none: the name, a
    dash and seven random hex digits (here derived from the name, so plans do not change).
    """
    return f"{name}-{digest(name, 7)}"


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(part.title() for part in rest)


@cache
def sdk_class(typ: str) -> type | None:
    """The pulumi-gcp class of a type token, `gcp:compute/disk:Disk` → `pulumi_gcp.compute.Disk`."""
    _, module_path, class_name = typ.split(":")
    try:
        module = importlib.import_module(f"pulumi_gcp.{module_path.split('/')[0]}")
    except ImportError:
        return None
    found: object = getattr(module, class_name, None)
    return found if isinstance(found, type) else None


@cache
def generates_name(typ: str) -> bool:
    """Whether the type's name is an input, which pulumi-gcp generates where it is left out."""
    cls = sdk_class(typ)
    return cls is not None and "name" in inspect.signature(cls._internal_init).parameters  # type: ignore[attr-defined]  # every generated resource class has it


@cache
def import_format(typ: str) -> str | None:
    """The first import format the SDK documents for the type: the provider's id of it."""
    cls = sdk_class(typ)
    if cls is None:
        return None
    source = inspect.getsourcefile(cls)
    match = _IMPORT_FORMAT.search(Path(source).read_text()) if source else None
    return match.group(1) if match else None


_GRANTED_ON = ("secretId", "bucket", "cryptoKeyId", "keyRingId", "repository", "serviceAccountId", "instanceName", "subnetwork")
"""The input naming what an IAM grant is on, by type (the project where none is)."""


def is_iam_grant(typ: str) -> bool:
    """Whether the type grants a role to members on a resource (`...IamMember`, `...IAMBinding`)."""
    return typ.rsplit(":", 1)[-1].lower().endswith(("iammember", "iambinding"))


def _context(inputs: Mapping[str, Any], provider_inputs: Mapping[str, Any]) -> dict[str, str]:
    """The values an id may name: the resource's inputs, its provider's project, region and zone
    where it gives none.
    """
    found = {key: str(value) for key, value in provider_inputs.items() if key in ("project", "region", "zone")}
    found |= {key: str(value) for key, value in inputs.items() if isinstance(value, (str, int))}
    found.setdefault("location", found.get("region", ""))
    return found


_Known = Mapping[str, str]

_OWN_IDS: dict[str, Callable[[str, _Known], str]] = {
    "gcp:serviceaccount/account:Account": lambda _, known: f"projects/{known['project']}/serviceAccounts/{service_account_email(known)}",
    "gcp:storage/bucket:Bucket": lambda _, known: known["name"],
    "gcp:secretmanager/secretVersion:SecretVersion": lambda _, known: f"{_numbered(known['secret'])}/versions/1",
    "gcp:billing/budget:Budget": lambda name, known: f"billingAccounts/{known['billingAccount']}/budgets/{_uuid(name)}",
    "gcp:monitoring/notificationChannel:NotificationChannel": lambda name, known: (
        f"projects/{known['project']}/notificationChannels/{int(digest(name, 12), 16)}"
    ),
    "gcp:projects/service:Service": lambda _, known: f"{known['project']}/{known['service']}",
}
"""The ids the provider makes otherwise than its documented import format."""


def service_account_email(known: _Known) -> str:
    """A service account's email: its account id at the project's IAM domain."""
    return f"{known['accountId']}@{known['project']}.iam.gserviceaccount.com"


def _from_template(template: str, known: _Known) -> str:
    def value(field: re.Match[str]) -> str:
        key = _TEMPLATE_ALIASES.get(field.group(1), field.group(1))
        return known.get(_camel(key), field.group(0))

    return _TEMPLATE_FIELD.sub(value, template)


def mock_id(typ: str, name: str, inputs: Mapping[str, Any], provider_inputs: Mapping[str, Any]) -> str:
    """The id the mocks give a GCP resource: the provider's id, named from the resource's inputs
    and its provider's project, region and zone.
    """
    known = _context(inputs, provider_inputs) | {"name": str(inputs.get("name") or autoname(name))}
    if typ in _OWN_IDS:
        return _OWN_IDS[typ](name, known)
    if is_iam_grant(typ):
        on = next((known[key] for key in _GRANTED_ON if key in known), known.get("project", ""))
        return f"{on}/{known.get('role', '')}/{known.get('member', '')}"
    template = import_format(typ)
    return _from_template(template, known) if template else f"{name}-{digest(name, 8)}"


def _uuid(name: str) -> str:
    text = digest(name, 32)
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def _numbered(secret_id: str) -> str:
    """A secret's name as Secret Manager returns it: the project by number, not by id."""
    parts = secret_id.split("/")
    return "/".join([parts[0], project_number(parts[1]), *parts[2:]]) if len(parts) >= 2 and parts[0] == "projects" else secret_id


@dataclass(frozen=True)
class _Created:
    """A resource the mocks create: what its computed outputs derive from."""

    name: str
    resource_id: str
    state: Mapping[str, Any]
    project: str
    provider: Mapping[str, Any]


def _identity(email: str) -> dict[str, str]:
    """A service account's email and its IAM member."""
    return {"email": email, "member": f"serviceAccount:{email}"}


def _host(network: ipaddress.IPv4Network | ipaddress.IPv6Network, name: str) -> str:
    """An address of the range for the named resource, past the four GCP reserves at its start."""
    return str(network.network_address + 2 + int(digest(name, 8), 16) % max(network.num_addresses - 4, 1))


class GcpMocks(ProviderMocks):
    """Realistic answers for the GCP resources and data sources the program uses: its providers'
    project, region and zone; its subnetworks' ranges by id, self link and name.
    """

    def __init__(self, project: str, region: str, *, preview: bool = False) -> None:
        super().__init__({"project": project, "region": region}, preview=preview)

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        """The provider's id and the outputs dependent resources read; at preview no id and the
        inputs alone (the SDK resolves every other output unknown).
        """
        state: dict[str, Any] = dict(cast(dict[str, Any], args.inputs))  # pyright: ignore[reportUnknownMemberType]  # the SDK types inputs as a bare dict
        if args.typ == "pulumi:providers:gcp":
            self.providers[args.name] = self.defaults | {k: v for k, v in state.items() if k in ("project", "region", "zone")}
            return ("" if self.preview else f"{args.name}-{digest(args.name, 8)}"), state
        if "name" not in state and generates_name(args.typ):
            state["name"] = autoname(args.name)
        if self.preview:
            return "", state
        provider = self._provider(args.provider)
        resource_id = mock_id(args.typ, args.name, state, provider)
        state |= self._computed(args.typ, args.name, resource_id, state, provider)
        return resource_id, state

    def _computed(self, typ: str, name: str, resource_id: str, state: dict[str, Any], provider: Mapping[str, Any]) -> dict[str, Any]:
        """The outputs the provider computes that the program reads."""
        out: dict[str, Any] = {}
        if typ.startswith("gcp:compute/") and resource_id.startswith("projects/"):
            out["selfLink"] = COMPUTE_API + resource_id
        if is_iam_grant(typ):
            out["etag"] = f"BwX{digest(resource_id, 9)}="
        computed = self._outputs.get(typ)
        return out | (computed(_Created(name, resource_id, state, str(state.get("project", provider.get("project", ""))), provider)) if computed else {})

    @property
    def _outputs(self) -> dict[str, Callable[[_Created], dict[str, Any]]]:
        """What the provider computes, by type."""
        return {
            "gcp:compute/subnetwork:Subnetwork": self._subnetwork,
            "gcp:compute/instance:Instance": lambda made: {
                "instanceId": str(int(digest(made.name, 15), 16))[:19],
                "networkInterfaces": [self._interface(made.name, position, nic) for position, nic in enumerate(made.state.get("networkInterfaces") or [])],
            },
            "gcp:compute/address:Address": lambda made: {"address": made.state.get("address") or self._address(made.name, made.state)},
            "gcp:compute/forwardingRule:ForwardingRule": lambda made: {"ipAddress": made.state.get("ipAddress") or self._address(made.name, made.state)} | (
                # An internal rule's DNS name from its service label (load-balancing docs, "DNS record format").
                {"serviceName": f"{made.state['serviceLabel']}.{made.state['name']}.il4.{made.provider.get('region')}.lb.{made.project}.internal"}
                if made.state.get("serviceLabel") else {}
            ),
            "gcp:serviceaccount/account:Account": lambda made: _identity(made.resource_id.rsplit("/", 1)[1]) | {
                "name": made.resource_id, "uniqueId": str(int(digest(made.name, 16), 16))[:21],
            },
            "gcp:projects/serviceIdentity:ServiceIdentity": lambda made: _identity(service_agent(made.project, str(made.state["service"]))),
            "gcp:secretmanager/secret:Secret": lambda made: {"name": _numbered(made.resource_id)},
            "gcp:secretmanager/secretVersion:SecretVersion": lambda made: {"name": made.resource_id, "version": "1"},
            "gcp:storage/bucket:Bucket": lambda made: {"url": f"gs://{made.resource_id}", "selfLink": STORAGE_API + made.resource_id},
            "gcp:artifactregistry/repository:Repository": lambda made: {
                "name": made.state["repositoryId"],
                "registryUri": f"{made.state.get('location', made.provider.get('region'))}-docker.pkg.dev/{made.project}/{made.state['repositoryId']}",
            },
            "gcp:billing/budget:Budget": lambda made: {"name": made.resource_id},
            "gcp:monitoring/notificationChannel:NotificationChannel": lambda made: {"name": made.resource_id},
        }

    def _subnetwork(self, made: _Created) -> dict[str, Any]:
        """A subnetwork's gateway; its range kept, so that machines in it get addresses from it."""
        network = ipaddress.ip_network(str(made.state["ipCidrRange"]))
        for key in (made.resource_id, COMPUTE_API + made.resource_id, str(made.state["name"])):
            self.ranges[key] = network
        return {"gatewayAddress": str(network.network_address + 1)}

    def _interface(self, name: str, position: int, interface: Mapping[str, Any]) -> dict[str, Any]:
        """A network interface with its internal address in its subnetwork, and an external one
        where it asks for one (an access config without an address).
        """
        out = dict(interface)
        network = self.ranges.get(str(interface.get("subnetwork", "")), FALLBACK_RANGE)
        out.setdefault("networkIp", _host(network, f"{name}-{position}"))
        out["accessConfigs"] = [
            {**config, "natIp": config.get("natIp") or _host(PUBLIC_RANGE, f"{name}-{position}")}
            for config in cast(list[Mapping[str, Any]], interface.get("accessConfigs") or [])
        ]
        return out

    def _address(self, name: str, state: Mapping[str, Any]) -> str:
        """An internal address in the resource's subnetwork, or an external one."""
        internal = state.get("addressType") == "INTERNAL" or state.get("loadBalancingScheme") == "INTERNAL"
        return _host(self.ranges.get(str(state.get("subnetwork", "")), FALLBACK_RANGE) if internal else PUBLIC_RANGE, name)

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        """The data sources: which project, which token, which image, which ranges; no check failures."""
        arguments = cast(dict[str, Any], args.args)  # pyright: ignore[reportUnknownMemberType]  # the SDK types args as a bare dict
        provider = self._provider(args.provider)
        project = str(arguments.get("project") or provider.get("project", ""))
        asked = _Asked(arguments, project, str(arguments.get("region") or provider.get("region", "")), str(provider.get("zone", "")))
        if args.token not in _DATA_SOURCES:
            raise NotImplementedError(f"the offline plan has no answer for data source {args.token}")
        return _DATA_SOURCES[args.token](asked), []


@dataclass(frozen=True)
class _Asked:
    """A data source's arguments, with the project, region and zone it reads (its provider's by default)."""

    arguments: Mapping[str, Any]
    project: str
    region: str
    zone: str


def _image(asked: _Asked) -> dict[str, Any]:
    """An image by its exact name (or the newest of its family), in the image project asked."""
    image = str(asked.arguments.get("name") or f"{asked.arguments.get('family')}-v20250101")
    link = f"{COMPUTE_API}projects/{asked.project}/global/images/{image}"
    return {"name": image, "family": str(asked.arguments.get("family", "")), "selfLink": link, "id": link.removeprefix(COMPUTE_API), "project": asked.project}


def _netblocks(asked: _Asked) -> dict[str, Any]:
    """Google's health checkers' ranges: the only netblocks the program asks for."""
    if asked.arguments.get("rangeType") != "health-checkers":
        raise NotImplementedError(f"the offline plan knows Google's health-checker ranges only, not {asked.arguments.get('rangeType')!r}")
    ranges = list(HEALTH_CHECK_RANGES)
    return {"rangeType": "health-checkers", "cidrBlocks": ranges, "cidrBlocksIpv4": ranges, "cidrBlocksIpv6": [], "id": "health-checkers"}


def _default_compute_account(asked: _Asked) -> dict[str, Any]:
    email = f"{project_number(asked.project)}-compute@developer.gserviceaccount.com"
    return _identity(email) | {"project": asked.project, "id": f"projects/{asked.project}/serviceAccounts/{email}"}


_DATA_SOURCES: dict[str, Callable[[_Asked], dict[str, Any]]] = {
    "gcp:organizations/getProject:getProject": lambda asked: {
        "projectId": asked.project, "number": project_number(asked.project), "name": asked.project, "id": f"projects/{asked.project}", "labels": {},
    },
    "gcp:organizations/getClientConfig:getClientConfig": lambda asked: {
        "project": asked.project, "region": asked.region, "zone": asked.zone, "accessToken": "mock-access-token", "id": asked.project,
    },
    "gcp:compute/getImage:getImage": _image,
    "gcp:storage/getProjectServiceAccount:getProjectServiceAccount": lambda asked: {
        "emailAddress": service_agent(asked.project, "storage.googleapis.com"),
        "member": f"serviceAccount:{service_agent(asked.project, 'storage.googleapis.com')}",
        "project": asked.project, "id": service_agent(asked.project, "storage.googleapis.com"),
    },
    "gcp:compute/getDefaultServiceAccount:getDefaultServiceAccount": _default_compute_account,
    "gcp:compute/getNetblockIPRanges:getNetblockIPRanges": _netblocks,
    "gcp:logging/getProjectCmekSettings:getProjectCmekSettings": lambda asked: {
        "project": asked.project, "name": f"projects/{asked.project}/cmekSettings", "id": f"projects/{asked.project}/cmekSettings",
        "serviceAccountId": service_agent(asked.project, "logging.googleapis.com"), "kmsKeyName": "", "kmsKeyVersionName": "",
    },
    "gcp:compute/getZones:getZones": lambda asked: {
        "names": [f"{asked.region}-{zone}" for zone in "abcf"], "project": asked.project, "region": asked.region,
        "id": f"projects/{asked.project}/regions/{asked.region}",
    },
}
"""The data sources the GCP builders read, answered as GCP would for the mocks' project."""


_SERVICE_AGENT_DOMAINS = {"storage.googleapis.com": "gs-project-accounts", "compute.googleapis.com": "compute-system"}
"""Service agents whose domain is not `gcp-sa-<service>` (https://cloud.google.com/iam/docs/service-agents)."""


def service_agent(project: str, service: str) -> str:
    """The email of a Google service's agent in the project."""
    domain = _SERVICE_AGENT_DOMAINS.get(service, f"gcp-sa-{service.split('.', maxsplit=1)[0]}")
    return f"service-{project_number(project)}@{domain}.iam.gserviceaccount.com"


def for_stack(config: Mapping[str, str], _today: datetime.date, *, preview: bool) -> GcpMocks:
    """The GCP mocks of a stack: its project (`dpc:gcp`'s `project`) and region (`dpc:region`)."""
    section: object = json.loads(config.get("dpc:gcp", "{}"))
    project = str(cast(Mapping[str, Any], section).get("project", "")) if isinstance(section, Mapping) else ""
    return GcpMocks(project, config.get("dpc:region", ""), preview=preview)
