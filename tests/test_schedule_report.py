"""Reports: per-op table, CSV/JSON files and PNG plots of a schedule."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from accelsim import executor
from accelsim.config import load_config
from accelsim.schedule import ResidencyTable, simulate, write_report
from accelsim.schedule.report import OP_COLUMNS, format_table, op_rows
from report_checks import assert_png
from schedule_programs import dlrm_like, gemm_add_c, shapes_of

BUNDLED = Path(__file__).resolve().parents[1] / "accelsim" / "bundled"
# LeNet-5's work items: every IR instruction but the free layout op (/Flatten), named after it
LENET_OPS = [("/conv1/Conv", "conv"), ("/Relu", "relu"), ("/MaxPool", "max_pool"),
             ("/conv2/Conv", "conv"), ("/Relu_1", "relu"), ("/MaxPool_1", "max_pool"),
             ("/fc1/Gemm", "gemm"), ("/Relu_2", "relu"), ("/fc2/Gemm", "gemm"), ("/Relu_3", "relu"),
             ("/fc3/Gemm", "gemm")]


def _read_ops_csv(path) -> list[dict]:
    with open(path) as handle:
        return list(csv.DictReader(handle))


def test_write_report(tmp_path):
    prog, cache = dlrm_like()
    s = simulate(prog, shapes_of(cache), load_config("edge_npu"), index_values=cache)
    paths = write_report(s, tmp_path / "out")
    assert set(paths) == {"ops.csv", "summary.json", "residency.csv", "residency.npz", "folds.csv",
                          "ops_cycles.png", "occupancy.png"}
    rows = _read_ops_csv(paths["ops.csv"])
    assert [(r["name"], r["op"]) for r in rows] == [
        ("bag0", "embedding_bag"), ("lookup1", "gather"), ("cat", "concat"), ("top", "matmul"),
        ("scale", "mul")]
    assert set(OP_COLUMNS) <= set(rows[0])
    assert sum(int(r["cycles"]) for r in rows) == s.total_cycles
    summary = json.loads(paths["summary.json"].read_text())
    assert summary["total_cycles"] == s.total_cycles and summary["hardware"] == "edge_npu"
    assert [op["name"] for op in summary["ops"]] == ["bag0", "lookup1", "cat", "top", "scale"]
    assert summary["hardware_config"]["array"]["rows"] == 16
    # edge_npu stores int8 weights with their fp32 scales: both have residency
    assert set(summary["ace_bit_cycles"]) == set(prog.parameters) | {f"{n}#scale" for n in prog.parameters}
    assert paths["residency.csv"].read_text().count("\n") == len(s.residency) + 1
    folds = paths["folds.csv"].read_text().splitlines()
    assert folds[0] == "step,g,m0,m1,k0,k1,n0,n1,start_cycle,op" and len(folds) == len(s.folds) + 1
    first = dict(zip(folds[0].split(","), map(int, folds[1].split(","))))
    assert first["op"] == 3 and first["start_cycle"] == int(s.folds.start[0])  # "top" is work 3
    for name in ("ops_cycles.png", "occupancy.png"):
        assert_png(paths[name])
    back = ResidencyTable.load_npz(paths["residency.npz"])
    assert back.parameter_names == s.residency.parameter_names and back.total_cycles == s.total_cycles
    assert all(np.array_equal(back[c], s.residency[c]) for c in s.residency.cols)
    assert back.capacity_bits == s.residency.capacity_bits and back.to_csv() == s.residency.to_csv()
    text = format_table(s).splitlines()
    # one line per op with the numbers of ops.csv, then the totals (cycles at 0.8 GHz)
    assert [line.split()[:5] for line in text[2:-1]] == \
        [[r["name"], r["op"], r["cycles"], r["compute_cycles"], r["stall_cycles"]] for r in rows]
    stalls = sum(int(r["stall_cycles"]) for r in rows)
    assert text[-1].startswith(f"total: {s.total_cycles} cycles ({s.total_cycles / 0.8e9 * 1e3:.3f} ms at 0.8 GHz), "
                               f"stalls {stalls}, ")


def test_lenet_ops_are_named_after_their_instructions(tmp_path):
    from frontend import load_onnx

    program = load_onnx(str(BUNDLED / "lenet5" / "model.onnx"))
    with np.load(BUNDLED / "lenet5" / "eval_inputs.npz") as data:
        inputs = {k: data[k][:2] for k in data.files}
    cache = executor.run(program, inputs, keep_intermediates=True).cache
    s = simulate(program, shapes_of(cache), load_config("edge_npu"), index_values=cache)
    rows = _read_ops_csv(write_report(s, tmp_path)["ops.csv"])
    assert [(r["name"], r["op"]) for r in rows] == LENET_OPS
    assert [r["name"] for r in rows] == [i.name for i in program.instructions if i.op != "flatten"]
    relu = rows[1]  # the first relu reads /conv1/Conv_output_0 but is named after its instruction
    assert relu["name"] == "/Relu" and int(relu["vector_elements"]) == cache["/Relu_output_0"].size
    assert int(relu["macs"]) == 0 and int(rows[0]["macs"]) > 0


def test_gemm_with_activation_c_adds_a_named_vector_op():
    prog, cache = gemm_add_c()
    s = simulate(prog, shapes_of(cache), load_config("edge_npu"))
    rows = op_rows(s)
    assert [(r["name"], r["op"]) for r in rows] == [("fc", "gemm"), ("fc.add_c", "gemm_add_c")]
    assert rows[1]["vector_elements"] == cache["y"].size and rows[1]["macs"] == 0


def test_summary_totals_are_consistent():
    prog, cache = dlrm_like()
    s = simulate(prog, shapes_of(cache), load_config("tpu_v1"), index_values=cache)
    summary = s.summary()
    assert summary["compute_cycles"] + summary["stall_cycles"] == s.total_cycles
    assert summary["traffic"]["hbm"]["read_bytes"] == int(s.ops["hbm_read_bytes"].sum())
    assert (s.ops["end_cycle"][-1]) == s.total_cycles
