"""Plots of protection studies (PNG, matplotlib with the Agg backend)."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _floor(values) -> float:
    positive = [float(v) for v in values if float(v) > 0]
    return min(positive) / 10 if positive else 1e-6  # zeros drawn at the floor of the log axis


def plot_fit(path: Path, rows: list[dict]) -> Path:
    """SDC and DUE FIT per structure with intervals (log axis)."""
    plt = _pyplot()
    names = [r["structure"] for r in rows]
    floor = _floor([r[k] for r in rows for k in ("sdc_fit", "sdc_fit_hi", "due_fit", "due_fit_hi")])
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for kind, off in (("sdc", -0.12), ("due", 0.12)):
        y = np.maximum(np.array([[r[f"{kind}_fit"], r[f"{kind}_fit_lo"], r[f"{kind}_fit_hi"]] for r in rows],
                                dtype=float), floor)
        ax.errorbar(np.arange(len(rows)) + off, y[:, 0], yerr=[y[:, 0] - y[:, 1], y[:, 2] - y[:, 0]], fmt="o",
                    capsize=3, label=f"{kind.upper()} FIT")
    ax.set_xticks(range(len(names)), names)
    ax.set_yscale("log")
    ax.set_ylabel("FIT (failures / 10⁹ h)")
    ax.legend()
    ax.set_title("FIT per structure under protection")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_sweep(path: Path, rows: list[dict]) -> Path:
    """SDC FIT of the swept structure against its check-bit overhead, one point per scheme."""
    plt = _pyplot()
    structure = rows[0]["area"].split(".")[0]
    mine = [r for r in rows if r["structure"] == structure]
    x = np.array([100 * float(r["check_bit_overhead"]) for r in mine])
    y = np.array([[float(r["sdc_fit"]), float(r["sdc_fit_lo"]), float(r["sdc_fit_hi"])] for r in mine])
    y = np.maximum(y, _floor(y.ravel()))
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.errorbar(x, y[:, 0], yerr=[y[:, 0] - y[:, 1], y[:, 2] - y[:, 0]], fmt="o", capsize=3)
    for xi, yi, r in zip(x, y[:, 0], mine):
        ax.annotate(r["swept_scheme"], (xi, yi), fontsize=7, xytext=(4, 4), textcoords="offset points")
    ax.set_yscale("log")
    ax.set_xlabel(f"check bits of {structure} (% of data bits)")
    ax.set_ylabel("SDC FIT")
    ax.set_title(f"{structure}: SDC FIT vs check-bit overhead")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_pareto(path: Path, combos: list[dict], summary: dict) -> Path:
    """Objective vs check-bit overhead of every combination; front, budget, chosen (predicted and
    measured)."""
    plt = _pyplot()
    x = np.array([100 * float(c["check_bit_overhead"]) for c in combos])
    y = np.array([float(c["objective"]) for c in combos])
    floor = _floor(y)
    y = np.maximum(y, floor)
    front = np.array([c["pareto"] == "True" for c in combos])
    feasible = np.array([c["feasible"] == "True" for c in combos])
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    ax.scatter(x[~feasible], y[~feasible], s=8, c="0.75", label="over budget")
    ax.scatter(x[feasible], y[feasible], s=8, c="tab:blue", alpha=0.5, label="within budget")
    order = np.argsort(x[front])
    ax.plot(x[front][order], y[front][order], "k-", lw=1, label="Pareto front")
    budget = summary["config"]["budget"]
    if "check_bits=" in budget:
        ax.axvline(float(budget.split("check_bits=")[1].split("%")[0]), color="tab:red", ls=":", label="budget")
    chosen = summary["chosen"]
    total = summary["comparison"][-1]
    cx = 100 * float(chosen["check_bit_overhead"])
    ax.scatter([cx], [max(float(chosen["objective"]), floor)], marker="*", s=160, c="tab:red", zorder=5,
               label="chosen (predicted)")
    if summary["config"]["due_weight"] == 0:
        m = np.maximum([total["measured_sdc_fit"], total["measured_sdc_fit_lo"], total["measured_sdc_fit_hi"]], floor)
        ax.errorbar([cx * 1.02 + 0.01], [m[0]], yerr=[[m[0] - m[1]], [m[2] - m[0]]], fmt="s", c="tab:green",
                    capsize=3, label="chosen (measured)")
    if summary["config"]["due_weight"] == 0 and summary.get("baseline_comparison"):
        b = summary["baseline_comparison"][-1]
        m = np.maximum([b["measured_sdc_fit"], b["measured_sdc_fit_lo"], b["measured_sdc_fit_hi"]], floor)
        ax.errorbar([0.01], [m[0]], yerr=[[m[0] - m[1]], [m[2] - m[0]]], fmt="D", c="tab:purple", capsize=3,
                    label="unprotected (measured)")
    ax.set_yscale("log")
    ax.set_xlabel("check bits (% of data bits)")
    ax.set_ylabel("SDC FIT" + (f" + {summary['config']['due_weight']:g}·DUE FIT" if summary["config"]["due_weight"] else ""))
    ax.set_title("Protection placements")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
