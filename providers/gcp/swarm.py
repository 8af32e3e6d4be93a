"""GCP side of the Swarm's formation: the bootstrap secrets and the generated SSH host keys as Secret
Manager secrets under the stack's Cloud KMS key (user-managed replication in the stack's region,
where the key is), and each node's user data rendered with the Secret Manager store (curl against
the REST API with the service account's token from the metadata server: no gcloud on the node),
the Artifact Registry credential helper, and the persistent disks' device paths; gzip-compressed
like every cloud's (cloud-init on GCE reads `user-data`, base64-decoded when `user-data-encoding`
says so, then gunzips it). The user data names secrets and holds none.

Secret names are built from the project and the secret id, both known before anything is created,
so every preview shows the user data whole and the policy pack reads it; the nodes and the IAM
grants take them in the form the APIs accept (`projects/<project>/secrets/<id>`).
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import pulumi
import pulumi_gcp as gcp

from components.base import Scope
from components.swarm import (
    BASTION_HOST_KEY,
    BOOTSTRAP_SECRETS,
    PLACEHOLDER,
    CloudHooks,
    SwarmPlan,
    SwarmResult,
    gzip_base64,
    hostname,
    render_bastion_cloud_init,
    render_node_cloud_init,
    ssh_access,
)
from providers.gcp.labels import scope_labels

SCRIPTS = Path(__file__).parent / "scripts"
SECRET_STORE_SCRIPT = (SCRIPTS / "secret-store.sh").read_text()
CREDENTIAL_STORE = "dpc-gcp"
"""The docker CLI's credential store on a GCP node: the helper `docker-credential-dpc-gcp`."""
CREDENTIAL_HELPER = (SCRIPTS / f"docker-credential-{CREDENTIAL_STORE}").read_text()
UBUNTU_DEFAULT_USER = "ubuntu"
"""The default user of Ubuntu's GCE images (`ubuntu-os-cloud`), which the user data replaces by the deploy user."""


def gcp_hooks() -> CloudHooks:
    """The Secret Manager store over curl and jq (which the bastion installs for its host key), the
    credential helper that signs the docker CLI in to Artifact Registry as the node's service
    account, and Ubuntu's image, whose default user is not the deploy user. The store needs no
    setting: a secret carries its key and location itself, and the metadata server says who the
    machine is.
    """
    return CloudHooks(
        secret_store_packages=("curl", "jq"),
        registry_packages=(),
        secret_store_script=SECRET_STORE_SCRIPT,
        environment={},
        docker_credentials_store=CREDENTIAL_STORE,
        image_default_user=UBUNTU_DEFAULT_USER,
        credential_helpers={CREDENTIAL_STORE: CREDENTIAL_HELPER},
    )


def disk_device(disk_id: str) -> str:
    """The stable device path of a persistent disk attached with its name as the device name
    (`projects/p/zones/z/disks/<name>` → `/dev/disk/by-id/google-<name>`, udev's link on GCE).
    """
    return f"/dev/disk/by-id/google-{disk_id.rsplit('/', 1)[-1]}"


def secret_name(project: str, secret_id: str) -> str:
    """A secret as Secret Manager's REST API and IAM take it."""
    return f"projects/{project}/secrets/{secret_id}"


class _Secrets:
    """The stack's Secret Manager secrets of one Swarm component: each replicated only to the stack's
    region and encrypted there with the stack's key, labelled, with a first version.
    """

    def __init__(self, scope: Scope, plan: SwarmPlan) -> None:
        self.scope = scope
        self.key_id = plan.secrets_key_id
        self.config = gcp.organizations.get_client_config_output(opts=pulumi.InvokeOutputOptions(parent=scope.component))

    def create(self, name: str, value: pulumi.Input[str], opts: pulumi.ResourceOptions) -> pulumi.Output[str]:
        """The secret `<component>-<name>` holding `value` as its first version; returns its name
        (`secret_name`). The name depends on the version (through `enabled`, an input, so it is
        known in a preview as the project and the secret id are): no machine is created, and so none
        reads or publishes, before the first version exists. A manager publishing before the
        placeholder's version existed would be overwritten by the placeholder.
        """
        scope = self.scope
        secret = gcp.secretmanager.Secret(
            scope.child(name),
            secret_id=scope.child(name),
            replication={
                "user_managed": {"replicas": [{"location": self.config.region, "customer_managed_encryption": {"kms_key_name": self.key_id}}]}
            },
            labels=scope_labels(scope, Name=scope.child(name)),
            opts=scope.opts(),
        )
        version = gcp.secretmanager.SecretVersion(scope.child(f"{name}-value"), secret=secret.id, secret_data=value, enabled=True, opts=opts)
        return pulumi.Output.all(self.config.project, secret.secret_id, version.enabled).apply(
            lambda args: secret_name(cast(str, args[0]), cast(str, args[1]))
        )


def build_swarm(scope: Scope, plan: SwarmPlan) -> SwarmResult:
    """Creates the bootstrap secrets (holding the placeholder, then what the managers publish as new
    versions: Pulumi never rewrites the placeholder version, or a replaced manager-1 would take the
    Swarm for unformed and split it) and the host keys' secrets, and renders every node's and the
    bastion's user data.
    """
    secrets = _Secrets(scope, plan)
    names = {secret: secrets.create(secret, PLACEHOLDER, scope.opts(ignore_changes=["secretData"])) for secret in BOOTSTRAP_SECRETS}
    host_keys = {
        machine: secrets.create(f"host-key-{machine}", key.private_openssh, scope.opts())
        for machine, key in sorted(plan.host_keys.items())
    }
    secret_names = pulumi.Output.all(**names)
    user_data: dict[str, pulumi.Output[str]] = {}
    for node in plan.layout.nodes:
        mounts = plan.mounts.get(node.name, ())
        volume_ids = pulumi.Output.all(*(mount.volume_id for mount in mounts))
        user_data[node.name] = pulumi.Output.all(secret_names, volume_ids, ssh_access(plan, node.name, host_keys), plan.images_parameter_name).apply(
            lambda args, node=node, mounts=mounts: gzip_base64(render_node_cloud_init(
                node=node,
                layout=plan.layout,
                hooks=gcp_hooks(),
                secret_names=args[0],
                devices=[(disk_device(volume_id), mount.mount_point) for volume_id, mount in zip(args[1], mounts, strict=True)],
                access=args[2],
                images_parameter=args[3],
            ))
        )
    bastion = ssh_access(plan, BASTION_HOST_KEY, host_keys).apply(
        lambda access: render_bastion_cloud_init(host=hostname(plan.layout.hostname_prefix, plan.layout.bastion), access=access, hooks=gcp_hooks())
    )
    return SwarmResult(user_data_base64=user_data, bastion_user_data=bastion, bootstrap_secret_ids=names, host_key_ids=host_keys)
