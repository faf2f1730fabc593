"""``accelsim simulate MODEL.onnx --hw PRESET``: cycles, utilization, stalls, traffic, residency."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from accelsim.schedule.report import format_table
from faults import api

from cli.common import add_hw_arguments, positive

NAME = "simulate"
HELP = "schedule a model on an accelerator config: per-op cycles, stalls, traffic, residency"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="ONNX file (or a bundled model name)")
    add_hw_arguments(parser)
    parser.add_argument("--inputs", help=".npz of graph inputs (default: eval_inputs.npz beside "
                        "the model); the batch they hold is the batch scheduled")
    parser.add_argument("--batch", type=int, default=None,
                        help="use only the first BATCH samples of the inputs")
    parser.add_argument("--out", default=None, help="folder for CSV/JSON/PNG (default: none)")
    parser.add_argument("--limit", type=int, default=40, help="rows of the per-op table to print")


def main(args: argparse.Namespace) -> int:
    positive("--batch", args.batch)
    positive("--limit", args.limit, allow_zero=True)
    if args.out:
        api.check_output_dir(args.out, "--out")
    hw = api.hardware(args.hw, args.overrides)
    model = api.load_model(args.model)
    inputs = api.load_inputs(args.inputs or model, batch=args.batch)
    schedule = api.schedule(model, inputs, hw)
    print(f"{model.program.name} on {hw.name}: batch {len(next(iter(inputs.values())))}")
    print(format_table(schedule, limit=args.limit))
    print(json.dumps(schedule.summary(), indent=1, default=str))
    if args.out:
        written = api.write_schedule(schedule, Path(args.out))
        for kind, path in written.items():
            print(f"wrote {kind}: {path}")
    return 0
