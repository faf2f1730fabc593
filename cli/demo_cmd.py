"""``accelsim demo [--out DIR]``: a small PVF study on the bundled models, with its report.

Two campaigns (single bit flips in fp32 stored parameters, one input per fault):

* LeNet-5 — strata layer x bit position (top-1 change is the criterion);
* dlrm_small — strata group (embedding tables vs bottom MLP vs top MLP) and, separately,
  by data type (fp32, fp16, bf16, int8) for the whole model.

Each writes ``DIR/<name>/report`` (CSV, markdown, PNG); ``DIR/demo.md`` gathers the tables.
Sized to finish in under two minutes on two cores; re-running resumes.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from faults import api

from cli.common import CommandError, positive

NAME = "demo"
HELP = "run a small PVF study on the bundled LeNet-5 and DLRM models and write its report"



def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="demo_out", help="output folder (default ./demo_out)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every trial count (default 1)")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")


STUDIES = (
    # (folder, campaign name, config overrides)
    ("lenet5", "lenet5_layer_bit", dict(fault="sbf", by=("layer", "bit"), trials=40)),
    ("dlrm_small", "dlrm_small_group", dict(fault="sbf", by=("group",), trials=2000)),
    ("dlrm_small", "dlrm_small_dtype", dict(fault="sbf", by=("dtype",), dtypes=("fp32", "fp16", "bf16", "int8"),
                                            trials=1000)),
)


def main(args: argparse.Namespace) -> int:
    if not 0 < args.scale <= 1000:  # also NaN and inf
        raise CommandError(f"--scale must be in (0, 1000], got {args.scale}")
    positive("--workers", args.workers)
    out = api.check_output_dir(args.out, "--out")
    start = time.perf_counter()
    sections = ["# accelsim demo: parameter vulnerability (PVF) of the bundled models", ""]
    loaded: dict[str, tuple] = {}
    for folder, name, overrides in STUDIES:
        if folder not in loaded:
            model = api.load_model(folder)
            loaded[folder] = (model, api.load_inputs(model))
        model, inputs = loaded[folder]
        overrides = dict(overrides)
        overrides["trials"] = max(1, int(round(overrides["trials"] * args.scale)))
        config = api.CampaignConfig(seed=args.seed, **overrides)
        t0 = time.perf_counter()
        results = api.pvf_campaign(model, inputs, config, out / name, workers=args.workers,
                                   progress=not args.no_progress)
        summary = results.last_run
        written = api.report(out / name)["pvf"]
        dt = time.perf_counter() - t0
        print(f"{name}: {summary.trials} faults, SDC {summary.sdc}, DUE {summary.due} "
              f"({dt:.1f} s) -> {written['markdown']}")
        md = Path(written["markdown"]).read_text().splitlines()
        sections += [f"## {name}", "", f"`{config.fault}` faults, strata {', '.join(config.by)}, "
                     f"criterion `{summary.criterion}`; report: `{Path(written['markdown']).relative_to(out)}`", ""]
        sections += [line for line in md[1:] if not line.startswith("# ")]
    (out / "demo.md").write_text("\n".join(sections) + "\n")
    print(f"demo finished in {time.perf_counter() - start:.0f} s; summary: {out / 'demo.md'}")
    return 0
