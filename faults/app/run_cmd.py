"""``accelsim run MODEL.onnx --inputs IN.npz --out OUT.npz``: golden inference."""
from __future__ import annotations

import argparse

from accelsim import executor, storage
from faults.app.common import load_program, read_inputs, write_npz_atomic

NAME = "run"
HELP = "run the golden (fault-free) inference; inputs/outputs keyed by the graph's own names"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="ONNX file")
    parser.add_argument("--inputs", required=True, help=".npz with one array per graph input")
    parser.add_argument("--out", required=True, help=".npz to write, one array per graph output")
    parser.add_argument("--dtype", default="fp32", choices=storage.FORMATS,
                        help="parameter storage format (compute and accumulation stay fp32)")


def main(args: argparse.Namespace) -> int:
    program = load_program(args.model)
    inputs = read_inputs(args.inputs)
    result = executor.run(program, inputs, dtype=args.dtype)
    write_npz_atomic(args.out, result.outputs)
    for name, value in result.outputs.items():
        print(f"{name}: {value.dtype}{list(value.shape)}")
    print(f"wrote {args.out}")
    return 0
