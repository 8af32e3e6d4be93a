"""Docker Swarm's API limits (swarmkit's validation of specs), as checks over a plan (`review.limits`)."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator

from review.limits import Breach, Check, PlanIndex, TextLimit, known, text_checks

SECRET = "docker:index/secret:Secret"
CONFIG = "docker:index/serviceConfig:ServiceConfig"
SERVICE = "docker:index/service:Service"
_SWARMKIT = "https://github.com/moby/swarmkit/blob/master/manager/controlapi/common.go"

TEXT_LIMITS = (
    TextLimit((SECRET, CONFIG), "name", "secret or config name", 64, _SWARMKIT,
              re.compile(r"[a-zA-Z0-9]+(?:[a-zA-Z0-9_.-]*[a-zA-Z0-9])?"), "letters and digits, with _.- inside"),
    TextLimit((SERVICE,), "name", "service name", 63, _SWARMKIT, re.compile(r"[a-zA-Z0-9](?:[-_]*[A-Za-z0-9]+)*"), "a DNS label"),
)

MAX_BYTES = {SECRET: 500 * 1024, CONFIG: 1000 * 1024}
"""swarmkit refuses a secret over 500 KiB and a config over 1000 KiB."""


def _sizes(plan: PlanIndex) -> Iterator[Breach]:
    for typ, limit in MAX_BYTES.items():
        for resource in plan.of_type(typ):
            data = resource.inputs.get("data")
            if not isinstance(data, str) or not known(data):
                continue
            try:
                size = len(base64.b64decode(data, validate=True))
            except binascii.Error:
                size = len(data.encode())
            if size > limit:
                yield Breach(resource.urn, "data", f"{size} bytes; swarmkit takes at most {limit}", _SWARMKIT)


CHECKS: tuple[Check, ...] = (text_checks(TEXT_LIMITS), _sizes)
