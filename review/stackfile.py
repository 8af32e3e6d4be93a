"""The database stack as a Swarm stack file, for users who deploy by hand with
`docker stack deploy`: the same service definitions the DatabaseStack component deploys, the same
rendered configs (written next to the stack file), the same overlay networks.

Secrets are declared external: create them first with `docker secret create <name> <file>`
(seed §3.3); `python -m review.stackfile --stack prod --out DIR` lists their names in
DIR/secrets.txt. The files that carry secret values (each member's patroni.yml, the auth files)
are rendered from the generated ones with `--secrets SECRETS_DIR`, which reads a file per
generated secret from SECRETS_DIR and writes the rendered ones next to them, readable by the
owner only.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from dpc.cluster import BACKUP_ENCRYPTION_SECRET, PASSWORD_SECRETS, certificate_requests, swarm_layout
from dpc.config import StackFileError, settings_from_stack_file
from dpc.services import BUILT_IMAGES, RESTART_POLICY, STOP_GRACE_PERIOD, ServiceSpec, database_services
from dpc.settings import Settings, SettingsError
from dpc.stack_files import plain_configs, secret_files
from dpc.tiers import TIERS
from providers.database import PROJECT_ROOT, image_tags

REGISTRY_VARIABLE = "DPC_REGISTRY"
"""Where the project's images were pushed; `docker stack deploy` reads it from the environment."""


def _image(spec: ServiceSpec, tags: dict[str, str]) -> str:
    if spec.image in BUILT_IMAGES:
        return f"${{{REGISTRY_VARIABLE}:-dpc}}/{spec.image}:{tags[spec.image]}"
    return spec.image


def _service(spec: ServiceSpec, configs: set[str], tags: dict[str, str]) -> dict[str, Any]:
    resources, update = spec.resources, spec.update
    deploy: dict[str, Any] = {
        "mode": "global" if spec.replicas is None else "replicated",
        "resources": {
            "limits": {"cpus": f"{resources.cpu_limit}", "memory": f"{resources.memory_limit_mb}M"},
            "reservations": {"cpus": f"{resources.cpu_reservation}", "memory": f"{resources.memory_reservation_mb}M"},
        },
        "restart_policy": {"condition": RESTART_POLICY.condition, "delay": RESTART_POLICY.delay, "window": RESTART_POLICY.window},
        "update_config": {
            "parallelism": update.parallelism, "delay": f"{update.delay_seconds}s", "failure_action": update.failure_action,
            "monitor": f"{update.monitor_seconds}s", "max_failure_ratio": 0, "order": update.order,
        },
        "rollback_config": {
            "parallelism": update.parallelism, "delay": f"{update.rollback_delay_seconds}s", "failure_action": update.rollback_failure_action,
            "monitor": f"{update.monitor_seconds}s", "order": update.order,
        },
        "labels": {"dpc.role": spec.role.value},
    }
    if spec.replicas is not None:
        deploy["replicas"] = spec.replicas
    placement: dict[str, Any] = {}
    if spec.constraints:
        placement["constraints"] = list(spec.constraints)
        if spec.replicas and spec.replicas > 1:
            placement["max_replicas_per_node"] = 1
    if placement:
        deploy["placement"] = placement
    service: dict[str, Any] = {
        "image": _image(spec, tags),
        "networks": sorted(next(t.network_name for t in TIERS if t.tier is tier) for tier in spec.networks),
        "deploy": deploy,
        "stop_grace_period": STOP_GRACE_PERIOD,
    }
    if spec.command:
        service["command"] = list(spec.command)
    service["user"] = str(spec.uid)
    if spec.env:
        service["environment"] = dict(spec.env)
    mounts = [
        {"source": f.source, "target": f.target, "uid": str(spec.uid), "gid": str(spec.uid), "mode": f.mode}
        for f in spec.files
    ]
    if in_configs := [m for m in mounts if m["source"] in configs]:
        service["configs"] = in_configs
    if in_secrets := [m for m in mounts if m["source"] not in configs]:
        service["secrets"] = in_secrets
    if spec.volumes:
        service["volumes"] = [
            {"type": v.kind, "source": v.source, "target": v.target, "read_only": v.read_only} for v in spec.volumes
        ]
    if spec.ports:
        service["ports"] = [{"target": p.target, "published": p.published, "protocol": "tcp", "mode": "ingress"} for p in spec.ports]
    return service


def stack_file(settings: Settings, configs: dict[str, str]) -> dict[str, Any]:
    """The stack file's content; `configs` are the rendered plain files by name."""
    layout = swarm_layout(settings)
    services = database_services(settings, layout)
    tags = image_tags(PROJECT_ROOT)
    secret_names = sorted({f.source for s in services for f in s.files if f.source not in configs})
    volumes = sorted({v.source for s in services for v in s.volumes if v.kind == "volume"})
    return {
        "version": "3.9",
        "services": {spec.name: _service(spec, set(configs), tags) for spec in services},
        "networks": {
            t.network_name: {
                "driver": "overlay",
                "driver_opts": {"encrypted": ""} if t.encrypted else {},
                "ipam": {"config": [{"subnet": t.subnet}]},
                "labels": {"dpc.tier": t.tier.value},
            }
            for t in TIERS
        },
        "configs": {name: {"file": f"./configs/{name}"} for name in sorted(configs)},
        "secrets": {name: {"external": True} for name in secret_names},
        "volumes": {name: {"driver": "local"} for name in volumes},
    }


def export(settings: Settings, out: Path) -> Path:
    """Writes the stack file, its configs and the list of secrets to create into `out`."""
    layout = swarm_layout(settings)
    configs = plain_configs(settings, layout, None)
    (out / "configs").mkdir(parents=True, exist_ok=True)
    for name, content in configs.items():
        (out / "configs" / name).write_text(content)
    content = stack_file(settings, configs)
    path = out / "docker-stack.yml"
    path.write_text(yaml.safe_dump(content, sort_keys=True, default_flow_style=False))
    rendered = sorted(secret_files(layout))
    generated = sorted(set(content["secrets"]) - set(rendered))
    certificates = sorted(r.name for r in certificate_requests(layout))
    (out / "secrets.txt").write_text(
        "# Docker secrets to create before `docker stack deploy` (docker secret create NAME FILE).\n"
        "# Generated values (passwords: openssl rand -hex 32; certificates signed by one CA for: " + ", ".join(certificates) + "):\n"
        + "".join(f"{name}\n" for name in generated)
        + "# Files rendered from those values (python -m review.stackfile --stack STACK --out DIR --secrets SECRETS_DIR):\n"
        + "".join(f"{name}\n" for name in rendered)
    )
    return path


def render_secret_files(settings: Settings, secrets_dir: Path) -> list[Path]:
    """Renders the files that carry secret values from the generated passwords and passphrase in
    `secrets_dir` (the certificates are used as they are).

    Raises FileNotFoundError naming every generated secret that is missing, before writing anything.
    """
    renderers = secret_files(swarm_layout(settings))
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
    """`python -m review.stackfile --stack prod --out DIR`."""
    parser = argparse.ArgumentParser(prog="python -m review.stackfile", description=__doc__)
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
