"""Every Docker secret of the database stack, generated without Pulumi: the passwords and the
passphrase (as the DatabaseStack component's pulumi-random resources would), the CA and the
certificates (engine.pki), and the files rendered from them (dpc.database_files.secret_files).
"""

from __future__ import annotations

import datetime
import secrets
import string

from dpc.cluster import GENERATED_SECRET_LENGTHS, ClusterLayout, certificate_requests
from dpc.database_files import secret_files
from engine.pki import issue

_ALPHABET = string.ascii_letters + string.digits


def generated_passwords() -> dict[str, str]:
    """Every generated password and passphrase, fresh, with the program's lengths and alphabet."""
    return {name: "".join(secrets.choice(_ALPHABET) for _ in range(length)) for name, length in sorted(GENERATED_SECRET_LENGTHS.items())}


def secret_contents(layout: ClusterLayout, ca_name: str, validity: datetime.timedelta) -> dict[str, str]:
    """The content of every Docker secret the services mount, by catalogue name."""
    values = generated_passwords() | issue(certificate_requests(layout), ca_name, validity)
    return values | {name: render(values) for name, render in sorted(secret_files(layout).items())}
