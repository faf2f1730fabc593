"""Pieces shared by the command modules: argument groups and the one-line command error."""
from __future__ import annotations

import argparse

from accelsim.config import list_presets
from accelsim.errors import UserError


class CommandError(UserError, ValueError):
    """A user error in a command's arguments; printed as one line."""


def add_hw_arguments(parser: argparse.ArgumentParser) -> None:
    """``--hw PRESET|FILE.toml`` and repeatable ``--set key=value`` (every hardware command)."""
    parser.add_argument("--hw", default="edge_npu",
                        help=f"preset ({', '.join(list_presets())}) or a TOML file")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config value, e.g. --set array.dataflow=os")


def positive(name: str, value: int | None, allow_zero: bool = False) -> None:
    """One-line error unless ``value`` is None or >= 1 (>= 0 with ``allow_zero``)."""
    if value is not None and value < (0 if allow_zero else 1):
        raise CommandError(f"{name} must be >= {0 if allow_zero else 1}, got {value}")
