"""Golden-inference speed: accelsim's executor vs onnxruntime, side by side, same batch.

Usage::

    python -m benchmarks.bench_golden [--zoo build/zoo] [--threads 2] [--repeats 5] [--busy]

For every model found (the bundled ones, plus every ``<zoo>/<model>/model*.onnx``) it runs
the model's ``eval_inputs.npz`` batch through onnxruntime and through accelsim (fp32),
alternating the two, and prints the median times and their ratio (accelsim / onnxruntime;
target <= 1.5x). Both get ``--threads`` threads: onnxruntime intra-op threads; accelsim kernel
threads (``executor.run(threads=...)``: BLAS one thread per call, independent samples split
over threads). ``--busy`` keeps one core busy with another process (a spinning loop) during
the measurement, to show how each engine degrades when a core is taken. Ratios, not absolute
times, are the result: the machine is shared and noisy.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path


def _models(zoo: Path) -> list[Path]:
    from accelsim import bundled

    found = [bundled.path(name) / "model.onnx" for name in ("lenet5", "dlrm_small")]
    if zoo.is_dir():
        found += sorted(zoo.glob("*/model*.onnx"))
    return [path for path in found if path.is_file()]


def _inputs_for(model: Path) -> dict:
    """``eval_inputs.<variant>.npz`` for ``model.<variant>.onnx`` if present, else eval_inputs.npz."""
    import numpy as np

    variant = model.stem.partition(".")[2]
    candidates = ([model.parent / f"eval_inputs.{variant}.npz"] if variant else []) + [
        model.parent / "eval_inputs.npz"
    ]
    for candidate in candidates:
        if candidate.is_file():
            with np.load(candidate) as data:
                return {k: data[k] for k in data.files}
    raise FileNotFoundError(f"no eval inputs beside {model}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zoo", type=Path, default=Path("build/zoo"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-batch", type=int, default=256,
                        help="cap the evaluation batch (BERT-base: use a small value)")
    parser.add_argument("--busy", action="store_true", help="one core kept busy by another process")
    parser.add_argument("--models", default="", help="only model folders whose name contains one of these (comma separated)")
    args = parser.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

    import subprocess
    import sys

    import onnxruntime as ort

    from accelsim import executor
    from frontend import load_onnx

    busy = None
    if args.busy:
        busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    print(f"load average {os.getloadavg()[0]:.2f}; threads {args.threads}; repeats {args.repeats}; "
          f"busy core: {'yes' if busy else 'no'}")
    print(f"{'model':<34} {'batch':>5} {'ort ms':>9} {'accelsim ms':>12} {'ratio':>7}")
    wanted = [w for w in args.models.split(",") if w]
    try:
        for model in _models(args.zoo):
            if wanted and not any(w in model.parent.name for w in wanted):
                continue
            inputs = _inputs_for(model)
            leading = {v.shape[0] if v.ndim else None for v in inputs.values()}
            if len(leading) == 1:  # batch-major inputs only (not DLRM's flat bag indices)
                inputs = {k: v[: args.max_batch] for k, v in inputs.items()}
            options = ort.SessionOptions()
            options.intra_op_num_threads = args.threads
            options.inter_op_num_threads = 1
            session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
            program = load_onnx(model)
            executor.run(program, inputs, threads=args.threads)  # warm-up (Numba compile, caches)
            session.run(None, inputs)
            ort_times, sim_times = [], []
            for _ in range(args.repeats):
                start = time.perf_counter()
                session.run(None, inputs)
                ort_times.append(time.perf_counter() - start)
                start = time.perf_counter()
                executor.run(program, inputs, threads=args.threads)
                sim_times.append(time.perf_counter() - start)
            ort_ms = statistics.median(ort_times) * 1e3
            sim_ms = statistics.median(sim_times) * 1e3
            batch = len(next(iter(inputs.values())))
            label = f"{model.parent.name}/{model.name}"
            print(f"{label:<34} {batch:>5} {ort_ms:>9.2f} {sim_ms:>12.2f} {sim_ms / ort_ms:>6.2f}x", flush=True)
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()


if __name__ == "__main__":
    main()
