"""``accelsim inspect MODEL.onnx``: parameters by component and the op histogram."""
from __future__ import annotations

import argparse

from accelsim import storage
from faults import api

NAME = "inspect"
HELP = "print parameters grouped by component (count, bytes, dtype) and the op histogram"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="ONNX file (or a bundled model name)")
    parser.add_argument("--dtype", default="fp32", choices=storage.FORMATS,
                        help="parameter storage format used for the byte counts")


def main(args: argparse.Namespace) -> int:
    model = api.load_model(args.model)
    program = model.program
    bits = storage.BITS_PER_ELEMENT[args.dtype]
    rows = []
    for component, params in program.parameters_by_component().items():
        elements = sum(p.size for p in params)
        rows.append((component, len(params), elements, elements * bits // 8))
    width = max([len("component")] + [len(r[0]) for r in rows])
    print(f"model {args.model}: {len(program.parameters)} parameters in {len(rows)} components, "
          f"stored as {args.dtype}")
    print(f"{'component':<{width}}  {'tensors':>7}  {'elements':>12}  {'bytes':>12}  dtype")
    for component, tensors, elements, size in rows:
        print(f"{component:<{width}}  {tensors:>7}  {elements:>12,}  {size:>12,}  {args.dtype}")
    total_elements = sum(r[2] for r in rows)
    total_bytes = sum(r[3] for r in rows)
    print(f"{'total':<{width}}  {len(program.parameters):>7}  {total_elements:>12,}  {total_bytes:>12,}")
    print()
    print("ONNX ops:  " + ", ".join(f"{op} {n}" for op, n in api.onnx_op_histogram(model).items()))
    print("IR ops:    " + ", ".join(f"{op} {n}" for op, n in program.op_histogram().items()))
    return 0
