"""Which builders serve which cloud. Only AWS is built so far; the others fail clearly."""

from __future__ import annotations

from dpc.catalog import Cloud
from dpc.settings import Problem, SettingsError
from providers.composition import CloudBuilders


def builders_for(cloud: Cloud) -> CloudBuilders:
    """The builders of `cloud`, imported only when used (each cloud's SDK is large)."""
    if cloud == "aws":
        from providers.aws import AWS  # noqa: PLC0415  (import the large SDK only for the cloud in use)

        return AWS
    raise SettingsError([Problem("cloud", f"{cloud!r} is not deployable yet; only aws is", "set dpc:cloud to aws")])
