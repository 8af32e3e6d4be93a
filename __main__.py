"""Entry point of `pulumi up`: read and validate the stack's settings, then let the stack's cloud
compose the platform. Everything else lives in `dpc/`, `components/` and `providers/`.
"""

import pulumi

from dpc.config import load_settings
from providers.clouds import builders_for
from providers.composition import deploy

settings = load_settings()
for key, value in deploy(settings, pulumi.get_stack(), builders_for(settings.cloud)).items():
    pulumi.export(key, value)
