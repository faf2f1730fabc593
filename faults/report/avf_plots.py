"""Plots of an AVF study and of a sweep (PNG, matplotlib with the Agg backend)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from faults.avf.study import StudyResult


def avf_plots(out: Path, rep: Path, result: StudyResult, layers: list[dict]) -> list[Path]:
    """AVF by structure, PVF vs AVF per layer, residency timelines, FIT per structure (PNGs in ``rep``)."""
    summary = result.to_dict()
    rep.mkdir(parents=True, exist_ok=True)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    names = list(summary["structures"])
    fig, ax = plt.subplots(figsize=(6, 3.5))
    kinds = (("direct", -0.2), ("joined_rw", 0.0), ("joined", 0.2))
    pos = [v[k] for e in summary["structures"].values() for v in (e.get(kind) for kind, _ in kinds) if v
           for k in ("avf_sdc", "sdc_hi") if v[k] > 0]
    floor = min(pos) / 10 if pos else 1e-9  # zero estimates drawn at the floor of the log axis
    labels = {"direct": "direct", "joined_rw": "read-weighted join", "joined": "full-PVF join"}
    for kind, off in kinds:
        vals = [summary["structures"][s].get(kind) for s in names]
        x = [i + off for i, v in enumerate(vals) if v]
        y = np.maximum(np.array([[v["avf_sdc"], v["sdc_lo"], v["sdc_hi"]] for v in vals if v]).reshape(-1, 3), floor)
        if len(x):
            ax.errorbar(x, y[:, 0], yerr=[y[:, 0] - y[:, 1], y[:, 2] - y[:, 0]], fmt="o", capsize=3, label=labels[kind])
    ax.set_xticks(range(len(names)), names)
    ax.set_yscale("log")
    ax.set_ylabel("SDC AVF")
    ax.legend()
    ax.set_title("SDC AVF per sample by structure")
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


def plot_sweep(rows: Sequence[dict], path: Path) -> None:
    """SDC AVF (direct and joined) and SDC FIT per structure against the swept value (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not rows:
        return
    key = rows[0]["key"]
    values = list(dict.fromkeys(r["value"] for r in rows))
    structures = [s for s in dict.fromkeys(r["structure"] for r in rows) if s != "total"]
    x = np.arange(len(values))
    pos = [v for r in rows for v in (r["direct_avf"], r["direct_hi"], r["joined_avf"]) if v == v and v > 0]
    floor = min(pos) / 10 if pos else 1e-9  # zero estimates are drawn at this floor (log axis)
    fpos = [r["sdc_fit"] for r in rows if r["sdc_fit"] > 0]
    ffloor = min(fpos) / 10 if fpos else 1e-9
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    for s in structures:
        sel = [next(r for r in rows if r["value"] == v and r["structure"] == s) for v in values]
        y = np.array([r["direct_avf"] for r in sel])
        lo, hi = np.array([r["direct_lo"] for r in sel]), np.array([r["direct_hi"] for r in sel])
        yy = np.maximum(y, floor)
        line = a1.errorbar(x, yy, yerr=[np.maximum(yy - np.maximum(lo, floor), 0), np.maximum(hi - yy, 0)],
                           capsize=3, marker="o", label=f"{s} direct")
        for column, style, name in (("joined_rw_avf", "--", "read-weighted"), ("joined_avf", ":", "full-PVF")):
            jy = np.array([r.get(column, float("nan")) for r in sel])
            if np.isfinite(jy).any():
                a1.plot(x, np.maximum(jy, floor), ls=style, marker="x", color=line[0].get_color(),
                        label=f"{s} {name} join")
        a2.plot(x, [max(r["sdc_fit"], ffloor) for r in sel], marker="o", label=s)
    tot = [next(r for r in rows if r["value"] == v and r["structure"] == "total") for v in values]
    a2.plot(x, [max(r["sdc_fit"], ffloor) for r in tot], marker="s", color="k", label="total")
    a1.set_title("zero estimates drawn at the axis floor", fontsize=8)
    for ax, label in ((a1, "SDC AVF"), (a2, "SDC FIT")):
        ax.set_xticks(x, values)
        ax.set_xlabel(key)
        ax.set_ylabel(label)
        ax.set_yscale("log")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
