"""The database stack as a docker-stack file (`docker-stack.yml`, Compose format), for users who
deploy by hand with `docker stack deploy`: the same services and overlay networks the DatabaseStack
component deploys (both rename what dpc/swarm_spec.py decides; a local stack's share one engine, as
there), the same rendered configs (written next to the docker-stack file).

"Stack file" in this project means a Pulumi stack's `Pulumi.<stack>.yaml` only.

Secrets are declared external: create them first with `docker secret create <name> <file>`
(design §3.2); `python -m engine.docker_stack --stack prod --out DIR` lists their names in
DIR/secrets.txt. The files that carry secret values (each member's patroni.yml, the auth files)
are rendered from the generated ones with `--secrets SECRETS_DIR`, which reads a file per
generated secret from SECRETS_DIR and writes the rendered ones next to them, readable by the
owner only.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from dpc.cluster import BACKUP_ENCRYPTION_SECRET, PASSWORD_SECRETS, certificate_requests
from dpc.config import StackFileError, settings_from_stack_file
from dpc.database_files import plain_configs, secret_files
from dpc.services import Placement, database_services, placement_of
from dpc.settings import Settings, SettingsError
from dpc.swarm_spec import Allocation, FileRef, SwarmNetwork, SwarmService, UpdateConfig, image_reference, swarm_network, swarm_service
from dpc.tiers import TIERS, Tier
from dpc.topology import Topology, derive
from providers.common.database import PROJECT_ROOT, image_tags

REGISTRY_VARIABLE = "DPC_REGISTRY"
"""Where the project's images were pushed; `docker stack deploy` reads it from the environment."""


def _duration(seconds: int) -> str:
    return f"{seconds}s"


def _cpus(nano_cpus: int) -> str:
    """CPUs as the exact decimal the CLI parses back to the same billionths (it refuses inexact ones)."""
    whole, fraction = divmod(nano_cpus, 10**9)
    return f"{whole}.{fraction:09d}".rstrip("0").rstrip(".")


def _resources(allocation: Allocation) -> dict[str, str]:
    return {"cpus": _cpus(allocation.nano_cpus), "memory": f"{allocation.memory_bytes}b"}


def _update(config: UpdateConfig) -> dict[str, Any]:
    return {
        "parallelism": config.parallelism, "delay": _duration(config.delay_seconds), "failure_action": config.failure_action,
        "monitor": _duration(config.monitor_seconds), "max_failure_ratio": config.max_failure_ratio, "order": config.order,
    }


def _files(files: tuple[FileRef, ...]) -> list[dict[str, Any]]:
    return [{"source": f.name, "target": f.target, "uid": f.uid, "gid": f.gid, "mode": f.mode} for f in files]


def _service(service: SwarmService, networks: Mapping[Tier, SwarmNetwork], images: Mapping[str, str]) -> dict[str, Any]:
    """The service as dpc/swarm_spec.py decides it, renamed into the docker-stack file's keys; an empty
    list or mapping is left out, as the file format has it.
    """
    placement: dict[str, Any] = {"constraints": list(service.constraints)} if service.constraints else {}
    if service.max_replicas_per_node is not None:
        placement["max_replicas_per_node"] = service.max_replicas_per_node
    restart = service.restart
    deploy: dict[str, Any] = {
        "mode": "global" if service.replicas is None else "replicated",
        "endpoint_mode": service.endpoint_mode,
        "resources": {"limits": _resources(service.limits), "reservations": _resources(service.reservations)},
        "restart_policy": {"condition": restart.condition, "delay": _duration(restart.delay_seconds), "window": _duration(restart.window_seconds)},
        "update_config": _update(service.update),
        "rollback_config": _update(service.rollback),
        "labels": dict(service.labels),
        **({"replicas": service.replicas} if service.replicas is not None else {}),
        **({"placement": placement} if placement else {}),
    }
    optional: dict[str, Any] = {
        "command": list(service.args),
        "environment": dict(service.env),
        "configs": _files(service.configs),
        "secrets": _files(service.secrets),
        "volumes": [{"type": m.type, "source": m.source, "target": m.target, "read_only": m.read_only} for m in service.mounts],
        "ports": [{"target": p.target, "published": p.published, "protocol": p.protocol, "mode": p.publish_mode} for p in service.ports],
    }
    return {
        "image": image_reference(service, images),
        "networks": [networks[tier].name for tier in service.networks],
        "deploy": deploy,
        "stop_grace_period": _duration(service.stop_grace_seconds),
        "user": service.user,
        **{key: value for key, value in optional.items() if value},
    }


