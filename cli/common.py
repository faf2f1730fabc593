"""Pieces shared by the command modules: argument groups, the one-line command error and the
one-line warnings."""
from __future__ import annotations

import argparse
import contextlib
import sys
import warnings
from typing import Iterator

from accelsim.config import list_presets
from accelsim.errors import InputWarning, UserError


class CommandError(UserError, ValueError):
    """A user error in a command's arguments; printed as one line."""


def add_hw_arguments(parser: argparse.ArgumentParser) -> None:
    """``--hw PRESET|FILE.toml`` and repeatable ``--set key=value`` (every hardware command)."""
    parser.add_argument("--hw", default="edge_npu",
                        help=f"preset ({', '.join(list_presets())}) or a TOML file")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config value, e.g. --set array.dataflow=os")


def add_study_arguments(parser: argparse.ArgumentParser) -> None:
    """``--seed``, ``--out``, ``--dtype``, ``--inputs``, ``--batch`` (the studies on hardware)."""
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="output folder (resumable)")
    parser.add_argument("--dtype", default=None, choices=("fp32", "fp16", "bf16", "int8"),
                        help="stored weight format (default: from precision.weight_bytes)")
    parser.add_argument("--inputs", help=".npz of graph inputs (default: eval_inputs.npz beside the model)")
    parser.add_argument("--batch", type=int, default=32, help="first BATCH samples form the inference")


def positive(name: str, value: int | None, allow_zero: bool = False) -> None:
    """One-line error unless ``value`` is None or >= 1 (>= 0 with ``allow_zero``)."""
    if value is not None and value < (0 if allow_zero else 1):
        raise CommandError(f"{name} must be >= {0 if allow_zero else 1}, got {value}")


@contextlib.contextmanager
def one_line_warnings(command: str) -> Iterator[None]:
    """Print each distinct :class:`InputWarning` once, as ``accelsim <command>: warning: ...``
    on stderr (other warnings keep Python's format)."""
    shown: set[str] = set()
    with warnings.catch_warnings():
        warnings.simplefilter("always", InputWarning)
        python_format = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            if not issubclass(category, InputWarning):
                python_format(message, category, filename, lineno, file, line)
                return
            text = (str(message).splitlines() or [category.__name__])[0]
            if text not in shown:
                shown.add(text)
                print(f"accelsim {command}: warning: {text}", file=sys.stderr)

        warnings.showwarning = show
        yield
