"""``accelsim report DIR``: tables (CSV, markdown) and PNG plots of a PVF campaign."""
from __future__ import annotations

import argparse
from pathlib import Path

NAME = "report"
HELP = "write PVF tables (CSV, markdown) and plots (PNG) for a campaign directory"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", help="campaign directory (trials.sqlite) or AVF study directory (avf_summary.json)")
    parser.add_argument("--criterion", default=None,
                        help="re-apply another criterion to the stored raw deviations (e.g. 'ctr>0.1')")
    parser.add_argument("--confidence", type=float, default=None, help="interval confidence (default: campaign's)")
    parser.add_argument("--interval", default=None, choices=("wilson", "clopper-pearson"))
    parser.add_argument("--to", default=None, help="report folder (default DIR/report)")
    parser.add_argument("--no-plots", action="store_true")


def main(args: argparse.Namespace) -> int:
    """PVF campaign folders (trials.sqlite) and AVF study folders (avf_summary.json)."""
    from faults.avf_report import write_avf_report
    from faults.report import write_report

    folder = Path(args.dir)
    has_pvf = (folder / "trials.sqlite").is_file()
    has_avf = (folder / "avf_summary.json").is_file()
    if not (has_pvf or has_avf):
        raise FileNotFoundError(
            f"{args.dir}: neither a PVF campaign (trials.sqlite) nor an AVF study (avf_summary.json)"
        )
    if has_pvf:
        written = write_report(args.dir, criterion=args.criterion, confidence=args.confidence,
                               method=args.interval, report_dir=args.to, plots=not args.no_plots)
        print(Path(written["markdown"]).read_text())
        for key, path in written["tables"].items():
            print(f"table {key}: {path}")
        for path in written["plots"]:
            print(f"plot: {path}")
    if has_avf:
        written = write_avf_report(folder, report_dir=args.to, plots=not args.no_plots)
        print(Path(written["markdown"]).read_text())
        for path in written["plots"]:
            print(f"plot: {path}")
    return 0
