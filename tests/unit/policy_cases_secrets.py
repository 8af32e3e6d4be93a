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
]
