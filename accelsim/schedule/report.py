"""Reports of a :class:`~accelsim.schedule.core.Schedule`: per-op table, CSV, JSON and PNG.

Per-op columns (``OP_COLUMNS``; cycles are accelerator clock cycles, traffic in bytes):

* ``compute_cycles`` — stall-free cycles on the array (folds × cycles per fold) or vector unit;
  ``compute_cycles_reported`` — the same in the chosen convention (scalesim: GEMMs − 1);
* ``stall_cycles`` — cycles the compute unit waited for HBM transfers (the last op also carries
  the final writeback); ``cycles`` = compute + stall; ``start_cycle`` / ``end_cycle``;
* ``utilization`` — MACs / (compute_cycles · rows · cols) for GEMMs, elements / (compute_cycles ·
  lanes) otherwise; ``overall_utilization`` uses ``cycles`` instead;
* ``hbm_read_bytes`` / ``hbm_write_bytes`` — transfers (burst-rounded);
* ``<sram>_write_bytes`` — bytes written into that SRAM (DMA fills; output SRAM: partial sums
  at accumulator precision); ``<sram>_read_bytes`` — bytes read out of it (by the array per
  fold, by the vector unit, or by writebacks).

Files written by :func:`write_report`: ``ops.csv``, ``summary.json`` (totals + per-op table),
``residency.csv`` and ``residency.npz`` (``ResidencyTable.load_npz`` reads it back),
``folds.csv``, ``ops_cycles.png`` (per-op compute vs stall cycles) and
``occupancy.png`` (live / dead parameter bits of each structure over time).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from accelsim.schedule.core import Schedule
from accelsim.schedule.residency import STRUCTURES

OP_COLUMNS = (
    "compute_cycles", "compute_cycles_reported", "stall_cycles", "cycles", "start_cycle",
    "end_cycle", "utilization", "overall_utilization", "groups", "m", "k", "n", "tile_m", "tile_k",
    "tile_n", "steps", "folds", "macs", "vector_elements", "hbm_read_bytes", "hbm_write_bytes",
    "weight_sram_read_bytes", "weight_sram_write_bytes", "input_sram_read_bytes",
    "input_sram_write_bytes", "output_sram_read_bytes", "output_sram_write_bytes",
    "embedding_sram_read_bytes", "embedding_sram_write_bytes",
)
OCCUPANCY_SAMPLES = 400
# ``Schedule.folds`` columns written to folds.csv (header: ..., start_cycle, op)
FOLDS_CSV_COLUMNS = ("step", "g", "m0", "m1", "k0", "k1", "n0", "n1", "start", "work")


def op_rows(schedule: Schedule) -> list[dict]:
    """The per-op table as a list of dicts (name, op, then ``OP_COLUMNS``)."""
    rows = []
    for i, work in enumerate(schedule.works):
        row = {"name": work.name, "op": work.op}
        for col in OP_COLUMNS:
            value = schedule.ops[col][i]
            row[col] = float(value) if isinstance(value, (float, np.floating)) else int(value)
        rows.append(row)
    return rows


def format_table(schedule: Schedule, limit: int | None = None) -> str:
    """Fixed-width text table: op, cycles, utilization, stalls, HBM traffic."""
    header = f"{'op':<32} {'kind':<14} {'cycles':>12} {'compute':>12} {'stall':>10} {'util':>6} {'hbm_rd_B':>12} {'hbm_wr_B':>12}"
    lines = [header, "-" * len(header)]
    for row in op_rows(schedule)[:limit]:
        lines.append(
            f"{row['name'][:32]:<32} {row['op'][:14]:<14} {row['cycles']:>12} "
            f"{row['compute_cycles']:>12} {row['stall_cycles']:>10} {row['utilization']:>6.2f} "
            f"{row['hbm_read_bytes']:>12} {row['hbm_write_bytes']:>12}"
        )
    s = schedule.summary()
    lines.append(f"total: {s['total_cycles']} cycles ({s['seconds'] * 1e3:.3f} ms at "
                 f"{schedule.hw.clock_ghz} GHz), stalls {s['stall_cycles']}, array utilization "
                 f"{s['array_utilization']:.3f}")
    return "\n".join(lines)


def write_report(schedule: Schedule, out_dir) -> dict[str, Path]:
    """Write the report files (module docstring) into ``out_dir``; returns name -> path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    rows = op_rows(schedule)
    lines = [",".join(("name", "op") + OP_COLUMNS)]
    for row in rows:
        lines.append(",".join(str(row[k]) for k in ("name", "op") + OP_COLUMNS))
    paths["ops.csv"] = out / "ops.csv"
    paths["ops.csv"].write_text("\n".join(lines) + "\n")
    paths["summary.json"] = out / "summary.json"
    summary = schedule.summary()
    summary["hardware_config"] = schedule.hw.to_dict()
    summary["ops"] = rows
    summary["ace_bit_cycles"] = schedule.residency.ace_by_parameter()
    paths["summary.json"].write_text(json.dumps(summary, indent=1))
    paths["residency.csv"] = out / "residency.csv"
    paths["residency.csv"].write_text(schedule.residency.to_csv())
    paths["residency.npz"] = out / "residency.npz"
    schedule.residency.save_npz(paths["residency.npz"])
    paths["folds.csv"] = out / "folds.csv"
    header = "step,g,m0,m1,k0,k1,n0,n1,start_cycle,op\n"
    body = "\n".join(",".join(map(str, r)) for r in schedule.folds.rows(FOLDS_CSV_COLUMNS))
    paths["folds.csv"].write_text(header + body + ("\n" if body else ""))
    paths.update(_plots(schedule, out))
    return paths


