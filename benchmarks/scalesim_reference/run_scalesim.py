"""Run SCALE-Sim 3.0.0 on a list of layers and print its numbers as JSON (one object per run).

Runs inside SCALE-Sim's own venv (it needs numpy<2.4), never inside accelsim's:

    python -m venv /tmp/scalesim-venv
    /tmp/scalesim-venv/bin/pip install scalesim==3.0.0 "numpy<2.4"
    /tmp/scalesim-venv/bin/python benchmarks/scalesim_reference/run_scalesim.py \
        --layers benchmarks/scalesim_reference/layers.json --out /tmp/scalesim_out.json

``--layers`` is a JSON file: {"arrays": [[rows, cols], ...], "dataflows": ["os", "ws", "is"],
"layers": [{"name", "kind": "gemm", "m", "k", "n"} | {"name", "kind": "conv", "ifmap_h",
"ifmap_w", "filter_h", "filter_w", "channels", "filters", "stride"}]}. Every (array, dataflow,
layer) triple is one SCALE-Sim run in CALC bandwidth mode (stall-free), with SRAMs large enough
that nothing is re-fetched. Printed per run: SCALE-Sim's "Total Cycles" (compute cycles), its
stall cycles, SRAM ifmap/filter reads, ofmap writes, and the wall-clock seconds of the run.
This script only drives SCALE-Sim through its public ``scalesim.scale_sim.scalesim`` class.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import tempfile
import time

_CONFIG = """[general]
run_name = ref

[architecture_presets]
ArrayHeight:    {rows}
ArrayWidth:     {cols}
IfmapSramSzkB:    {sram_kb}
FilterSramSzkB:   {sram_kb}
OfmapSramSzkB:    {sram_kb}
IfmapOffset:    0
FilterOffset:   10000000
OfmapOffset:    20000000
Bandwidth : 10
Dataflow : {dataflow}
MemoryBanks:   1
ReadRequestBuffer: 32
WriteRequestBuffer: 32

[layout]
IfmapCustomLayout: False
IfmapSRAMBankBandwidth: 10
IfmapSRAMBankNum: 10
IfmapSRAMBankPort: 2
FilterCustomLayout: False
FilterSRAMBankBandwidth: 10
FilterSRAMBankNum: 10
FilterSRAMBankPort: 2

[sparsity]
SparsitySupport : false
SparseRep : ellpack_block
OptimizedMapping : false
BlockSize : 8
RandomNumberGeneratorSeed : 40

[run_presets]
InterfaceBandwidth: CALC
UseRamulatorTrace: False
"""


def _topology_row(layer: dict) -> tuple[str, bool]:
    if layer["kind"] == "gemm":
        return f"{layer['name']}, {layer['m']}, {layer['n']}, {layer['k']},\n", True
    return (
        f"{layer['name']}, {layer['ifmap_h']}, {layer['ifmap_w']}, {layer['filter_h']}, "
        f"{layer['filter_w']}, {layer['channels']}, {layer['filters']}, {layer['stride']},\n",
        False,
    )


def run_one(rows: int, cols: int, dataflow: str, layer: dict, workdir: str) -> dict:
    """One SCALE-Sim run of one layer; returns its report numbers."""
    from scalesim.scale_sim import scalesim

    tag = f"{layer['name']}_{rows}x{cols}_{dataflow}"
    run_dir = os.path.join(workdir, tag)
    os.makedirs(run_dir, exist_ok=True)
    config = os.path.join(run_dir, "scale.cfg")
    with open(config, "w") as handle:
        handle.write(_CONFIG.format(rows=rows, cols=cols, dataflow=dataflow, sram_kb=4096))
    row, gemm = _topology_row(layer)
    topology = os.path.join(run_dir, f"{tag}.csv")
    with open(topology, "w") as handle:
        if gemm:
            handle.write("Layer, M, N, K,\n")
        else:
            handle.write("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, "
                         "Channels, Num Filter, Strides,\n")
        handle.write(row)
    layout = os.path.join(run_dir, "layout.csv")
    with open(layout, "w") as handle:
        handle.write("Layer name,\n")
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        sim = scalesim(save_disk_space=True, verbose=False, config=config, topology=topology,
                       layout=layout, input_type_gemm=gemm)
        sim.run_scale(top_path=run_dir)
    seconds = time.perf_counter() - start
    report_dir = os.path.join(run_dir, "ref")
    with open(os.path.join(report_dir, "COMPUTE_REPORT.csv")) as handle:
        compute = [r.strip() for r in list(csv.reader(handle))[1]]
    with open(os.path.join(report_dir, "DETAILED_ACCESS_REPORT.csv")) as handle:
        detail = [r.strip() for r in list(csv.reader(handle))[1]]
    return {
        "layer": layer["name"], "rows": rows, "cols": cols, "dataflow": dataflow,
        "total_cycles_incl_prefetch": int(float(compute[1])),
        "compute_cycles": int(float(compute[2])),
        "stall_cycles": int(float(compute[3])),
        "compute_util_percent": float(compute[6]),
        "sram_ifmap_reads": int(float(detail[3])),
        "sram_filter_reads": int(float(detail[6])),
        "sram_ofmap_writes": int(float(detail[9])),
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", required=True, help="JSON file of arrays, dataflows, layers")
    parser.add_argument("--out", required=True, help="JSON file written with one row per run")
    args = parser.parse_args()
    with open(args.layers) as handle:
        spec = json.load(handle)
    results = []
    with tempfile.TemporaryDirectory(prefix="scalesim-") as workdir:
        for rows, cols in spec["arrays"]:
            for dataflow in spec["dataflows"]:
                for layer in spec["layers"]:
                    result = run_one(rows, cols, dataflow, layer, workdir)
                    results.append(result)
                    print(json.dumps(result), flush=True)
    with open(args.out, "w") as handle:
        json.dump(results, handle, indent=1)


if __name__ == "__main__":
    main()
