"""Entry point of `pulumi up`: read and validate the stack's settings, then let the stack's cloud
compose the platform. Everything else lives in `dpc/`, `components/` and `providers/`.
"""

import pulumi

from dpc.config import load_settings
from providers.clouds import deploy_stack

settings = load_settings()
for key, value in deploy_stack(settings, pulumi.get_stack()).items():
    pulumi.export(key, value)
