"""``accelsim avf MODEL.onnx --hw PRESET --structure weight_sram,hbm,pe --trials N --out DIR``.

Direct AVF per structure (uniform (bit, cycle) sites resolved through the residency table and
run through the network), joined AVF (Σ ACE·PVF from a PVF campaign: ``--pvf DIR`` to reuse
one, else one is run in ``DIR/pvf`` with ``--pvf-trials`` per parameter), SDC/DUE FIT, and the
report (``DIR/report/avf.md`` + PNGs). ``--sweep KEY=V1,V2`` repeats the study for each value
of one hardware parameter and writes ``DIR/sweep.csv`` / ``sweep.png``. Re-running the same
command resumes (finished site trials are kept in ``DIR/avf.sqlite``).

The stored dtype follows the config's ``precision.weight_bytes`` (4 fp32, 2 fp16, 1 int8);
``--dtype`` sets both.

Report hook: ``accelsim report DIR`` can include this study by calling
``faults.avf_report.write_avf_report(DIR)`` when ``DIR/avf_summary.json`` exists.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from faults.app.common import CommandError, default_inputs_for, load_program, read_inputs
from faults.app.simulate_cmd import add_hw_arguments

NAME = "avf"
HELP = "AVF per memory structure (direct and joined with PVF), SDC/DUE FIT, sweeps over a hardware parameter"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="ONNX file")
    add_hw_arguments(parser)
    parser.add_argument("--structure", default="weight_sram,hbm,pe",
                        help="comma list of hbm, weight_sram, embedding_sram, pe")
    parser.add_argument("--trials", type=int, default=1000, help="direct sites per structure")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="output folder (resumable)")
    parser.add_argument("--dtype", default=None, choices=("fp32", "fp16", "bf16", "int8"),
                        help="stored weight format (default: from precision.weight_bytes)")
    parser.add_argument("--inputs", help=".npz of graph inputs (default: eval_inputs.npz beside the model)")
    parser.add_argument("--batch", type=int, default=32, help="first BATCH samples form the inference")
    parser.add_argument("--inputs-per-trial", type=int, default=1, help="samples evaluated per site (0 = all)")
    parser.add_argument("--criterion", default=None, help="incorrect-output criterion (default: top1 / CTR)")
    parser.add_argument("--pvf", default=None, help="reuse the PVF campaign in this folder (same dtype)")
    parser.add_argument("--pvf-trials", type=int, default=200, help="PVF trials per parameter when one is run")
    parser.add_argument("--pvf-by", default="param", choices=("param", "layer", "component", "group"),
                        help="PVF strata joined with residency (a parameter takes its stratum's PVF)")
    parser.add_argument("--no-joined", action="store_true", help="direct AVF only (no PVF campaign)")
    parser.add_argument("--fit", action="append", default=[], metavar="STRUCTURE=FIT_PER_MBIT",
                        help="raw FIT/Mbit (defaults in faults/fit.py are assumptions)")
    parser.add_argument("--sweep", default=None, metavar="KEY=V1,V2,...",
                        help="repeat the study for each value of one config key")
    parser.add_argument("--sampling", default="uniform", choices=("uniform", "occupied"),
                        help="uniform over bits x cycles, or over the occupied bit-cycles (SRAM/PE; "
                             "AVF scaled by the exact occupied share)")
    parser.add_argument("--confidence", type=float, default=0.95)
    parser.add_argument("--interval", default="wilson", choices=("wilson", "clopper-pearson"))
    parser.add_argument("--no-progress", action="store_true")


def _hw_overrides(args) -> list[str]:
    from faults.avf import BYTES_OF_DTYPE

    overrides = list(args.overrides)
    if args.dtype:
        overrides.append(f"precision.weight_bytes={BYTES_OF_DTYPE[args.dtype]}")
    return overrides


def _label(model: str) -> str:
    """``build/zoo/dlrm/model.onnx`` -> ``dlrm``; ``x.onnx`` -> ``x``."""
    path = Path(model)
    return path.parent.name if path.stem == "model" and path.parent.name else path.stem


def main(args: argparse.Namespace) -> int:
    from accelsim.config import load_config
    from faults.avf import AvfContext
    from faults.avf_report import write_avf_report
    from faults.fit import parse_fit
    from faults.sites import SITE_STRUCTURES
    from faults.study import run_study, study_pvf
    from faults.sweep import parse_sweep, run_sweep

    structures = [s.strip() for s in args.structure.split(",") if s.strip()]
    bad = [s for s in structures if s not in SITE_STRUCTURES]
    if bad or not structures:
        raise CommandError(f"--structure {args.structure!r}: choose from {', '.join(SITE_STRUCTURES)}")
    if args.trials < 1 or args.batch < 1:
        raise CommandError("--trials and --batch must be >= 1")
    fit = parse_fit(args.fit)
    overrides = _hw_overrides(args)
    hw = load_config(args.hw, overrides)  # validate before any work
    program = load_program(args.model)
    inputs_path = args.inputs or default_inputs_for(args.model)
    if inputs_path is None:
        raise CommandError(f"{args.model}: no --inputs given and no eval_inputs.npz beside the model")
    inputs = {k: v[: args.batch] for k, v in read_inputs(inputs_path).items()}
    progress = not args.no_progress
    out = Path(args.out)
    if args.sweep:
        key, values = parse_sweep(args.sweep)
        rows = run_sweep(program, inputs, args.hw, overrides, key, values, structures, args.trials, args.seed,
                         out, args.dtype, args.criterion, args.pvf_trials, args.pvf, not args.no_joined, fit,
                         args.inputs_per_trial, args.confidence, args.interval, progress, args.sampling,
                         args.pvf_by)
        for r in rows:
            print(f"{r['key']}={r['value']:>8} {r['structure']:>14}: direct AVF {r['direct_avf']:.3g} "
                  f"[{r['direct_lo']:.3g}, {r['direct_hi']:.3g}] joined {r['joined_avf']:.3g} "
                  f"SDC FIT {r['sdc_fit']:.3g}")
        for value in values:
            write_avf_report(out / f"{key}={value}")
        print(f"wrote {out / 'sweep.csv'} and {out / 'sweep.png'}")
        return 0
    ctx = AvfContext(program, inputs, hw, args.dtype, args.criterion)
    pvf = None if args.no_joined else study_pvf(ctx, out, args.pvf, 0 if args.pvf else args.pvf_trials,
                                                args.seed, by=args.pvf_by, progress=progress)
    run_study(ctx, out, structures, args.trials, args.seed, pvf, fit, args.inputs_per_trial,
              args.confidence, args.interval, progress=progress, mode=args.sampling,
              extra_config={"model": str(args.model), "program": _label(args.model)})
    written = write_avf_report(out)
    print(Path(written["markdown"]).read_text())
    for path in written["plots"]:
        print(f"plot: {path}")
    return 0