def _plots(schedule: Schedule, out: Path) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = {}
    ops = schedule.ops
    n = len(schedule.works)
    fig, ax = plt.subplots(figsize=(max(6.0, min(0.12 * n + 3, 30.0)), 4.0))
    x = np.arange(n)
    ax.bar(x, ops["compute_cycles"], label="compute", color="tab:blue")
    ax.bar(x, ops["stall_cycles"], bottom=ops["compute_cycles"], label="stall", color="tab:red")
    ax.set_xlabel("op (program order)")
    ax.set_ylabel("cycles")
    ax.set_title(f"per-op cycles on {schedule.hw.name} ({schedule.hw.array.dataflow})")
    if n <= 40:
        ax.set_xticks(x, [w.name[:16] for w in schedule.works], rotation=90, fontsize=6)
    ax.legend()
    fig.tight_layout()
    paths["ops_cycles.png"] = out / "ops_cycles.png"
    fig.savefig(paths["ops_cycles.png"], dpi=110)
    plt.close(fig)
    fig, axes = plt.subplots(len(STRUCTURES), 1, figsize=(8.0, 2.2 * len(STRUCTURES)), sharex=True)
    res = schedule.residency
    for ax, structure in zip(axes, STRUCTURES):
        cycles, live, dead = res.occupancy(structure, OCCUPANCY_SAMPLES)
        cap = res.capacity_bits[structure]
        ax.stackplot(cycles, live / cap, dead / cap, labels=("live (ACE)", "dead"),
                     colors=("tab:green", "tab:gray"))
        ax.set_ylabel(f"{structure}\nfraction")
        ax.set_ylim(0, max(1e-6, float(((live + dead) / cap).max()) * 1.1))
    axes[0].legend(loc="upper right", fontsize=7)
    axes[-1].set_xlabel("cycle")
    fig.suptitle("parameter bits resident per structure (fraction of capacity)")
    fig.tight_layout()
    paths["occupancy.png"] = out / "occupancy.png"
    fig.savefig(paths["occupancy.png"], dpi=110)
    plt.close(fig)
    return paths
