"""Patroni's own virtualenv for the smoke run, which the postgres user runs.

It is made from Debian's /usr/bin/python3 (a developer's pyenv or the project venv may be
unreadable to postgres), lives under /var/tmp where postgres can read it, and is named by the hash
of its hash-pinned requirements so that it is built once and reused until the lock changes.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
from pathlib import Path

REQUIREMENTS = Path(__file__).with_name("requirements.txt")
SYSTEM_PYTHON = "/usr/bin/python3"
INSTALL_TIMEOUT = 600.0
_COMPLETE = ".dpc-complete"


def patroni_venv() -> Path:
    """The venv's directory with Patroni installed, building it on first use."""
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()[:16]
    venv = Path(f"/var/tmp/dpc-smoke-venv-{digest}")
    with Path(f"{venv}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (venv / _COMPLETE).exists():
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run([SYSTEM_PYTHON, "-m", "venv", str(venv)], check=True, timeout=120)
            subprocess.run(
                [str(venv / "bin/python"), "-m", "pip", "install", "--quiet", "--require-hashes", "--no-deps", "-r", str(REQUIREMENTS)],
                check=True,
                timeout=INSTALL_TIMEOUT,
            )
            venv.chmod(0o755)
            (venv / _COMPLETE).touch()
    return venv
