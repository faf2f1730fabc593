"""Report of an AVF study folder (written by :func:`faults.study.run_study`).

``write_avf_report(dir)`` writes into ``dir/report`` (or ``report_dir``):

* ``avf.md``                 AVF by structure (direct vs joined, intervals, live/ACE share, sites
  masked without running), the gap explanation per structure, and the FIT table;
* ``avf_by_structure.png``   direct and joined AVF per structure with interval bars (log scale);
* ``pvf_vs_avf.png``         per layer: PVF (x) vs the SDC rate of live sites that hit the layer
  in each structure (y) — the conditional AVF; points below the diagonal are layers whose flips
  mostly land after some reads (partial corruption);
* ``residency_timelines.png`` live (ACE) and dead parameter bits over the inference per structure;
* ``fit.png``                SDC / DUE FIT per structure.

Usable from ``accelsim report DIR`` when ``DIR`` holds ``avf_summary.json`` (see the hook note
in the module docstring of :mod:`faults.app.avf_cmd`), or ``python -m faults.avf_report DIR``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from faults.avf_store import AvfStore


def _g(x: float) -> str:
    return "nan" if x is None or x != x else f"{x:.3g}"


def markdown(summary: dict, layer_rows: list[dict]) -> str:
    conf = summary.get("confidence", 0.95)
    cfg = summary["config"]
    lines = [f"# AVF of {cfg.get('program', '?')} on {cfg['hardware'].get('name', '?')} "
             f"({cfg['dtype']}, criterion {cfg['criterion']}, {summary['total_cycles']} cycles)", "",
             f"Intervals: {int(conf * 100)}% {summary.get('method', 'wilson')}. Direct = (bit, cycle) sites drawn "
             + ("uniformly over the occupied bit-cycles (SRAM, PE; rates scaled by the exact occupied share; "
                "HBM uniform over the parameter region)" if cfg.get("mode") == "occupied" else
                "uniformly over bits × cycles (HBM: the parameter region)")
             + ", resolved through the residency table and run through the network; joined = Σ ACE·PVF / "
             "(bits·T) with PVF interval bounds. Rates are per input sample.", "",
             "| structure | bits | sites | masked w/o run | live share | ACE share | direct AVF [lo, hi] "
             "| joined AVF [lo, hi] | direct DUE |", "|---|---|---|---|---|---|---|---|---|"]
    for s, e in summary["structures"].items():
        d, j = e["direct"], e.get("joined", {})
        joined = f"{_g(j.get('avf_sdc'))} [{_g(j.get('sdc_lo'))}, {_g(j.get('sdc_hi'))}]" if j else "—"
        lines.append(f"| {s} | {e['bits']} | {d['trials']} | {d['unrun']} | {_g(d['live_fraction'])} | "
                     f"{_g(d['ace_fraction'])} | {_g(d['avf_sdc'])} [{_g(d['sdc_lo'])}, {_g(d['sdc_hi'])}] | "
                     f"{joined} | {_g(d['avf_due'])} |")
    lines += ["", "## Where direct and joined differ", ""]
    lines += [f"- {e['explanation']}" for e in summary["structures"].values() if "explanation" in e]
    lines += ["", "## FIT (raw FIT/Mbit are assumptions unless overridden; see faults/fit.py)", "",
              "| structure | Mbit | FIT/Mbit | raw FIT | SDC FIT [lo, hi] | DUE FIT [lo, hi] | rate source |",
              "|---|---|---|---|---|---|---|"]
    for f in summary["fit"]:
        lines.append(f"| {f['structure']} | {f['bits'] / 2**20:.4g} | {_g(f['fit_per_mbit'])} | {_g(f['raw_fit'])} | "
                     f"{_g(f['sdc_fit'])} [{_g(f['sdc_fit_lo'])}, {_g(f['sdc_fit_hi'])}] | {_g(f['due_fit'])} "
                     f"[{_g(f['due_fit_lo'])}, {_g(f['due_fit_hi'])}] | {f['source']} |")
    if layer_rows:
        lines += ["", "## Live sites by layer (direct)", "", "| structure | layer | live sites | partial | SDC rate | PVF |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {r['structure']} | {r['layer']} | {r['live']} | {r['partial']} | {_g(r['rate'])} | {_g(r['pvf'])} |"
                  for r in layer_rows]
    return "\n".join(lines) + "\n"


def layer_table(out_dir: Path, summary: dict) -> list[dict]:
    """Per (structure, layer): live direct sites, partial ones, their SDC rate, and the layer PVF."""
    pvf: dict[tuple[str, str], list[float]] = {}
    terms = out_dir / "joined_terms.csv"
    if terms.is_file():
        import csv

        for r in csv.DictReader(terms.open()):
            w = float(r["ace_bit_cycles"])
            acc = pvf.setdefault((r["structure"], r["layer"]), [0.0, 0.0])
            acc[0] += w * float(r["pvf"])
            acc[1] += w
    with AvfStore(out_dir) as store:
        rows = [r for r in store.rows() if r["status"] == "live"]
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["structure"], r["layer"]), []).append(r)
    out = []
    for (s, layer), rs in sorted(groups.items()):
        n = sum(r["n_inputs"] for r in rs)
        p = pvf.get((s, layer))
        out.append({"structure": s, "layer": layer, "live": len(rs), "partial": sum(not r["full"] for r in rs),
                    "rate": sum(r["n_sdc"] for r in rs) / n if n else float("nan"),
                    "pvf": p[0] / p[1] if p and p[1] else float("nan")})
    return out


def write_avf_report(out_dir: str | Path, report_dir: str | Path | None = None, plots: bool = True) -> dict:
    """Write the markdown and PNGs; returns {"markdown": path, "plots": [paths]}."""
    out = Path(out_dir)
    path = out / "avf_summary.json"
    if not path.is_file():
        raise FileNotFoundError(f"{out_dir}: no AVF study (avf_summary.json) there")
    summary = json.loads(path.read_text())
    rep = Path(report_dir) if report_dir else out / "report"
    rep.mkdir(parents=True, exist_ok=True)
    layers = layer_table(out, summary)
    md = rep / "avf.md"
    md.write_text(markdown(summary, layers))
    written = []
    if plots:
        written = _plots(out, rep, summary, layers)
    return {"markdown": str(md), "plots": [str(p) for p in written]}


def _plots(out: Path, rep: Path, summary: dict, layers: list[dict]) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    names = list(summary["structures"])
    fig, ax = plt.subplots(figsize=(6, 3.5))
    pos = [v[k] for e in summary["structures"].values() for v in (e.get("direct"), e.get("joined")) if v
           for k in ("avf_sdc", "sdc_hi") if v[k] > 0]
    floor = min(pos) / 10 if pos else 1e-9  # zero estimates drawn at the floor of the log axis
    for off, kind in ((-0.15, "direct"), (0.15, "joined")):
        vals = [summary["structures"][s].get(kind) for s in names]
        x = [i + off for i, v in enumerate(vals) if v]
        y = np.maximum(np.array([[v["avf_sdc"], v["sdc_lo"], v["sdc_hi"]] for v in vals if v]).reshape(-1, 3), floor)
        if len(x):
            ax.errorbar(x, y[:, 0], yerr=[y[:, 0] - y[:, 1], y[:, 2] - y[:, 0]], fmt="o", capsize=3, label=kind)
    ax.set_xticks(range(len(names)), names)
    ax.set_yscale("log")
    ax.set_ylabel("SDC AVF")
    ax.legend()
    ax.set_title("AVF by structure")
    fig.tight_layout()
    paths.append(rep / "avf_by_structure.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 5))
    top = 0.0
    for s in names:
        pts = [(r["pvf"], r["rate"]) for r in layers if r["structure"] == s and r["pvf"] == r["pvf"]]
        if pts:
            ax.scatter(*zip(*pts), label=s, alpha=0.7)
            top = max(top, max(max(p) for p in pts))
    top = top * 1.15 or 1.0
    ax.plot([0, top], [0, top], "k:", lw=1)
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("PVF of the layer")
    ax.set_ylabel("SDC rate of live sites hitting the layer")
    ax.set_title("PVF vs AVF (per layer)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    fig.tight_layout()
    paths.append(rep / "pvf_vs_avf.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    occ_path = out / "occupancy.npz"
    if occ_path.is_file():
        with np.load(occ_path) as occ:
            fig, axes = plt.subplots(len(names), 1, figsize=(7, 1.8 * len(names)), squeeze=False)
            for ax, s in zip(axes[:, 0], names):
                if f"{s}.cycles" in occ:
                    cyc = occ[f"{s}.cycles"]
                    ax.stackplot(cyc, occ[f"{s}.live"], occ[f"{s}.dead"], labels=["live (ACE)", "dead"])
                    ax.axhline(summary["structures"][s]["bits"], color="k", lw=0.6, ls=":")
                ax.set_ylabel(f"{s}\nbits", fontsize=8)
            axes[0, 0].legend(fontsize=7, loc="upper right")
            axes[-1, 0].set_xlabel("cycle")
            fig.tight_layout()
            paths.append(rep / "residency_timelines.png")
            fig.savefig(paths[-1], dpi=110)
            plt.close(fig)

    fits = [f for f in summary["fit"] if f["structure"] != "total"]
    if fits:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        x = np.arange(len(fits))
        fpos = [f[k] for f in fits for k in ("sdc_fit", "due_fit", "sdc_fit_hi") if f[k] > 0]
        ffloor = min(fpos) / 10 if fpos else 1e-9
        sdc = np.array([[f["sdc_fit"], f["sdc_fit_lo"], f["sdc_fit_hi"]] for f in fits])
        due = np.array([[f["due_fit"], f["due_fit_lo"], f["due_fit_hi"]] for f in fits])
        for off, arr, label in ((-0.2, sdc, "SDC FIT"), (0.2, due, "DUE FIT")):
            v = np.maximum(arr, ffloor)
            ax.bar(x + off, v[:, 0], 0.4, label=label, yerr=[v[:, 0] - v[:, 1], v[:, 2] - v[:, 0]], capsize=3,
                   bottom=0)
        ax.set_xticks(x, [f["structure"] for f in fits])
        ax.set_yscale("log")
        ax.legend()
        ax.set_title("FIT per structure (bars: estimate, whiskers: interval)")
        fig.tight_layout()
        paths.append(rep / "fit.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    return paths


if __name__ == "__main__":  # python -m faults.avf_report DIR
    result = write_avf_report(sys.argv[1])
    print(Path(result["markdown"]).read_text())
