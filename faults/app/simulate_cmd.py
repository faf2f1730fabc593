"""``accelsim simulate MODEL.onnx --hw PRESET``: cycles, utilization, stalls, traffic, residency."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from accelsim import executor
from accelsim.config import list_presets, load_config
from accelsim.schedule import simulate, write_report
from accelsim.schedule.report import format_table
from faults.app.common import CommandError, default_inputs_for, load_program, read_inputs

NAME = "simulate"
HELP = "schedule a model on an accelerator config: per-op cycles, stalls, traffic, residency"


def add_hw_arguments(parser: argparse.ArgumentParser) -> None:
    """``--hw PRESET|FILE.toml`` and repeatable ``--set key=value`` (every hardware command)."""
    parser.add_argument("--hw", default="edge_npu",
                        help=f"preset ({', '.join(list_presets())}) or a TOML file")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config value, e.g. --set array.dataflow=os")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="ONNX file")
    add_hw_arguments(parser)
    parser.add_argument("--inputs", help=".npz of graph inputs (default: eval_inputs.npz beside "
                        "the model); the batch they hold is the batch scheduled")
    parser.add_argument("--batch", type=int, default=None,
                        help="use only the first BATCH samples of the inputs")
    parser.add_argument("--out", default=None, help="folder for CSV/JSON/PNG (default: none)")
    parser.add_argument("--limit", type=int, default=40, help="rows of the per-op table to print")


def main(args: argparse.Namespace) -> int:
    hw = load_config(args.hw, args.overrides)
    program = load_program(args.model)
    inputs_path = args.inputs or default_inputs_for(args.model)
    if inputs_path is None:
        raise CommandError(f"{args.model}: no --inputs given and no eval_inputs.npz beside the model")
    inputs = read_inputs(inputs_path)
    if args.batch is not None:
        if args.batch < 1:
            raise CommandError(f"--batch must be >= 1, got {args.batch}")
        inputs = {name: value[: args.batch] for name, value in inputs.items()}
    cache = executor.run(program, inputs, keep_intermediates=True).cache
    shapes = {name: tuple(value.shape) for name, value in cache.items()}
    schedule = simulate(program, shapes, hw, index_values=cache)
    print(f"{program.name} on {hw.name}: batch {len(next(iter(inputs.values())))}")
    print(format_table(schedule, limit=args.limit))
    print(json.dumps(schedule.summary(), indent=1, default=str))
    if args.out:
        written = write_report(schedule, Path(args.out))
        for kind, path in written.items():
            print(f"wrote {kind}: {path}")
    return 0
