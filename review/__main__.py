"""`python -m review <command>`: the offline plan of a stack and the reviews of a change (its
policy verdict, cost and risk, and the pull-request comment that gathers them).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import sys
from collections.abc import Callable
from typing import Protocol, cast


class Subcommand(Protocol):
    """What a subcommand's module offers: its arguments, and the command that runs on them."""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Declares the subcommand's arguments on its parser."""
        ...

    command: Callable[[argparse.Namespace], int]


SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "plan": ("review.plan_command", "plan a stack offline, in the shape of `pulumi preview --json`"),
    "policy": ("review.policy", "run the policy pack over a plan file, ours or `pulumi preview --json`'s"),
    "cost": ("review.cost", "the monthly cost of a change, per resource and component, and its delta"),
    "risk": ("review.risk", "each step of a change classed safe, review, dangerous or irreversible"),
    "comment": ("review.comment", "one pull-request comment: cost, risk and policy verdict per stack, and the gate"),
}
"""Each subcommand's module and what it does. Only the module of the command being run is
imported: the plan's SDKs and the policy pack take a second or more to import, which `risk` and
`cost` need none of (a pull request's review runs them once per stack)."""


def main(argv: list[str] | None = None) -> int:
    """Runs the subcommand named first; its module documents its exit codes."""
    arguments = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m review", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    chosen = next((argument for argument in arguments if not argument.startswith("-")), None)
    for name, (module_name, summary) in SUBCOMMANDS.items():
        subparser = commands.add_parser(name, help=summary, description=summary)
        if name == chosen:
            module = cast(Subcommand, importlib.import_module(module_name))
            module.add_arguments(subparser)
            subparser.set_defaults(run=module.command)
    args = parser.parse_args(arguments)
    return cast(Callable[[argparse.Namespace], int], args.run)(args)


if __name__ == "__main__":
    # One short process: Python's cyclic garbage collector would spend its time on memory the
    # process hands back as it ends: 0.3 s collecting after the plan (see collector_paused), then
    # 1.3 s at exit, where the interpreter's teardown collects every one of the 260,000 objects the
    # program and the SDKs made; frozen, they are left to the end of the process.
    gc.disable()
    status = main()
    gc.freeze()
    sys.exit(status)
