"""Time to answer: wall time until the population SDC PVF is known to ±10% (relative, 95%),
the precision mode with the fast path vs uniform sampling with a naive onnxruntime re-run.

Usage::

    python -m benchmarks.bench_answer [--zoo build/zoo] [--models minilm_tweets,resnet18]
                                      [--precision 0.10] [--eval 256] [--uniform-seconds 60]
                                      [--seed 1] [--golden-budget-gib G] [--json F]

Per model (``<zoo>/<model>/model.onnx``, the first ``--eval`` samples of its evaluation set, one
input per fault, single bit flips in fp32 parameters, SDC = top-1 change or a NaN/Inf output),
side by side in one process, one thread each (BLAS, kernels, onnxruntime intra-op):

* (a) ``accelsim pvf --precision 0.10`` (chunks of 256) as an API call into a fresh folder: the whole call —
  plan, golden run and cache, pilot, allocation rounds, every trial on the fast path, the store
  — until the bits-weighted population PVF's interval (the project's stratified interval) has
  a relative half-width of at most 10%;
* (b) uniform sampling over every stored bit (parameter by its bits, element, bit position and
  input uniform; own seeded generator) with the corrupted initializer fed to onnxruntime for
  each trial (one buffer per parameter, corrupted in place and restored; the fault's input
  only). Running (b) to ±10% would take many minutes, so it runs for ``--uniform-seconds``
  (its per-trial cost and an estimate with its Wilson interval) and its wall time to the
  target is **extrapolated**: setup (session, golden run) + ``n`` × per-trial seconds, ``n`` the
  smallest sample whose Wilson interval has relative half-width 0.10 at (a)'s estimate of the
  PVF (also printed at (b)'s own estimate).

Printed per model: (a) seconds, trials, rounds, estimate [interval] and its relative
half-width; (b) per-trial ms, measured trials and estimate [interval], ``n``, extrapolated
seconds; the ratio (b) / (a) and whether the two intervals overlap. Load average before and
after; run it under ``python -m benchmarks.peak_rss --`` for the peak RSS.
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PRECISION_CHUNK = 256  # the chunk size of ``accelsim pvf --precision`` (its default)


def uniform_trials(program, rng: np.random.Generator, batch: int, count: int) -> list[tuple[str, int, int, int]]:
    """``count`` uniform draws over every stored fp32 bit: (parameter, element, bit, input row)."""
    names = list(program.parameters)
    sizes = np.array([program.parameters[n].size for n in names], dtype=np.float64)
    cum = np.cumsum(sizes)
    out = []
    for _ in range(count):
        j = int(min(np.searchsorted(cum, rng.random() * cum[-1], side="right"), len(names) - 1))
        out.append((names[j], int(rng.integers(program.parameters[names[j]].size)), int(rng.integers(32)),
                    int(rng.integers(batch))))
    return out


def run_uniform_ort(model, inputs: dict, seconds: float, seed: int, min_trials: int = 500) -> dict:
    """(b): onnxruntime re-runs of uniform draws for ``seconds`` (at least ``min_trials``)."""
    from faults.common import stats
    from faults.reference.onnx_naive import OnnxNaive

    t0 = time.perf_counter()
    naive = OnnxNaive(model.path, model.program, threads=1)
    golden = naive.run(inputs)
    setup = time.perf_counter() - t0
    golden_top = np.argmax(golden, axis=-1)
    batch = golden.shape[0]
    buffers = {n: np.array(v, dtype=np.float32) for n, v in model.program.parameter_values.items()}
    rng = np.random.default_rng([seed, 0x756E6966])
    for name, element, bit, row in uniform_trials(model.program, rng, batch, 3):  # warm-up
        naive.run({k: v[row:row + 1] for k, v in inputs.items()}, {name: buffers[name]})
    n = k = 0
    spent = 0.0
    while spent < seconds or n < min_trials:
        for name, element, bit, row in uniform_trials(model.program, rng, batch, 50):
            start = time.perf_counter()
            flat = buffers[name].reshape(-1)
            old = flat[element]
            flat.view(np.uint32)[element] ^= np.uint32(1 << bit)
            out = naive.run({key: value[row:row + 1] for key, value in inputs.items()}, {name: buffers[name]})[0]
            flat[element] = old
            k += int(not np.all(np.isfinite(out)) or int(np.argmax(out)) != int(golden_top[row]))
            n += 1
            spent += time.perf_counter() - start
    est = stats.estimate(k, n, 0.95, "wilson")
    return {"setup_s": setup, "trials": n, "sdc": k, "seconds": spent, "per_trial_s": spent / n,
            "pvf": est.pvf, "lo": est.lo, "hi": est.hi}


def allocation_rounds(program, config, trials) -> int:
    """Allocation rounds after the pilot, replayed from the stored trials (the rounds are a pure
    function of them)."""
    from faults.pvf.plan import make_plan
    from faults.pvf.precision import PrecisionRounds

    plan = make_plan(program, config)
    rounds = PrecisionRounds(plan.cells, config, plan.planned)
    totals = rounds.pilot()
    cell, rep, sdc = (trials[c].to_numpy() for c in ("cell", "rep", "outcome"))
    while totals is not None:
        inside = rep < np.asarray(totals)[cell]
        n = np.bincount(cell[inside], minlength=len(totals))
        k = np.bincount(cell[inside], weights=(sdc[inside] == 1), minlength=len(totals)).astype(int)
        totals = rounds.next_totals(n.tolist(), k.tolist())
    return rounds.round


def run_precision(model, inputs: dict, precision: float, seed: int, budget_gib: float | None = None) -> dict:
    """(a): the precision mode into a fresh folder, one worker (this process, one thread)."""
    from faults import api
    from faults.pvf.precision import relative_half_width

    folder = Path(tempfile.mkdtemp(prefix="bench_answer_"))
    try:
        config = api.CampaignConfig(precision=precision, trials=10**6, seed=seed, chunk_size=PRECISION_CHUNK)
        start = time.perf_counter()
        results = api.pvf_campaign(model, inputs, config, folder / "campaign", workers=1, progress=False,
                                   golden_budget_gib=budget_gib)
        seconds = time.perf_counter() - start
        est = results.population()
        cells = results.cells()
        return {"seconds": seconds, "trials": int(results.last_run.trials), "strata": len(cells),
                "rounds": allocation_rounds(model.program, config, results.trials()),
                "pvf": est.pvf, "lo": est.lo, "hi": est.hi, "relative_half_width": relative_half_width(est)}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def bench_model(folder: Path, *, precision: float, eval_size: int, uniform_seconds: float, seed: int,
                budget_gib: float | None = None) -> dict:
    from faults import api
    from faults.common import stats

    gc.collect()
    model = api.load_model(folder / "model.onnx")
    inputs = api.load_inputs(model, max_inputs=eval_size)
    a = run_precision(model, inputs, precision, seed, budget_gib)
    gc.collect()
    b = run_uniform_ort(model, inputs, uniform_seconds, seed)
    n_a = stats.required_trials(a["pvf"], precision * a["pvf"], 0.95, "wilson", limit=1 << 40)
    n_b = stats.required_trials(b["pvf"], precision * b["pvf"], 0.95, "wilson", limit=1 << 40) if b["pvf"] > 0 else None
    b_seconds = b["setup_s"] + n_a * b["per_trial_s"]
    return {"model": folder.name, "eval_inputs": len(next(iter(inputs.values()))), "a": a, "b": b,
            "uniform_n": n_a, "uniform_n_at_b": n_b, "b_seconds": b_seconds, "ratio": b_seconds / a["seconds"],
            "overlap": bool(a["lo"] <= b["hi"] and b["lo"] <= a["hi"])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zoo", type=Path, default=ROOT / "build" / "zoo")
    parser.add_argument("--models", default="minilm_tweets,resnet18")
    parser.add_argument("--precision", type=float, default=0.10)
    parser.add_argument("--eval", type=int, default=256, help="evaluation inputs (the first ones)")
    parser.add_argument("--uniform-seconds", type=float, default=60.0, help="measured time of (b) per model")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--golden-budget-gib", type=float, default=None,
                        help="(a)'s golden activations kept (default 1.5 GiB; changes time and memory, no number)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from threadpoolctl import threadpool_limits

    from accelsim.kernels import parallel

    threadpool_limits(1)
    parallel.set_default_threads(1)
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; one thread each; target ±{100 * args.precision:g}% "
          f"relative (95%) on the population SDC PVF", flush=True)
    results = []
    for name in [m for m in args.models.split(",") if m]:
        r = bench_model(args.zoo / name, precision=args.precision, eval_size=args.eval,
                        uniform_seconds=args.uniform_seconds, seed=args.seed, budget_gib=args.golden_budget_gib)
        results.append(r)
        a, b = r["a"], r["b"]
        n_b = f"{r['uniform_n_at_b']:,}" if r["uniform_n_at_b"] else "inf"
        print(f"{name} (eval {r['eval_inputs']}):\n"
              f"  (a) precision mode: {a['seconds']:.1f} s, {a['trials']:,} trials in {a['strata']} strata "
              f"(pilot + {a['rounds']} round{'s' * (a['rounds'] != 1)}), "
              f"PVF {a['pvf']:.4g} [{a['lo']:.4g}, {a['hi']:.4g}] ±{100 * a['relative_half_width']:.1f}%\n"
              f"  (b) uniform + onnxruntime: {1000 * b['per_trial_s']:.2f} ms/trial, setup {b['setup_s']:.1f} s; "
              f"measured {b['trials']:,} trials: PVF {b['pvf']:.4g} [{b['lo']:.4g}, {b['hi']:.4g}]; "
              f"±{100 * args.precision:g}% needs n = {r['uniform_n']:,} at (a)'s PVF ({n_b} at (b)'s) -> "
              f"{r['b_seconds']:.0f} s (extrapolated)\n"
              f"  ratio (b)/(a) {r['ratio']:.1f}x; intervals overlap: {r['overlap']}", flush=True)
    load_end = os.getloadavg()
    if results:
        geo = math.exp(np.mean([math.log(r["ratio"]) for r in results]))
        print(f"geometric mean ratio {geo:.1f}x; load average at the end {load_end[0]:.2f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"load": load, "load_end": load_end, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
