"""``accelsim protect MODEL --hw PRESET --scheme STRUCTURE=SCHEME ... [--upset MODEL] --trials N --out DIR``.

Three modes, each resumable (re-run the same command) and reported in ``DIR/report/protect.md``:

* a study — upsets on every ``--structure`` under the schemes of ``--scheme`` (repeatable) and/or
  ``--protection FILE.toml``: SDC, true- and false-DUE FIT per structure and in total with
  intervals, check-bit and cycle overheads (``DIR/protect_table.csv``);
* ``--sweep AREA=S1|S2|...`` — the study once per scheme of one area (``DIR/protect_sweep.csv``);
* ``--search`` — the placement search under ``--budget`` (``check_bits=5%``, ``cycles=2%``),
  objective SDC FIT + ``--due-weight`` × DUE FIT, over ``--candidates`` (defaults in
  ``faults/protect/candidates.py``) and protected-bank options, confirmed by ``--trials`` direct
  upsets per structure (``DIR/search_*.csv``, ``DIR/search_summary.json``).

A protected weight-SRAM bank (``--scheme weight_sram.bank=...``) holds the parameters chosen by
``--bank-policy`` (``component=GLOB``, ``layer=GLOB``, ``param=GLOB``, or ``vulnerable``) in
``--bank-fraction`` of the SRAM.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from accelsim import storage
from faults import api

from cli.common import CommandError, add_hw_arguments, add_study_arguments, positive

NAME = "protect"
HELP = "SDC/DUE FIT under parity, ECC and selective protection; scheme sweeps; placement search under a budget"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="ONNX file (or a bundled model name)")
    add_hw_arguments(parser)
    parser.add_argument("--scheme", action="append", default=[], metavar="AREA=CODE[,interleave=D][,policy=P]",
                        help="protection of one area, e.g. weight_sram=secded:64,interleave=4, hbm=symbol:16+3, "
                             "pe=parity:32, weight_sram=secded:64,bits=31-23 (repeatable); decode latency "
                             "latency=C cycles per read, 0 unless given")
    parser.add_argument("--protection", default=None, help="TOML file of schemes (--scheme entries override it)")
    parser.add_argument("--upset", default=None, help="single (default) or mcu:1=0.7,2=0.2,3=0.1")
    parser.add_argument("--structure", default="weight_sram,hbm,pe",
                        help="comma list of hbm, weight_sram, embedding_sram, pe")
    parser.add_argument("--trials", type=int, default=1000, help="upsets per structure (search: to confirm)")
    parser.add_argument("--trials-for", action="append", default=[], metavar="STRUCTURE=N",
                        help="upsets of one structure instead of --trials (e.g. more where few cells are live)")
    add_study_arguments(parser)
    parser.add_argument("--scrub-interval", type=int, default=1,
                        help="inferences between HBM scrubs (the analytic two-upset term)")
    parser.add_argument("--criterion", default=None, help="incorrect-output criterion (default: top1 / CTR)")
    parser.add_argument("--nonfinite", default="sdc", choices=("sdc", "due", "apart"))
    parser.add_argument("--fit", action="append", default=[], metavar="STRUCTURE=FIT_PER_MBIT",
                        help="raw FIT/Mbit (defaults in faults/avf/fit.py are assumptions)")
    parser.add_argument("--confidence", type=float, default=0.95)
    parser.add_argument("--interval", default="wilson", choices=("wilson", "clopper-pearson"))
    parser.add_argument("--bank-policy", default=None,
                        help="parameters in the protected bank: vulnerable, component=GLOB, layer=GLOB, param=GLOB")
    parser.add_argument("--bank-fraction", type=float, default=None, help="bank size as a fraction of the weight SRAM")
    parser.add_argument("--bank-coverage", type=float, default=1.0,
                        help="policy vulnerable: share of the predicted contribution placed in the bank")
    parser.add_argument("--sweep", default=None, metavar="AREA=S1|S2|...", help="one study per scheme of one area")
    parser.add_argument("--search", action="store_true", help="placement search under --budget, confirmed by injection")
    parser.add_argument("--budget", default=None, metavar="check_bits=P%[,cycles=P%]")
    parser.add_argument("--due-weight", type=float, default=0.0, help="objective SDC FIT + W x DUE FIT")
    parser.add_argument("--candidates", action="append", default=[], metavar="STRUCTURE=S1|S2|...",
                        help="candidate schemes of one structure (replace the defaults; repeatable)")
    parser.add_argument("--bank-fractions", default="0.125,0.25,0.4",
                        help="search: bank sizes as fractions of the weight SRAM ('' for no bank options)")
    parser.add_argument("--bank-scheme", default="secded:64,latency=1", help="search: the protected bank's scheme")
    parser.add_argument("--predict-trials", type=int, default=4000, help="search: predicted upsets per option")
    parser.add_argument("--predict-trials-for", action="append", default=[], metavar="STRUCTURE=N",
                        help="search: predicted upsets per option of one structure")
    parser.add_argument("--pvf", default=None, help="search: reuse the per-bit PVF campaign in this folder")
    parser.add_argument("--no-baseline", action="store_true",
                        help="search: do not confirm the unprotected chip by injection too")
    parser.add_argument("--pvf-trials", type=int, default=100, help="PVF trials per (component, bit)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (upsets and the PVF campaign)")
    parser.add_argument("--backend", default="local", choices=("local", "ray"),
                        help="where the upsets run: local processes or Ray (pip install ray)")
    parser.add_argument("--no-progress", action="store_true")


def _floats(text: str, option: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise CommandError(f"{option} {text!r}: a comma list of numbers") from None


def _trials_for(items: list[str], option: str) -> tuple[tuple[str, int], ...]:
    out = []
    for item in items:
        structure, eq, count = (s.strip() for s in item.partition("="))
        if not eq or not count.isdigit():
            raise CommandError(f"{option} {item!r}: use STRUCTURE=N")
        out.append((structure, int(count)))
    return tuple(out)


def _protection(args: argparse.Namespace):
    base = api.load_protection(args.protection) if args.protection else api.Protection()
    given = api.parse_protection(args.scheme, args.upset)
    protection = api.Protection(base.schemes, given.upset if args.upset or not args.protection else base.upset)
    for area, scheme in given.schemes:
        protection = protection.with_scheme(area, scheme)
    return protection


def _structures(args: argparse.Namespace) -> tuple[str, ...]:
    structures = tuple(s.strip() for s in args.structure.split(",") if s.strip())
    if not structures or any(s not in api.SITE_STRUCTURES for s in structures):
        raise CommandError(f"--structure {args.structure!r}: choose from {', '.join(api.SITE_STRUCTURES)}")
    return structures


def main(args: argparse.Namespace) -> int:
    positive("--batch", args.batch)
    positive("--workers", args.workers)
    if args.search and (args.scheme or args.protection or args.sweep):
        raise CommandError("--search chooses the schemes: give --candidates, not --scheme / --protection / --sweep")
    if (args.bank_policy is None) != (args.bank_fraction is None) and not args.search:
        raise CommandError("a protected bank needs both --bank-policy and --bank-fraction")
    api.check_output_dir(args.out, "--out")
    overrides = list(args.overrides)
    if args.dtype:
        overrides.append(f"precision.weight_bytes={storage.BITS_PER_ELEMENT[args.dtype] // 8}")
    api.hardware(args.hw, overrides)  # validate before any work
    structures = _structures(args)
    fit = tuple(api.parse_fit(args.fit).items())
    common = dict(overrides=overrides, dtype=args.dtype, criterion=args.criterion, nonfinite=args.nonfinite,
                  progress=not args.no_progress, workers=args.workers, backend=args.backend)
    if args.search:
        config = api.SearchConfig(
            structures=structures, upset=api.parse_upset_model(args.upset or "single"), trials=args.predict_trials,
            confirm_trials=args.trials, seed=args.seed, pvf_trials=args.pvf_trials,
            trials_for=_trials_for(args.predict_trials_for, "--predict-trials-for"),
            confirm_trials_for=_trials_for(args.trials_for, "--trials-for"),
            budget=api.Budget.parse(args.budget), due_weight=args.due_weight,
            candidates=tuple(api.parse_candidates(c) for c in args.candidates),
            bank_fractions=_floats(args.bank_fractions, "--bank-fractions"),
            bank_coverages=(args.bank_coverage,) if args.bank_policy and args.bank_policy != "vulnerable"
            else (0.5, 0.8, 0.95, 1.0), bank_policy=args.bank_policy or "vulnerable",
            bank_scheme=api.parse_bank_scheme(args.bank_scheme),
            scrub_interval=args.scrub_interval, confidence=args.confidence, fit_per_mbit=fit,
            confirm_baseline=not args.no_baseline)
        model = api.load_model(args.model)
        inputs = api.load_inputs(args.inputs or model, batch=args.batch)
        summary = api.protect_search(model, inputs, args.hw, config, args.out, pvf_dir=args.pvf, **common)
        _print_report(args.out)
        print(f"chosen protection ({args.out}/search_summary.json):\n{summary['protection_toml']}")
        return 0
    protection = _protection(args)
    study = api.ProtectConfig(structures=structures, trials=args.trials, seed=args.seed,
                              scrub_interval=args.scrub_interval, confidence=args.confidence, method=args.interval,
                              fit_per_mbit=fit, trials_for=_trials_for(args.trials_for, "--trials-for"))
    model = api.load_model(args.model)
    inputs = api.load_inputs(args.inputs or model, batch=args.batch)
    bank = None
    if args.bank_policy:
        bank = api.protected_bank(model, inputs, args.hw, args.bank_policy, args.bank_fraction, overrides=overrides,
                                  dtype=args.dtype, coverage=args.bank_coverage, pvf_dir=args.pvf or Path(args.out) / "pvf",
                                  pvf_trials=args.pvf_trials, seed=args.seed, workers=args.workers,
                                  progress=not args.no_progress)
    if args.sweep:
        area, schemes = api.parse_protect_sweep(args.sweep)
        api.protect_sweep(model, inputs, args.hw, protection, area, schemes, study, args.out, bank=bank, **common)
    else:
        api.protect_study(model, inputs, args.hw, protection, study, args.out, bank=bank, **common)
    _print_report(args.out)
    return 0


def _print_report(out: str) -> None:
    written = api.report(out)["protect"]
    print(Path(written["markdown"]).read_text())
    for path in written["plots"]:
        print(f"plot: {path}")
