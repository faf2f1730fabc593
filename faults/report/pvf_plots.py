"""Plots of a PVF campaign: the bits-weighted PVF per group and per bit position, with its
interval bars (PNG)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from faults.pvf.results import GroupRow, group_table


def plot_groups(path: Path, rows: Sequence[GroupRow], title: str, xlabel: str, horizontal: bool) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [r.value for r in rows]
    pvf = np.array([r.pvf for r in rows])
    err = np.array([[max(0.0, r.pvf - r.lo) for r in rows], [max(0.0, r.hi - r.pvf) for r in rows]])
    size = (7.5, max(2.5, 0.3 * len(rows) + 1.2)) if horizontal else (max(6.0, 0.28 * len(rows) + 2), 4.0)
    fig, ax = plt.subplots(figsize=size)
    pos = np.arange(len(rows))
    if horizontal:
        ax.barh(pos, pvf, xerr=err, color="#4c72b0", ecolor="black", capsize=3)
        ax.set_yticks(pos, labels)
        ax.invert_yaxis()
        ax.set_xlabel("PVF (SDC probability, bits-weighted)")
        ax.set_ylabel(xlabel)
    else:
        ax.bar(pos, pvf, yerr=err, color="#4c72b0", ecolor="black", capsize=2)
        ax.set_xticks(pos, labels, rotation=90 if len(rows) > 12 else 0)
        ax.set_ylabel("PVF (SDC probability, bits-weighted)")
        ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x" if horizontal else "y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_bits(path: Path, trials: Sequence[dict[str, Any]], cells: Sequence[dict[str, Any]],
              config: Mapping[str, Any] | None, confidence: float, method: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    for dtype in sorted({t["dtype"] for t in trials}):
        sub = [t for t in trials if t["dtype"] == dtype and t["bit"] >= 0]
        rows = group_table(sub, [c for c in cells if c["dtype"] == dtype], "bit", confidence, method, config)
        if not rows:
            continue
        x = np.array([int(r.value) for r in rows])
        y = np.array([r.pvf for r in rows])
        err = np.array([[r.pvf - r.lo for r in rows], [r.hi - r.pvf for r in rows]])
        ax.errorbar(x, y, yerr=np.maximum(err, 0), marker="o", ms=3, capsize=2, label=dtype)
    ax.set_xlabel("bit position (0 = LSB)")
    ax.set_ylabel("PVF (SDC probability)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
