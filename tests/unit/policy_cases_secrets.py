"""Cases of the secret policies that judge provenance and generation (gathered by test_policies.py
with every policy_cases*.py): the literal scans' cases are in policy_cases.py, the syntaxes and
both plan shapes in test_policies_secrets.py.
"""

from __future__ import annotations

from tests.unit.policy_cases import Case, res

_PASSWORD = res("random:index/randomPassword:RandomPassword", "pw", {"length": 32, "special": False})

SECRET_CASES = [
    Case(
        "no-generated-secret-outside-secret-stores",
        "docker and aws",
        [_PASSWORD, res("docker:index/secret:Secret", "pw", {"data": "[unknown]"}, deps={"data": [_PASSWORD]})],
        [
            _PASSWORD,
            res("docker:index/serviceConfig:ServiceConfig", "c", {"data": "[unknown]"}, deps={"data": [_PASSWORD]}),
            res("aws:ssm/parameter:Parameter", "p", {"type": "String", "value": "[unknown]"}, deps={"value": [_PASSWORD]}),
        ],
        offenders=2,
    ),
    Case("generated-passwords-long-enough", "random", [_PASSWORD], [res("random:index/randomPassword:RandomPassword", "short", {"length": 16})]),
    Case(
        "no-secret-in-service-environment",
        "docker container",
        [res("docker:index/container:Container", "ok", {"image": "x@sha256:1", "envs": ["PGHOST=db"], "entrypoints": ["/bin/run"]})],
        [res("docker:index/container:Container", "leak", {"image": "x@sha256:1", "envs": ["PGPASSWORD=Zq7xN4vR2mK8pW3tY6bH9cJ5"],
                                                         "entrypoints": ["/bin/run"]}),
         res("docker:index/container:Container", "argv",
             {"image": "redis@sha256:1", "command": ["redis-server", "--requirepass", "Zq7xN4vR2mK8pW3tY6bH9cJ5"]})],
        offenders=2,
    ),
]
