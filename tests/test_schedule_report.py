"""Reports: per-op table, CSV/JSON files and PNG plots of a schedule."""
from __future__ import annotations

import csv
import json

import numpy as np

from accelsim.config import load_config
from accelsim.schedule import ResidencyTable, simulate, write_report
from accelsim.schedule.report import OP_COLUMNS, format_table
from schedule_programs import dlrm_like, shapes_of


def test_write_report(tmp_path):
    prog, cache = dlrm_like()
    s = simulate(prog, shapes_of(cache), load_config("edge_npu"), index_values=cache)
    paths = write_report(s, tmp_path / "out")
    assert set(paths) == {"ops.csv", "summary.json", "residency.csv", "residency.npz", "folds.csv",
                          "ops_cycles.png", "occupancy.png"}
    with open(paths["ops.csv"]) as handle:
        rows = list(csv.DictReader(handle))
    assert [r["name"] for r in rows] == [w.name for w in s.works]
    assert set(OP_COLUMNS) <= set(rows[0])
    assert sum(int(r["cycles"]) for r in rows) == s.total_cycles
    summary = json.loads(paths["summary.json"].read_text())
    assert summary["total_cycles"] == s.total_cycles and summary["hardware"] == "edge_npu"
    assert summary["hardware_config"]["array"]["rows"] == 16
    assert set(summary["ace_bit_cycles"]) == set(prog.parameters)
    assert paths["residency.csv"].read_text().count("\n") == len(s.residency) + 1
    for name in ("ops_cycles.png", "occupancy.png"):
        assert paths[name].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    back = ResidencyTable.load_npz(paths["residency.npz"])
    assert back.parameter_names == s.residency.parameter_names and back.total_cycles == s.total_cycles
    assert all(np.array_equal(back[c], s.residency[c]) for c in s.residency.cols)
    assert back.capacity_bits == s.residency.capacity_bits and back.to_csv() == s.residency.to_csv()
    text = format_table(s)
    assert "bag0" in text and text.splitlines()[-1].startswith("total: ")


def test_summary_totals_are_consistent():
    prog, cache = dlrm_like()
    s = simulate(prog, shapes_of(cache), load_config("tpu_v1"), index_values=cache)
    summary = s.summary()
    assert summary["compute_cycles"] + summary["stall_cycles"] == s.total_cycles
    assert summary["traffic"]["hbm"]["read_bytes"] == int(s.ops["hbm_read_bytes"].sum())
    assert (s.ops["end_cycle"][-1]) == s.total_cycles
