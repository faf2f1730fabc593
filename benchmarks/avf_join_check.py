"""Direct AVF against the two joins (full-PVF and read-weighted), per model and structure.

    python -m benchmarks.avf_join_check --models lenet5,dlrm_small,resnet18,tinybert_tweets \\
        --hw edge_npu --trials 3000 --pvf-trials 300 --batch 16 --out out/join_check

For every model, one AVF study (per-sample rates, occupied sampling, fp32 weights) with its own
PVF campaign, and a table: direct AVF, read-weighted join, direct ÷ read-weighted with its
MOVER interval (does it contain 1?), full-PVF join and its excess, and the number of
direct events (agreement is only claimed where there are ≥ 20).

``--sweep`` adds the second table: LeNet-5 on the same preset for each dataflow × batch size:
the full-PVF join's overestimate as the read-weighting predicts it (full ÷ read-weighted, from
the residency table alone) beside the one measured (full ÷ direct).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _model(name: str, zoo: Path):
    from faults import api

    if name in api.bundled_models():
        return api.load_model(name)
    return api.load_model(zoo / name / "model.onnx")


def study(name: str, args, hw_sets: list[str], batch: int, out: Path, structures) -> list[dict]:
    from faults import api

    model = _model(name, Path(args.zoo))
    inputs = api.load_inputs(model, batch=batch)
    config = api.StudyConfig(structures=structures, trials=args.trials, seed=args.seed, inputs_per_trial=1,
                             sampling="occupied", join=api.JoinConfig(pvf_trials=args.pvf_trials, pvf_by="param"))
    t0 = time.perf_counter()
    result = api.avf_study(model, inputs, args.hw, config, out, overrides=hw_sets, dtype="fp32", workers=args.workers)
    rows = []
    for s, r in result.structures.items():
        d, w, j = r.direct, r.joined_rw, r.joined
        rows.append({"model": name, "structure": s, "events": d.sdc, "direct": d.avf_sdc, "direct_lo": d.sdc_lo,
                     "direct_hi": d.sdc_hi, "rw": w.avf_sdc, "ratio": r.ratio[0], "ratio_lo": r.ratio[1],
                     "ratio_hi": r.ratio[2], "full": j.avf_sdc, "seconds": round(time.perf_counter() - t0, 1)})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--zoo", default=str(ROOT / "build" / "zoo"))
    ap.add_argument("--models", default="lenet5,dlrm_small")
    ap.add_argument("--hw", default="edge_npu")
    ap.add_argument("--structures", default="hbm,weight_sram,embedding_sram,pe")
    ap.add_argument("--trials", type=int, default=2000)
    ap.add_argument("--pvf-trials", type=int, default=200)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--sweep", action="store_true", help="also the dataflow × batch sweep on LeNet-5")
    ap.add_argument("--out", default="out/join_check")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    print(f"# load average {os.getloadavg()}", flush=True)
    table = []
    for name in args.models.split(","):
        model_structures = tuple(s for s in args.structures.split(",") if s != "embedding_sram" or "dlrm" in name)
        rows = study(name, args, ["precision.weight_bytes=4"], args.batch, Path(args.out) / name, model_structures)
        for r in rows:
            print(json.dumps(r), flush=True)
        table += rows
    print("\n| model | structure | direct events | direct AVF [95%] | read-weighted join | direct ÷ rw [95%] | "
          "contains 1 | full-PVF join | full ÷ direct |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in table:
        ok = r["ratio_lo"] <= 1 <= r["ratio_hi"]
        print(f"| {r['model']} | {r['structure']} | {r['events']} | {r['direct']:.3g} [{r['direct_lo']:.3g}, "
              f"{r['direct_hi']:.3g}] | {r['rw']:.3g} | {r['ratio']:.3g} [{r['ratio_lo']:.3g}, {r['ratio_hi']:.3g}] | "
              f"{'yes' if ok else ('NO' if r['events'] >= 20 else 'n/a (<20 events)')} | {r['full']:.3g} | "
              f"{r['full'] / r['direct'] if r['direct'] > 0 else float('nan'):.3g} |")
    if args.sweep:
        print("\n| dataflow | batch | structure | predicted full ÷ rw | measured full ÷ direct [95%] |")
        print("|---|---|---|---|---|")
        for dataflow in ("ws", "os", "is"):
            for batch in (4, 16, 64):
                rows = study("lenet5", args, ["precision.weight_bytes=4", f"array.dataflow={dataflow}"], batch,
                             Path(args.out) / f"sweep_{dataflow}_{batch}", ("weight_sram", "pe"))
                for r in rows:
                    lo = r["full"] / r["direct_hi"] if r["direct_hi"] > 0 else float("nan")
                    hi = r["full"] / r["direct_lo"] if r["direct_lo"] > 0 else float("inf")
                    meas = r["full"] / r["direct"] if r["direct"] > 0 else float("nan")
                    print(f"| {dataflow} | {batch} | {r['structure']} | {r['full'] / r['rw']:.3g} | "
                          f"{meas:.3g} [{lo:.3g}, {hi:.3g}] |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
