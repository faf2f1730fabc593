"""``accelsim pvf MODEL.onnx --fault sbf --by component,bit --trials N --seed S --out DIR``.

Runs (or resumes) a parameter-level PVF campaign and writes its report to ``DIR/report``.
"""
from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np

from accelsim import storage
from faults.app.common import CommandError, default_inputs_for, load_program, read_inputs
from faults.campaign import BACKENDS, CampaignConfig, run_campaign

NAME = "pvf"
HELP = "parameter vulnerability factor campaign: inject faults in stored parameters, count SDC/DUE"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="ONNX file (zoo/bundled models bring eval_inputs.npz in their folder)")
    parser.add_argument("--out", required=True, help="campaign directory (re-running the command resumes it)")
    parser.add_argument("--fault", default="sbf",
                        help="sbf | mbf:ber=1e-6 | burst:len=2,word=64 | stuck0 | stuck1 | random; "
                             "optional bits=23-30 (default: sbf)")
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
                        help="Leveugle et al. sample size per stratum for this error margin")
    parser.add_argument("--half-width", type=float, default=None,
                        help="adaptive: stop a stratum once its interval half-width is at most this")
    parser.add_argument("--round", type=int, default=100, dest="round_trials",
                        help="adaptive round size per stratum (default 100)")
    parser.add_argument("--inputs", default=None, help=".npz of inputs keyed by graph input name")
    parser.add_argument("--max-inputs", type=int, default=None, help="use only the first K inputs")
    parser.add_argument("--inputs-per-fault", type=int, default=1,
                        help="inputs evaluated under each fault (0 = all; intervals treat the fault as the unit)")
    parser.add_argument("--output", default=None, help="graph output judged by the criterion (default: first)")
    parser.add_argument("--chunk", type=int, default=64, help="trials per chunk (part of the campaign definition)")
    parser.add_argument("--workers", type=int, default=None, help="local worker processes (default: all cores)")
    parser.add_argument("--backend", default="local", choices=BACKENDS)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--no-report", action="store_true", help="do not write the report at the end")


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def resolve_inputs(model: str, inputs: str | None, max_inputs: int | None) -> dict[str, np.ndarray]:
    path = Path(inputs) if inputs else default_inputs_for(model)
    if path is None:
        raise CommandError(f"{model}: no --inputs given and no eval_inputs.npz beside the model")
    arrays = read_inputs(path)
    if max_inputs is not None:
        if max_inputs < 1:
            raise CommandError(f"--max-inputs must be >= 1, got {max_inputs}")
        arrays = {k: v[:max_inputs] for k, v in arrays.items()}
    return arrays


def config_from_args(args: argparse.Namespace) -> CampaignConfig:
    dtypes = tuple(d.strip() for d in args.dtype.split(",") if d.strip())
    trials = args.trials
    if trials is None:
        trials = 0 if args.margin is not None else (10_000 if args.half_width is not None else 1000)
    return CampaignConfig(
        fault=args.fault, dtypes=dtypes, target=tuple(args.target or ()),
        by=tuple(k.strip() for k in args.by.split(",") if k.strip()), trials=trials, seed=args.seed,
        criterion=args.criterion, confidence=args.confidence, method=args.interval, margin=args.margin,
        half_width=args.half_width, round_trials=args.round_trials, inputs_per_trial=args.inputs_per_fault,
        chunk_size=args.chunk, weighting=args.weighting, output=args.output,
    )


def main(args: argparse.Namespace) -> int:
    config = config_from_args(args)  # validate before loading anything
    model_path = Path(args.model)
    program = load_program(args.model)
    inputs = resolve_inputs(args.model, args.inputs, args.max_inputs)
    model_id = f"{model_path.name}:{file_digest(model_path)}" if model_path.is_file() else None
    parent = model_path.resolve().parent.name
    summary = run_campaign(
        program, inputs, config, args.out, workers=args.workers, backend=args.backend,
        progress=not args.no_progress, model_id=model_id,
        model_name=f"{parent}/{model_path.name}" if parent else model_path.name,
    )
    n = summary.trials
    print(f"{n} faults in {summary.cells} strata ({summary.new_trials} new, "
          f"{summary.trials_per_second:.0f} trials/s); criterion {summary.criterion}")
    if n:
        print(f"SDC {summary.sdc} (PVF {summary.sdc / n:.4f}), DUE {summary.due} ({summary.due / n:.4f})")
    if not args.no_report and n:
        from faults.report import write_report

        written = write_report(args.out)
        print(f"report: {written['markdown']}")
    print(f"store: {Path(args.out) / 'trials.sqlite'}", file=sys.stderr)
    return 0
