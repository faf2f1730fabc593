"""``accelsim pvf MODEL.onnx --fault sbf --by component,bit --trials N --seed S --out DIR``.

Runs (or resumes) a parameter-level PVF campaign and writes its report to ``DIR/report``.
``--precision 0.10`` runs until the population PVF is known to ±10% (relative, at
``--confidence``) with the fewest trials (:mod:`faults.pvf.precision`).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from accelsim import storage
from faults import api

from cli.common import positive

NAME = "pvf"
PRECISION_CHUNK = 256  # precision campaigns: chunks hold one stratum's faults, which travel stacked
HELP = "parameter vulnerability factor campaign: inject faults in stored parameters, count SDC/DUE"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="ONNX file or bundled model name (zoo/bundled models bring "
                        "eval_inputs.npz in their folder)")
    parser.add_argument("--out", required=True, help="campaign directory (re-running the command resumes it)")
    parser.add_argument("--fault", default="sbf",
                        help="sbf | kbit:k=2[,scope=word,word=64] | mbf:ber=1e-6[,scope=element] | "
                             "burst:len=2,word=64 | stuck0 | stuck1 | random; optional bits=23-30 (default: sbf; "
                             "mbf's BER is per stored bit of the whole tensor unless scope=element)")
    parser.add_argument("--by", default="", help="strata, comma separated: dtype,group,component,layer,param,role,bit")
    parser.add_argument("--trials", type=int, default=None,
                        help="faults per stratum (cap with --margin/--half-width; default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="campaign seed (a trial = seed + trial index)")
    parser.add_argument("--dtype", default="fp32",
                        help=f"storage format(s), comma separated: {', '.join(storage.FORMATS)}")
    parser.add_argument("--criterion", default=None,
                        help="top1 | ctr>T | click[@T] | dev>T | any, combined with | and &; "
                             "default top1 for classifiers, ctr>0.05|click for single-output models")
    parser.add_argument("--confidence", type=float, default=0.95, help="interval confidence (default 0.95)")
    parser.add_argument("--interval", default="wilson", choices=("wilson", "clopper-pearson"))
    parser.add_argument("--target", action="append", default=None,
                        help="key=glob[,key=glob] over param/layer/component/group/role; repeat for OR")
    parser.add_argument("--weighting", default="bits", choices=("bits", "uniform"),
                        help="parameter choice inside a stratum: by stored bits (default) or uniform")
    parser.add_argument("--margin", type=float, default=None,
                        help="Leveugle et al. sample size per stratum for this error margin (with replacement; "
                             "strata with fewer faults are enumerated, each fault once)")
    parser.add_argument("--half-width", type=float, default=None,
                        help="adaptive, two-stage: a pilot per stratum fixes its total for this interval "
                             "half-width (unbiased; capped by --trials)")
    parser.add_argument("--round", type=int, default=100, dest="round_trials",
                        help="adaptive: pilot trials per stratum (default 100)")
    parser.add_argument("--precision", type=float, default=None, metavar="R",
                        help="time to answer: run until the population (bits-weighted) PVF's interval has a "
                             "relative half-width of at most R (e.g. 0.10), with the fewest trials: strata = "
                             "the hot bit (fp32 30) per --by group (default layer) + one rest stratum, a pilot, "
                             "then optimal allocation rounds (--trials caps a stratum; default 10^6)")
    parser.add_argument("--pilot", type=int, default=30, dest="pilot_trials",
                        help="precision: pilot trials per stratum (default 30; fewer for strata with a tiny "
                             "share of the hot bits)")
    parser.add_argument("--nonfinite", default="sdc", choices=("sdc", "due", "apart"),
                        help="NaN/Inf outputs count as SDC (default: accelerators do not trap on them), "
                             "as DUE, or apart; reports show PVF both ways")
    parser.add_argument("--inputs", default=None, help=".npz of inputs keyed by graph input name")
    parser.add_argument("--max-inputs", type=int, default=None, help="use only the first K inputs")
    parser.add_argument("--inputs-per-fault", type=int, default=1,
                        help="inputs evaluated under each fault (0 = all; intervals treat the fault as the unit)")
    parser.add_argument("--output", default=None, help="graph output judged by the criterion (default: first)")
    parser.add_argument("--chunk", type=int, default=None,
                        help="trials per chunk (part of the campaign definition; default 64, 256 with --precision)")
    parser.add_argument("--workers", type=int, default=None, help="local worker processes (default: all cores)")
    parser.add_argument("--backend", default="local", choices=api.BACKENDS)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--golden-budget-gib", type=float, default=None,
                        help="golden activations kept per worker (default 1.5 GiB; the rest is recomputed "
                             "bit for bit: changes memory and speed, never a result)")
    parser.add_argument("--no-report", action="store_true", help="do not write the report at the end")


def config_from_args(args: argparse.Namespace) -> api.CampaignConfig:
    dtypes = tuple(d.strip() for d in args.dtype.split(",") if d.strip())
    trials = args.trials
    if trials is None:
        trials = 0 if args.margin is not None else (10_000 if args.half_width is not None else 1000)
        if args.precision is not None:
            trials = 10**6
    chunk = args.chunk if args.chunk is not None else (PRECISION_CHUNK if args.precision is not None else 64)
    return api.CampaignConfig(
        fault=args.fault, dtypes=dtypes, target=tuple(args.target or ()),
        by=tuple(k.strip() for k in args.by.split(",") if k.strip()), trials=trials, seed=args.seed,
        criterion=args.criterion, confidence=args.confidence, method=args.interval, margin=args.margin,
        half_width=args.half_width, round_trials=args.round_trials, inputs_per_trial=args.inputs_per_fault,
        chunk_size=chunk, weighting=args.weighting, output=args.output, nonfinite=args.nonfinite,
        precision=args.precision, pilot_trials=args.pilot_trials,
    )


def main(args: argparse.Namespace) -> int:
    config = config_from_args(args)  # validate before loading anything
    positive("--max-inputs", args.max_inputs)
    positive("--workers", args.workers)
    api.check_output_dir(args.out, "--out")
    model = api.load_model(args.model)
    inputs = api.load_inputs(args.inputs or model, max_inputs=args.max_inputs)
    results = api.pvf_campaign(model, inputs, config, args.out, workers=args.workers, backend=args.backend,
                               progress=not args.no_progress, golden_budget_gib=args.golden_budget_gib)
    run = results.last_run
    n = run.trials
    print(f"{n} faults in {run.cells} strata ({run.new_trials} new, "
          f"{run.trials_per_second:.0f} trials/s); criterion {run.criterion}")
    if n:
        print(f"SDC {run.sdc} (PVF {run.sdc / n:.4f}), DUE {run.due} ({run.due / n:.4f})")
    if n and config.precision is not None:
        est = results.population()
        rel = (est.hi - est.lo) / 2 / est.pvf if est.pvf > 0 else float("inf")
        print(f"population PVF {est.pvf:.4g} [{est.lo:.4g}, {est.hi:.4g}] (bits-weighted, "
              f"{100 * config.confidence:g}%): ±{100 * rel:.1f}% relative, target ±{100 * config.precision:g}%")
    if not args.no_report and n:
        written = api.report(args.out)["pvf"]
        print(f"report: {written['markdown']}")
    print(f"store: {Path(args.out) / 'trials.sqlite'}", file=sys.stderr)
    return 0
