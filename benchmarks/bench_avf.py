"""AVF site throughput per structure, share masked without running, and (optionally) the
trial-by-trial check of mid-residency sites against the naive tile-by-tile replay.

Usage::

    python -m benchmarks.bench_avf [--zoo build/zoo] [--models lenet5,dlrm_small,dlrm,tinybert_tweets]
                                   [--presets tpu_v1,hbm_datacenter] [--sites 500] [--batch 16]
                                   [--naive 300]

For each model × preset (weights stored fp32: ``precision.weight_bytes=4``), each structure:
``sites/s`` = uniform (bit, cycle) direct AVF trials per second (draw + residency resolution +
partial faulty inference + outcome, ``faults.avf.run_direct``, one input per site, one BLAS
thread), ``unrun`` = share of sites masked by the residency table alone (empty slot, padding,
never-transferred bytes, dead copy), ``resolve/s`` = resolutions per second alone. With
``--naive N``: N live sites per structure drawn inside residency windows are evaluated by the
fast path and by ``faults.tile_replay`` (tile-by-tile in schedule order); the outcomes must
agree (near-ties within 1e-5 set aside and counted); its wall times give the speed ratio.
Sites reaching a vector-unit parameter (e.g. LayerNorm scales) are skipped by the naive replay
and counted. Prints one JSON line per row and a markdown table.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
STRUCTURES = ("hbm", "weight_sram", "embedding_sram", "pe")


def _model_dir(name: str, zoo: Path) -> Path:
    for base in (ROOT / "accelsim" / "bundled", zoo):
        if (base / name / "model.onnx").is_file():
            return base / name
    raise SystemExit(f"model {name!r} not found (bundled or in {zoo})")


def _naive_check(ctx, structure: str, count: int, seed: int) -> dict:
    from faults.common import outcome as oc
    from faults.inject.partial import PartialFault
    from faults.avf.sites import Site
    from faults.reference.tile_replay import NaiveUnsupported, naive_outputs

    res, rv, inj = ctx.schedule.residency, ctx.resolver, ctx.injector
    rows = res.select(structure)
    rng = np.random.default_rng(seed)
    sites = []
    for _ in range(50 * count):
        if not rows.size:
            break
        j = int(rows[rng.integers(rows.size)])
        if structure == "pe":
            site = rv.site_from_bit("pe", int(rng.integers(rv.capacity_bits("pe"))),
                                    int(rng.integers(res["write_cycle"][j] + 1, res["evict_cycle"][j])))
        else:
            addr = int(rng.integers(res["addr_lo"][j], res["addr_hi"][j]))
            cycle = int(rng.integers(max(res["write_cycle"][j] + 1, 0), res["last_read"][j] + 1))
            site = Site(structure, addr, int(rng.integers(8)), cycle)
        r = rv.resolve(site)
        if not r.masked:
            sites.append(r)
            if len(sites) == count:
                break
    batch = np.arange(ctx.batch)
    t = time.perf_counter()
    faults = [PartialFault(r.param, r.element, r.element_bit, r.uses, r.full, batch) for r in sites]
    fast = inj.evaluate(faults)
    t_fast = time.perf_counter() - t
    golden = np.asarray(ctx.fast.golden_output)
    agree = ambiguous = skipped = mismatch = 0
    t = time.perf_counter()
    for r, pf, f in zip(sites, faults, fast):
        new, old = inj.delta(pf)
        try:
            nv = naive_outputs(rv, ctx.program, inj.gold.tensors, r.site, new, old,
                               (rv.param_names.index(r.param), r.element))
        except NaiveUnsupported:
            skipped += 1
            continue
        g, b = (golden, golden) if nv is None else nv
        rf = oc.compare(golden, f.output, batch, probability=ctx.fast.probability_output)
        rn = oc.compare(g, b, batch, probability=ctx.fast.probability_output)
        of, on = ctx.criterion.outcomes(rf), ctx.criterion.outcomes(rn)
        if np.array_equal(of, on):
            agree += 1
        elif (ctx.criterion.ambiguous(rf) | ctx.criterion.ambiguous(rn))[of != on].all():
            ambiguous += 1
        else:
            mismatch += 1
    t_naive = time.perf_counter() - t
    checked = max(1, len(sites) - skipped)
    return {"naive_sites": len(sites), "naive_agree": agree, "naive_ambiguous": ambiguous,
            "naive_mismatch": mismatch, "naive_skipped": skipped,
            "naive_speedup": (t_naive / checked) / max(t_fast / max(1, len(sites)), 1e-9)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--zoo", default=str(ROOT / "build" / "zoo"))
    ap.add_argument("--models", default="lenet5,dlrm_small")
    ap.add_argument("--presets", default="tpu_v1,hbm_datacenter")
    ap.add_argument("--structures", default=",".join(STRUCTURES))
    ap.add_argument("--sites", type=int, default=500)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--naive", type=int, default=0, help="live sites per structure checked against the naive replay")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from threadpoolctl import threadpool_limits

    from accelsim.config import load_config
    from faults.avf.context import AvfContext
    from faults.avf.direct import draw_site, run_direct
    from frontend import load_onnx

    threadpool_limits(1)
    print(f"# load average {os.getloadavg()}", flush=True)
    table = []
    for name in args.models.split(","):
        folder = _model_dir(name, Path(args.zoo))
        program = load_onnx(str(folder / "model.onnx"))
        with np.load(folder / "eval_inputs.npz") as data:
            inputs = {k: data[k][: args.batch] for k in data.files}
        for preset in args.presets.split(","):
            t = time.perf_counter()
            ctx = AvfContext(program, inputs, load_config(preset, ["precision.weight_bytes=4"]), "fp32")
            setup = time.perf_counter() - t
            for s in args.structures.split(","):
                if ctx.resolver.capacity_bits(s) == 0 or not len(ctx.schedule.residency.select(s)):
                    continue
                t = time.perf_counter()
                for i in range(args.sites):
                    ctx.resolver.resolve(draw_site(ctx, s, args.seed + 1, i)[0])
                resolve_rate = args.sites / (time.perf_counter() - t)
                t = time.perf_counter()
                rows = run_direct(ctx, s, args.sites, args.seed)
                dt = time.perf_counter() - t
                row = {"model": name, "preset": preset, "structure": s, "setup_s": round(setup, 2),
                       "sites_per_s": args.sites / dt, "resolve_per_s": resolve_rate,
                       "unrun_share": sum(r["unrun"] for r in rows) / len(rows),
                       "sdc": sum(r["n_sdc"] for r in rows)}
                if args.naive:
                    row.update(_naive_check(ctx, s, args.naive, args.seed))
                print(json.dumps(row), flush=True)
                table.append(row)
    naive = " naive agree/amb/mismatch/skip | naive÷fast s/site |" if args.naive else ""
    print(f"\n| model | preset | structure | sites/s | resolve/s | masked w/o run |{naive}")
    print("|---|---|---|---|---|---|" + ("---|---|" if args.naive else ""))
    for r in table:
        extra = (f" {r['naive_agree']}/{r['naive_ambiguous']}/{r['naive_mismatch']}/{r['naive_skipped']} |"
                 f" {r['naive_speedup']:.0f}× |") if args.naive else ""
        print(f"| {r['model']} | {r['preset']} | {r['structure']} | {r['sites_per_s']:.0f} | "
              f"{r['resolve_per_s']:.0f} | {r['unrun_share']:.3f} |{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
