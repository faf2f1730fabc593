"""``accelsim report DIR``: tables (CSV, markdown) and PNG plots of a PVF campaign, an AVF study
or a sweep folder."""
from __future__ import annotations

import argparse
from pathlib import Path

from faults import api

NAME = "report"
HELP = "write tables (CSV, markdown) and plots (PNG) for a PVF campaign, AVF study or sweep folder"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", help="campaign folder (trials.sqlite), AVF study folder (avf_summary.json) "
                        "or sweep folder (sweep.csv)")
    parser.add_argument("--criterion", default=None,
                        help="re-apply another criterion to the stored raw deviations (e.g. 'ctr>0.1')")
    parser.add_argument("--nonfinite", default=None, choices=("sdc", "due", "apart"),
                        help="re-apply another policy for NaN/Inf outputs (default: the campaign's)")
    parser.add_argument("--confidence", type=float, default=None, help="interval confidence (default: campaign's)")
    parser.add_argument("--interval", default=None, choices=("wilson", "clopper-pearson"))
    parser.add_argument("--to", default=None, help="report folder (default DIR/report)")
    parser.add_argument("--no-plots", action="store_true")


def main(args: argparse.Namespace) -> int:
    if args.to is not None:
        api.check_output_dir(args.to, "--to")
    written = api.report(args.dir, criterion=args.criterion, confidence=args.confidence, method=args.interval,
                         report_dir=args.to, plots=not args.no_plots, nonfinite=args.nonfinite)
    if "pvf" in written:
        print(Path(written["pvf"]["markdown"]).read_text())
        for key, path in written["pvf"]["tables"].items():
            print(f"table {key}: {path}")
    if "avf" in written:
        print(Path(written["avf"]["markdown"]).read_text())
    if "sweep" in written:
        for path in written["sweep"]["studies"]:
            print(f"study report: {path}")
    for kind in written.values():
        for path in kind.get("plots", []):
            print(f"plot: {path}")
    return 0
