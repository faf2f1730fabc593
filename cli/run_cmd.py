"""``accelsim run MODEL.onnx --inputs IN.npz --out OUT.npz``: golden inference."""
from __future__ import annotations

import argparse

from accelsim import storage
from faults import api

NAME = "run"
HELP = "run the golden (fault-free) inference; inputs/outputs keyed by the graph's own names"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="ONNX file (or a bundled model name)")
    parser.add_argument("--inputs", required=True, help=".npz with one array per graph input")
    parser.add_argument("--out", required=True, help=".npz to write, one array per graph output")
    parser.add_argument("--dtype", default="fp32", choices=storage.FORMATS,
                        help="parameter storage format (compute and accumulation stay fp32)")


def main(args: argparse.Namespace) -> int:
    api.check_output_file(args.out, "--out", suffix=".npz")  # before any work
    model = api.load_model(args.model)
    outputs = api.golden_run(model, api.load_inputs(args.inputs), dtype=args.dtype)
    api.save_outputs(args.out, outputs)
    for name, value in outputs.items():
        print(f"{name}: {value.dtype}{list(value.shape)}")
    print(f"wrote {args.out}")
    return 0
