"""Cost of a predicted upset against an injected one, side by side on the same upsets.

    python -m benchmarks.bench_protect --models lenet5,dlrm_small --hw edge_npu --trials 3000
    python -m benchmarks.bench_protect --models dlrm,tinybert_tweets --hw hbm_datacenter \
        --set precision.weight_bytes=2 --structures hbm,pe --trials 1000

The placement search ranks every candidate by prediction (strike, decode and classify exactly;
the network run replaced by the read-weighted join with a per-bit PVF table) and injects only
the chosen placement. This measures what that buys: per model and structure, the same upsets
(unprotected, the given upset model) are predicted (:func:`faults.protect.predict.predict_trials`)
and injected (:func:`faults.protect.evaluate.evaluate_trials`: strike, classify, run what gets
through on the whole batch), alternated, in one process, one BLAS thread. The per-bit PVF
campaign is built first and not timed (the search builds it once for all candidates); its time
is printed apart. ``silent`` = upsets whose data get through and must be run by injection.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="lenet5,dlrm_small")
    ap.add_argument("--hw", default="edge_npu")
    ap.add_argument("--zoo", default=str(ROOT / "build" / "zoo"))
    ap.add_argument("--set", action="append", default=None, help="config overrides (default: fp32 weights)")
    ap.add_argument("--structures", default="weight_sram,hbm,pe")
    ap.add_argument("--upset", default="mcu:1=0.8,2=0.15,3=0.03,4=0.02")
    ap.add_argument("--trials", type=int, default=3000)
    ap.add_argument("--pvf-trials", type=int, default=100)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    overrides = args.set if args.set is not None else ["precision.weight_bytes=4"]
    sys.path.insert(0, str(ROOT))
    from threadpoolctl import threadpool_limits

    import numpy as np

    from faults import api
    from faults.avf.context import AvfContext
    from faults.protect.evaluate import evaluate_trials
    from faults.protect.geometry import structure_areas
    from faults.protect.predict import bit_pvf, predict_trials
    from faults.protect.scheme import parse_protection

    print(f"# load average {os.getloadavg()}; {args.trials} upsets per structure, {args.upset}, "
          f"median of {args.repeats}", flush=True)
    print("\n| model | structure | silent | predict ms/upset | inject ms/upset | inject ÷ predict | PVF table s |")
    print("|---|---|---:|---:|---:|---:|---:|")
    protection = parse_protection([], args.upset)
    trials = list(range(args.trials))
    with threadpool_limits(1), tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            model = api.load_model(name if name in api.bundled_models() else Path(args.zoo) / name / "model.onnx")
            inputs = api.load_inputs(model, batch=args.batch)
            ctx = AvfContext(model.program, inputs, api.hardware(args.hw, overrides))
            t0 = time.perf_counter()
            pvf = bit_pvf(ctx, Path(tmp) / name, args.pvf_trials, seed=0)
            pvf_seconds = time.perf_counter() - t0
            rows = np.arange(ctx.batch)
            for structure in args.structures.split(","):
                areas = structure_areas(ctx, structure, protection)
                predicted, injected = [], []
                for _ in range(args.repeats):
                    t0 = time.perf_counter()
                    p = predict_trials(ctx, areas, protection.upset, structure, trials, 0, pvf)
                    predicted.append(time.perf_counter() - t0)
                    t0 = time.perf_counter()
                    m = evaluate_trials(ctx, areas, protection.upset, structure, trials, 0, rows)
                    injected.append(time.perf_counter() - t0)
                assert [r["cls"] for r in p] == [r["cls"] for r in m]  # the same upsets, the same classes
                silent = sum(r["cls"] == "silent" for r in p)
                tp, ti = float(np.median(predicted)), float(np.median(injected))
                print(f"| {name} | {structure} | {silent} | {1e3 * tp / len(trials):.3f} | "
                      f"{1e3 * ti / len(trials):.3f} | {ti / tp:.1f}× | {pvf_seconds:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
