"""The firewall matrix as every cloud's firewall reads it (design §2.5): which groups there are,
the group a rule admits traffic into, the group or the address ranges it admits traffic from, and
the ports as the names of the rules spell them. Each cloud turns these into its own rules
(`providers/<cloud>/network.py`); what they read of the matrix is the same, so it is here once.
"""

from __future__ import annotations

from components.network import LOAD_BALANCER_GROUP, NetworkPlan
from dpc.model import FromCidrs, FromLoadBalancer, FromRole, Role, Rule

FIREWALL_GROUPS: tuple[str, ...] = (*(role.value for role in Role), LOAD_BALANCER_GROUP)
"""One group per role and the load balancer's, in this order."""


def target_group(rule: Rule) -> str:
    """The group whose members the rule admits traffic into (a rule to no role is the load balancer's)."""
    return LOAD_BALANCER_GROUP if rule.to is None else rule.to.value


def source_group(source: FromRole | FromLoadBalancer) -> str:
    """The group traffic of a role or of the load balancer comes from."""
    return LOAD_BALANCER_GROUP if isinstance(source, FromLoadBalancer) else source.role.value


def source_cidrs(plan: NetworkPlan, source: FromCidrs) -> tuple[str, ...]:
    """The ranges the settings name for the admins or the clients; the clients are the network
    itself when the stack lists none (the endpoint stays internal).
    """
    if source.kind == "admin":
        return plan.admin_cidrs
    return plan.client_cidrs or (plan.cidr,)


def port_range(rule: Rule) -> str:
    """The rule's ports as firewalls write them: `5432`, `2379-2380` (not for ESP, which has none)."""
    return str(rule.port) + (f"-{rule.to_port}" if rule.to_port != rule.port else "")


def ports_label(rule: Rule) -> str:
    """The protocol and ports as the rules' names spell them: `tcp5432`, `tcp2379-2380`, `esp`."""
    return rule.protocol if rule.protocol == "esp" else f"{rule.protocol}{port_range(rule)}"
