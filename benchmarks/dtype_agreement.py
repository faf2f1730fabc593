"""Top-1 (or click-decision) agreement of fp16/bf16/int8 parameter storage with fp32, per model.

Usage::

    python -m benchmarks.dtype_agreement [--zoo build/zoo] [--max-batch 256]

For every bundled and zoo model (legacy export) it runs the evaluation inputs with parameters
stored as fp32, fp16, bf16 and int8 (per-output-channel, weight-only) and prints, per storage
format, the share of samples whose decision equals the fp32 one (argmax for classifiers; CTR
above 0.5 for single-output models) and the max |output - fp32 output| relative to the fp32
output scale.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from accelsim import bundled, executor
from frontend import load_onnx

FORMATS = ("fp16", "bf16", "int8")


def _decisions(output: np.ndarray) -> np.ndarray:
    if output.ndim == 2 and output.shape[1] > 1:
        return output.argmax(axis=1)
    return (output.reshape(len(output), -1)[:, 0] > 0.5).astype(np.int64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zoo", type=Path, default=Path("build/zoo"))
    parser.add_argument("--max-batch", type=int, default=256)
    args = parser.parse_args()
    models = [bundled.path(name) / "model.onnx" for name in ("lenet5", "dlrm_small")]
    if args.zoo.is_dir():
        models += [p for p in sorted(args.zoo.glob("*/model.onnx")) if p.parent.name != "dlrm_small"
                   and p.parent.name != "lenet5"]
    header = " ".join(f"{fmt + ' agree':>11} {fmt + ' max|d|':>12}" for fmt in FORMATS)
    print(f"{'model':<18} {'batch':>5} {header}")
    for model in models:
        with np.load(model.parent / "eval_inputs.npz") as data:
            inputs = {k: data[k] for k in data.files}
        if len({v.shape[0] for v in inputs.values()}) == 1:
            inputs = {k: v[: args.max_batch] for k, v in inputs.items()}
        program = load_onnx(model)
        name = program.output_names[0]
        reference = executor.run(program, inputs).outputs[name]
        scale = float(np.abs(reference).max()) or 1.0
        cells = []
        for fmt in FORMATS:
            output = executor.run(program, inputs, dtype=fmt).outputs[name]
            agree = float(np.mean(_decisions(output) == _decisions(reference)))
            cells.append(f"{agree:>11.4f} {np.abs(output - reference).max() / scale:>12.2e}")
        print(f"{model.parent.name:<18} {len(reference):>5} {' '.join(cells)}")


if __name__ == "__main__":
    main()
