"""``accelsim`` console script: dispatches to the command modules in ``faults.app``.

Errors that are the user's (bad input, unknown key, unsupported op, ...) are printed as one
line ``accelsim <command>: error: <message>`` with exit status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys

COMMAND_MODULES = (
    "faults.app.inspect_cmd",
    "faults.app.run_cmd",
    "faults.app.simulate_cmd",
    "faults.app.pvf_cmd",
    "faults.app.report_cmd",
    "faults.app.demo_cmd",
    "faults.app.avf_cmd",
)


class UserError(Exception):
    """An error in the user's input; printed as one line without a traceback."""


def _user_error_types() -> tuple[type[BaseException], ...]:
    from accelsim.executor import ExecutionError

    return (UserError, FileNotFoundError, ValueError, ExecutionError)


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, object]]:
    parser = argparse.ArgumentParser(
        prog="accelsim", description="Parameter vulnerability of AI models on a simulated accelerator."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    modules: dict[str, object] = {}
    for module_name in COMMAND_MODULES:
        module = importlib.import_module(module_name)
        command = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(command)
        modules[module.NAME] = module
    return parser, modules


def main(argv: list[str] | None = None) -> int:
    parser, modules = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(modules[args.command].main(args) or 0)
    except _user_error_types() as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"accelsim {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
