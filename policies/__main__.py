"""The policy pack's entry point, run by the Pulumi engine's Python policy host
(`pulumi preview --policy-pack policies`): it only constructs the PolicyPack, which serves the
policies over gRPC and prints its port for the engine.
"""

import sys
from pathlib import Path

# The engine runs this file with the pack's directory first on the path, so no module here may
# share a name with the standard library's (hence `secret_leaks`, not `secrets`); the policies
# also read the program's model (`dpc`), so the project root goes first.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi_policy import PolicyPack

from policies.pack import DEFAULT_ENFORCEMENT, PACK_NAME, POLICIES

PolicyPack(name=PACK_NAME, policies=POLICIES, enforcement_level=DEFAULT_ENFORCEMENT)
