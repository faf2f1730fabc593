"""``accelsim`` console script: dispatches to the command modules.

Errors that are the user's (:class:`accelsim.errors.UserError`: bad input, unknown key,
unsupported op, a bad option value, ...) are printed as one line ``accelsim <command>: error:
<message>`` with exit status 2, never a traceback. Any other exception is a bug in accelsim and
propagates with its traceback. ``--debug`` shows the traceback of user errors too. Input that
is accepted with a caveat (:class:`accelsim.errors.InputWarning`: NaN/Inf input values) is
printed once as ``accelsim <command>: warning: <message>``.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from accelsim.errors import UserError
from cli.common import one_line_warnings

COMMAND_MODULES = (
    "cli.inspect_cmd",
    "cli.run_cmd",
    "cli.simulate_cmd",
    "cli.pvf_cmd",
    "cli.report_cmd",
    "cli.demo_cmd",
    "cli.avf_cmd",
    "cli.protect_cmd",
)


class ArgumentError(UserError, ValueError):
    """A malformed command line (unknown option, bad choice, missing argument)."""


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are :class:`ArgumentError` (printed as one line)."""

    def error(self, message: str):  # type: ignore[override]
        raise ArgumentError(message)


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, object]]:
    parser = OneLineParser(
        prog="accelsim", description="Parameter vulnerability of AI models on a simulated accelerator."
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of user errors too")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    modules: dict[str, object] = {}
    for module_name in COMMAND_MODULES:
        module = importlib.import_module(module_name)
        command = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(command)
        modules[module.NAME] = module
    return parser, modules


def _command_of(argv: list[str], modules: dict[str, object]) -> str:
    return next((a for a in argv if a in modules), "")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, modules = build_parser()
    try:
        args = parser.parse_args(argv)
    except ArgumentError as exc:
        command = _command_of(argv, modules)
        print(f"accelsim{' ' + command if command else ''}: error: {exc}", file=sys.stderr)
        return 2
    try:
        with one_line_warnings(args.command):
            return int(modules[args.command].main(args) or 0)
    except UserError as exc:
        if args.debug:
            raise
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"accelsim {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
