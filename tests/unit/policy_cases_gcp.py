"""GCP resources for the policy tests, in the shapes the GCP builders make them (providers/gcp/):
firewall rules on network tags named after the roles, machines running as their role's service
account (named by e-mail, known from the account id before the account exists), Secret Manager
secrets under the stack's key, IAM members on the one resource they concern.
"""

from __future__ import annotations

from typing import Any

from review.policy import PlannedResource
from tests.unit.policy_cases import ADMIN, GCP_KEY, Case, res

PROJECT = "p"
ROLES = ("manager", "worker", "app", "backup", "bastion")
ACCOUNTS = {role: res("gcp:serviceaccount/account:Account", f"{role}-identity", {"accountId": f"gcp-prod-compute-{role}"}) for role in ROLES}
"""Each role's service account, as the compute builder names it (`<component>-<role>`)."""
LABELS = {"environment": "prod", "service": "postgres", "owner": "platform-team", "cost_center": "database-platform"}
SUBNETWORK = res("gcp:compute/subnetwork:Subnetwork", "private", {"ipCidrRange": "10.20.0.0/20", "logConfig": {"aggregationInterval": "INTERVAL_1_MIN"}})
"""The private subnetwork, inside the case stack's `dpc:network.vpcCidr` (10.20.0.0/16)."""
KEY = res("gcp:kms/cryptoKey:CryptoKey", "key", {"rotationPeriod": "7776000s", "labels": LABELS})
HEALTH_CHECKS = ["35.191.0.0/16", "130.211.0.0/22"]


def email(role: str) -> str:
    return f"gcp-prod-compute-{role}@{PROJECT}.iam.gserviceaccount.com"


def firewall(name: str, allows: list[dict[str, Any]], **inputs: Any) -> PlannedResource:
    """An INGRESS allow rule as the network builder writes one."""
    return res("gcp:compute/firewall:Firewall", name, {"direction": "INGRESS", "priority": 1000, "allows": allows, **inputs})


def tcp(*ports: str) -> list[dict[str, Any]]:
    return [{"protocol": "tcp", "ports": list(ports)}]


DENY_ALL = res("gcp:compute/firewall:Firewall", "all-in-deny", {"direction": "INGRESS", "priority": 65535, "denies": [{"protocol": "all"}],
                                                                "sourceRanges": ["0.0.0.0/0"]})


def instance(name: str, role: str | None, *, tags: list[str] | None = None, account: str | None = None, **inputs: Any) -> PlannedResource:
    """A machine of `role` as the compute builder makes it: its role's account and tag, its labels."""
    props: dict[str, Any] = {
        "serviceAccount": {"email": account or (email(role) if role else "x@elsewhere.iam.gserviceaccount.com"), "scopes": ["cloud-platform"]},
        "tags": tags if tags is not None else [role],
        "labels": {**LABELS, **({"role": role} if role else {})},
        "networkInterfaces": [{"subnetwork": "private"}],
        **inputs,
    }
    return res("gcp:compute/instance:Instance", name, props)


def secret(name: str, replication: dict[str, Any], *, from_key: bool = True) -> PlannedResource:
    return res("gcp:secretmanager/secret:Secret", name, {"secretId": name, "replication": replication, "labels": LABELS},
               deps={"replication": [KEY]} if from_key else None)


REGIONAL = {"userManaged": {"replicas": [{"location": "us-central1", "customerManagedEncryption": {"kmsKeyName": GCP_KEY}}]}}