def _network(network: SwarmNetwork) -> dict[str, Any]:
    """The network as dpc/swarm_spec.py decides it; named, so `docker stack deploy` does not prefix
    the stack's name and the services' configuration files find the networks they expect.
    """
    return {
        "name": network.name,
        "driver": network.driver,
        "attachable": network.attachable,
        "driver_opts": dict(network.options),
        "ipam": {"config": [{"subnet": network.subnet}]},
        "labels": dict(network.labels),
    }


def docker_stack(topology: Topology, configs: dict[str, str], placement: Placement) -> dict[str, Any]:
    """The docker-stack file's content; `configs` are the rendered plain files by name."""
    services = [swarm_service(spec, configs) for spec in database_services(topology, placement)]
    networks = {t.tier: swarm_network(t) for t in TIERS}
    images = {key: f"${{{REGISTRY_VARIABLE}:-dpc}}/{key}:{tag}" for key, tag in image_tags(PROJECT_ROOT).items()}
    secret_names = sorted({f.name for s in services for f in s.secrets})
    volumes = sorted({m.source for s in services for m in s.mounts if m.type == "volume"})
    return {
        "version": "3.9",
        "services": {service.name: _service(service, networks, images) for service in services},
        "networks": {network.name: _network(network) for network in networks.values()},
        "configs": {name: {"file": f"./configs/{name}"} for name in sorted(configs)},
        "secrets": {name: {"external": True} for name in secret_names},
        "volumes": {name: {"driver": "local"} for name in volumes},
    }


def export(settings: Settings, out: Path) -> Path:
    """Writes the docker-stack file, its configs and the list of secrets to create into `out`."""
    topology = derive(settings)
    layout = topology.layout
    configs = plain_configs(settings, layout, None)
    (out / "configs").mkdir(parents=True, exist_ok=True)
    for name, content in configs.items():
        (out / "configs" / name).write_text(content)
    content = docker_stack(topology, configs, placement_of(settings))
    path = out / "docker-stack.yml"
    path.write_text(yaml.safe_dump(content, sort_keys=True, default_flow_style=False))
    rendered = sorted(secret_files(layout))
    generated = sorted(set(content["secrets"]) - set(rendered))
    certificates = sorted(r.name for r in certificate_requests(layout))
    (out / "secrets.txt").write_text(
        "# Docker secrets to create before `docker stack deploy` (docker secret create NAME FILE).\n"
        "# Generated values (passwords: openssl rand -hex 32; certificates signed by one CA for: " + ", ".join(certificates) + "):\n"
        + "".join(f"{name}\n" for name in generated)
        + "# Files rendered from those values (python -m engine.docker_stack --stack STACK --out DIR --secrets SECRETS_DIR):\n"
        + "".join(f"{name}\n" for name in rendered)
    )
    return path


def render_secret_files(settings: Settings, secrets_dir: Path) -> list[Path]:
    """Renders the files that carry secret values from the generated passwords and passphrase in
    `secrets_dir` (the certificates are used as they are).

    Raises FileNotFoundError naming every generated secret that is missing, before writing anything.
    """
    renderers = secret_files(derive(settings).layout)
    needed = [*sorted(PASSWORD_SECRETS), BACKUP_ENCRYPTION_SECRET]
    missing = [name for name in needed if not (secrets_dir / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{secrets_dir} lacks the generated secrets {', '.join(missing)}; create one file per name (see secrets.txt)")
    values = {name: (secrets_dir / name).read_text().strip() for name in needed}
    written: list[Path] = []
    for name, render in sorted(renderers.items()):
        path = secrets_dir / name
        path.touch(mode=0o600)
        path.chmod(0o600)
        path.write_text(render(values))
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    """`python -m engine.docker_stack --stack prod --out DIR`."""
    parser = argparse.ArgumentParser(prog="python -m engine.docker_stack", description=__doc__)
    parser.add_argument("--stack", required=True, help="the stack whose settings to use (Pulumi.<stack>.yaml)")
    parser.add_argument("--out", required=True, type=Path, help="directory to write docker-stack.yml, configs/ and secrets.txt into")
    parser.add_argument("--secrets", type=Path, help="directory holding a file per generated secret; the rendered secret files are written there")
    args = parser.parse_args(argv)
    try:
        settings = settings_from_stack_file(PROJECT_ROOT / f"Pulumi.{args.stack}.yaml")
    except (SettingsError, StackFileError) as error:
        print(error, file=sys.stderr)
        return 2
    print(export(settings, args.out))
    if args.secrets is not None:
        try:
            rendered = render_secret_files(settings, args.secrets)
        except FileNotFoundError as error:
            print(error, file=sys.stderr)
            return 2
        print(f"rendered {len(rendered)} secret files into {args.secrets}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
