"""``accelsim avf MODEL.onnx --hw PRESET --structure weight_sram,hbm,pe --trials N --out DIR``.

Direct AVF per structure (uniform (bit, cycle) sites resolved through the residency table and
run through the network), joined AVF (Σ ACE·PVF from a PVF campaign: ``--pvf DIR`` to reuse
one, else one is run in ``DIR/pvf`` with ``--pvf-trials`` per parameter), SDC/DUE FIT, and the
report (``DIR/report/avf.md`` + PNGs). ``--sweep KEY=V1,V2`` repeats the study for each value
of one hardware parameter and writes ``DIR/sweep.csv`` / ``sweep.png``. Re-running the same
command resumes (finished site trials are kept in ``DIR/avf.sqlite``).

The stored dtype follows the config's ``precision.weight_bytes`` (4 fp32, 2 fp16, 1 int8);
``--dtype`` sets both.

``accelsim report DIR`` rewrites the report of a study or sweep folder.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from accelsim import storage
from faults import api

from cli.common import CommandError, add_hw_arguments, add_study_arguments, positive

NAME = "avf"
HELP = "AVF per memory structure (direct and joined with PVF), SDC/DUE FIT, sweeps over a hardware parameter"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="ONNX file (or a bundled model name)")
    add_hw_arguments(parser)
    parser.add_argument("--structure", default="weight_sram,hbm,pe",
                        help="comma list of hbm, weight_sram, embedding_sram, pe")
    parser.add_argument("--trials", type=int, default=1000, help="direct sites per structure")
    add_study_arguments(parser)
    parser.add_argument("--inputs-per-trial", type=int, default=0,
                        help="samples evaluated per site (default 0 = the whole batch, needed for per-event AVF/FIT)")
    parser.add_argument("--scrub-interval", type=int, default=1,
                        help="inferences run back to back between HBM scrubs (default 1: one cold inference)")
    parser.add_argument("--criterion", default=None, help="incorrect-output criterion (default: top1 / CTR)")
    parser.add_argument("--nonfinite", default="sdc", choices=("sdc", "due", "apart"),
                        help="how a NaN/Inf output counts (default sdc: accelerators do not trap)")
    parser.add_argument("--pvf", default=None, help="reuse the PVF campaign in this folder (same dtype)")
    parser.add_argument("--pvf-trials", type=int, default=200, help="PVF trials per parameter when one is run")
    parser.add_argument("--pvf-by", default="param", choices=("param", "layer", "component", "group"),
                        help="PVF strata joined with residency (a parameter takes its stratum's PVF)")
    parser.add_argument("--no-joined", action="store_true", help="direct AVF only (no PVF campaign)")
    parser.add_argument("--fit", action="append", default=[], metavar="STRUCTURE=FIT_PER_MBIT",
                        help="raw FIT/Mbit (defaults in faults/avf/fit.py are assumptions)")
    parser.add_argument("--sweep", default=None, metavar="KEY=V1,V2,...",
                        help="repeat the study for each value of one config key (or study.scrub_interval)")
    parser.add_argument("--sampling", default="uniform", choices=("uniform", "occupied"),
                        help="uniform over bits x cycles, or over the occupied bit-cycles (SRAM/PE; "
                             "AVF scaled by the exact occupied share)")
    parser.add_argument("--confidence", type=float, default=0.95)
    parser.add_argument("--interval", default="wilson", choices=("wilson", "clopper-pearson"))
    parser.add_argument("--workers", type=int, default=1,
                        help="worker processes of the direct trials and of the joined estimate's PVF campaign "
                             "(the same results on any number)")
    parser.add_argument("--backend", default="local", choices=api.BACKENDS,
                        help="where the direct trials run: local worker processes or Ray (the ray extra)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (stderr: rate, ETA, running AVF)")


def study_config_from_args(args: argparse.Namespace) -> api.StudyConfig:
    """The study definition of the command line (validated)."""
    structures = tuple(s.strip() for s in args.structure.split(",") if s.strip())
    if not structures or any(s not in api.SITE_STRUCTURES for s in structures):
        raise CommandError(f"--structure {args.structure!r}: choose from {', '.join(api.SITE_STRUCTURES)}")
    join = api.JoinConfig(enabled=not args.no_joined, pvf_trials=args.pvf_trials, pvf_by=args.pvf_by,
                          pvf_dir=args.pvf)
    return api.StudyConfig(structures=structures, trials=args.trials, seed=args.seed,
                           inputs_per_trial=args.inputs_per_trial, scrub_interval=args.scrub_interval,
                           sampling=args.sampling,
                           confidence=args.confidence, method=args.interval,
                           fit_per_mbit=tuple(api.parse_fit(args.fit).items()), join=join)


def main(args: argparse.Namespace) -> int:
    config = study_config_from_args(args)
    positive("--batch", args.batch)
    positive("--workers", args.workers)
    api.check_output_dir(args.out, "--out")
    overrides = list(args.overrides)
    if args.dtype:
        overrides.append(f"precision.weight_bytes={storage.BITS_PER_ELEMENT[args.dtype] // 8}")
    api.hardware(args.hw, overrides)  # validate before any work
    model = api.load_model(args.model)
    inputs = api.load_inputs(args.inputs or model, batch=args.batch)
    progress = not args.no_progress
    out = Path(args.out)
    if args.sweep:
        sweep = api.SweepConfig.parse(args.sweep)
        rows = api.avf_sweep(model, inputs, args.hw, sweep, config, out, overrides=overrides, dtype=args.dtype,
                             criterion=args.criterion, nonfinite=args.nonfinite, progress=progress)
        for r in rows.to_dict("records"):
            print(f"{r['key']}={r['value']:>8} {r['structure']:>14}: direct AVF {r['direct_avf']:.3g} "
                  f"[{r['direct_lo']:.3g}, {r['direct_hi']:.3g}] joined {r['joined_avf']:.3g} "
                  f"SDC FIT {r['sdc_fit']:.3g}")
        api.report(out)
        print(f"wrote {out / 'sweep.csv'} and {out / 'sweep.png'}")
        return 0
    api.avf_study(model, inputs, args.hw, config, out, overrides=overrides, dtype=args.dtype,
                  criterion=args.criterion, nonfinite=args.nonfinite, workers=args.workers, progress=progress,
                  backend=args.backend)
    written = api.report(out)["avf"]
    print(Path(written["markdown"]).read_text())
    for path in written["plots"]:
        print(f"plot: {path}")
    return 0