GCP_CASES = [
    Case(
        "ports-only-from-firewall-matrix",
        "gcp",
        [*ACCOUNTS.values(), SUBNETWORK, DENY_ALL,
         firewall("manager-in-tcp2379-2380-from-roles", tcp("2379-2380"), targetTags=["manager"], sourceTags=["manager"]),
         firewall("manager-in-tcp5432-from-load-balancer", tcp("5432"), targetTags=["manager"], sourceRanges=["10.20.0.0/16", *HEALTH_CHECKS]),
         firewall("worker-in-esp-from-roles", [{"protocol": "esp"}], targetTags=["worker"], sourceTags=["manager", "worker", "app", "backup"]),
         firewall("bastion-in-tcp22-from-admin", tcp("22"), targetTags=["bastion"], sourceRanges=[ADMIN]),
         firewall("worker-in-tcp8008", tcp("8008"), targetServiceAccounts=[email("worker")], sourceServiceAccounts=[email("manager")])],
        [*ACCOUNTS.values(), SUBNETWORK,
         firewall("checks-to-pgbouncer", tcp("6432"), targetTags=["app"], sourceRanges=HEALTH_CHECKS),
         firewall("etcd-from-the-vpc", tcp("2379"), targetTags=["manager"], sourceRanges=["10.20.0.0/16"]),
         firewall("every-machine", tcp("8008"), sourceTags=["manager"]),
         firewall("untagged-target", tcp("5432"), targetTags=["db"], sourceTags=["app"]),
         firewall("literal-source", tcp("2379"), targetTags=["manager"], sourceServiceAccounts=["etcd@elsewhere.iam.gserviceaccount.com"]),
         firewall("icmp", [{"protocol": "icmp"}], targetTags=["worker"], sourceTags=["manager"])],
        offenders=6,
    ),
    Case(
        "no-ingress-from-anywhere",
        "gcp sources",
        [DENY_ALL, firewall("egress", tcp("443"), direction="EGRESS"),
         firewall("disabled", tcp("5432"), targetTags=["manager"], disabled=True)],
        [firewall("no-source", tcp("5432"), targetTags=["manager"]),
         firewall("lo", tcp("6432"), targetTags=["app"], sourceRanges=["0.0.0.0/1"]),
         firewall("hi", tcp("6432"), targetTags=["app"], sourceRanges=["128.0.0.0/1"])],
        offenders=3,
    ),
    Case(
        "machines-identified-by-their-groups",
        "gcp",
        [*ACCOUNTS.values(), instance("worker-1", "worker"), instance("bastion", "bastion")],
        [*ACCOUNTS.values(),
         instance("two-tags", "worker", tags=["worker", "bastion"]),
         instance("wrong-tag", "worker", tags=["manager"]),
         instance("literal-account", None, tags=["manager"]),
         instance("labelled", "app", labels={**LABELS, "role": "bastion"})],
        offenders=4,
    ),
    Case(
        "no-public-ip-on-nodes",
        "gcp by account",
        [*ACCOUNTS.values(), instance("bastion", "bastion", networkInterfaces=[{"subnetwork": "public", "accessConfigs": [{"networkTier": "PREMIUM"}]}])],
        [*ACCOUNTS.values(),
         instance("worker-1", "worker", labels={**LABELS, "role": "bastion"},
                  networkInterfaces=[{"subnetwork": "public", "accessConfigs": [{"networkTier": "PREMIUM"}]}])],
    ),
    Case(
        "gcp-secrets-user-managed-under-customer-key",
        "gcp",
        [secret("token", REGIONAL)],
        [secret("auto", {"auto": {}}),
         secret("google-key", {"userManaged": {"replicas": [{"location": "us-central1"}]}})],
        offenders=2,
    ),
    Case(
        "encrypted-with-stack-key",
        "gcp",
        [KEY, secret("token", REGIONAL),
         res("gcp:compute/disk:Disk", "data", {"diskEncryptionKey": {"kmsKeySelfLink": GCP_KEY}, "labels": LABELS},
             deps={"diskEncryptionKey": [KEY]}),
         res("gcp:artifactregistry/repository:Repository", "postgres", {"format": "DOCKER", "kmsKeyName": GCP_KEY}, deps={"kmsKeyName": [KEY]})],
        [KEY, secret("google-key", {"userManaged": {"replicas": [{"location": "us-central1"}]}}),
         res("gcp:compute/disk:Disk", "literal", {"diskEncryptionKey": {"kmsKeySelfLink": GCP_KEY}}),
         res("gcp:artifactregistry/repository:Repository", "postgres", {"format": "DOCKER"}),
         res("gcp:storage/bucket:Bucket", "slow-key", {"encryption": {"defaultKmsKeyName": GCP_KEY}}, deps={"encryption": [
             res("gcp:kms/cryptoKey:CryptoKey", "yearly", {"rotationPeriod": "31536000s"})]})],
        offenders=4,
    ),
    Case(
        "keys-rotated",
        "gcp over 90 days",
        [res("gcp:kms/cryptoKey:CryptoKey", "k", {"rotationPeriod": "7776000s"})],
        [res("gcp:kms/cryptoKey:CryptoKey", "k", {"rotationPeriod": "15552000s"})],
    ),
    Case(
        "iam-least-privilege",
        "gcp",
        [res("gcp:secretmanager/secretIamMember:SecretIamMember", "read-token",
             {"secretId": "projects/p/secrets/t", "role": "roles/secretmanager.secretAccessor", "member": f"serviceAccount:{email('worker')}"}),
         res("gcp:storage/bucketIAMMember:BucketIAMMember", "write-backups",
             {"bucket": "b", "role": "roles/storage.objectUser", "member": f"serviceAccount:{email('backup')}"})],
        [res("gcp:projects/iAMMember:IAMMember", "every-secret",
             {"project": PROJECT, "role": "roles/secretmanager.secretAccessor", "member": f"serviceAccount:{email('worker')}"}),
         res("gcp:projects/iAMBinding:IAMBinding", "editors", {"project": PROJECT, "role": "roles/editor", "members": [f"serviceAccount:{email('app')}"]}),
         res("gcp:secretmanager/secretIamMember:SecretIamMember", "public-token",
             {"secretId": "projects/p/secrets/t", "role": "roles/secretmanager.secretAccessor", "member": "allUsers"}),
         res("gcp:artifactregistry/repositoryIamBinding:RepositoryIamBinding", "public-images",
             {"repository": "r", "role": "roles/artifactregistry.reader", "members": ["allAuthenticatedUsers"]}),
         res("gcp:projects/iAMMember:IAMMember", "owner", {"project": PROJECT, "role": "roles/owner", "member": "user:someone@example.com"})],
        offenders=5,
    ),
    Case(
        "gcp-os-login",
        "serial console",
        [instance("m", "manager", metadata={"enable-oslogin": "TRUE", "serial-port-enable": "FALSE"})],
        [instance("m", "manager", metadata={"enable-oslogin": "TRUE", "serial-port-enable": "TRUE"})],
    ),
    Case(
        "buckets-versioned-and-replicated",
        "gcp prod in one region",
        [res("gcp:storage/bucket:Bucket", "dual", {"versioning": {"enabled": True}, "lifecycleRules": [{"action": {"type": "SetStorageClass"}}],
                                                   "location": "US", "customPlacementConfig": {"dataLocations": ["US-CENTRAL1", "US-EAST1"]}}),
         res("gcp:storage/bucket:Bucket", "multi", {"versioning": {"enabled": True}, "lifecycleRules": [{"action": {"type": "Delete"}}],
                                                    "location": "EU"})],
        [res("gcp:storage/bucket:Bucket", "regional", {"versioning": {"enabled": True}, "lifecycleRules": [{"action": {"type": "Delete"}}],
                                                       "location": "US-CENTRAL1"})],
    ),
    Case(
        "required-tags",
        "gcp labels as the builders convert them",
        [res("gcp:kms/cryptoKey:CryptoKey", "k", {"rotationPeriod": "7776000s", "labels": LABELS})],
        [res("gcp:kms/cryptoKey:CryptoKey", "k", {"rotationPeriod": "7776000s", "labels": {**LABELS, "cost_center": "n-a"}}),
         res("gcp:secretmanager/secret:Secret", "s", {"replication": REGIONAL, "labels": {k: v for k, v in LABELS.items() if k != "owner"}})],
        offenders=2,
    ),
]
