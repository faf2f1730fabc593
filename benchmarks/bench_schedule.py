"""Schedule speed: time to schedule each model on each preset, and accelsim vs SCALE-Sim 3.0.0
on the same layers, side by side in one run.

Usage::

    python -m benchmarks.bench_schedule [--zoo build/zoo] [--repeats 3] [--batch 1]
        [--scalesim-python /tmp/scalesim-venv/bin/python]
        [--scalesim-layers benchmarks/scalesim_reference/bench_layers.json] [--skip-scalesim]

Part 1 — models: the bundled models (lenet5, dlrm_small), every ``<zoo>/<model>/model*.onnx``
(lowered by the frontend and run once by the executor on ``--batch`` rows of its
``eval_inputs*.npz`` for shapes and embedding indices), and IR-built BERT-base / Tiny-BERT
shaped programs (``benchmarks/synthetic_programs.py``; always present). For each model and
preset: the first call in this process (Numba kernels loaded from their on-disk cache, or
compiled if the cache is cold) and the median of ``--repeats`` warm calls.

Part 2 — SCALE-Sim: every layer of ``--scalesim-layers`` runs in SCALE-Sim's own venv
(``benchmarks/scalesim_reference/run_scalesim.py``, a subprocess) and in accelsim (a one-layer
program, convention "scalesim", SRAMs large enough for one tile) right after each other; the
compute cycles must agree, and the ratio SCALE-Sim seconds / accelsim seconds is printed (target
≥ 1000). Ratios, not absolute times, are the result: the machine is shared and noisy.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _onnx_models(zoo: Path, batch: int):
    """(name, program, shapes, index_values) of the bundled and zoo ONNX models."""
    try:
        from frontend import load_onnx
        from accelsim import executor
    except ImportError as exc:  # frontend not installed: only synthetic models
        print(f"# frontend unavailable ({exc}); ONNX models skipped")
        return
    paths = []
    try:
        from accelsim import bundled

        paths += [bundled.path(name) / "model.onnx" for name in ("lenet5", "dlrm_small")]
    except (ImportError, AttributeError):
        pass
    if zoo.is_dir():
        paths += sorted(zoo.glob("*/model*.onnx"))
    for path in paths:
        if not path.is_file():
            continue
        variant = path.stem.partition(".")[2]
        npz = [path.parent / f"eval_inputs.{variant}.npz"] if variant else []
        npz = [p for p in npz + [path.parent / "eval_inputs.npz"] if p.is_file()]
        if not npz:
            print(f"# {path}: no eval inputs, skipped")
            continue
        program = load_onnx(path)
        with np.load(npz[0]) as data:
            inputs = {k: data[k] for k in data.files if k in program.input_names}
        if len({v.shape[0] for v in inputs.values()}) == 1:  # batch-major (not flat bag indices)
            inputs = {k: v[:batch] for k, v in inputs.items()}
        cache = executor.run(program, inputs, keep_intermediates=True).cache
        shapes = {k: tuple(np.shape(v)) for k, v in cache.items()}
        yield f"{path.parent.name}/{path.name}", program, shapes, cache


def _synthetic_models(batch: int):
    from benchmarks.synthetic_programs import bert_base, bert_tiny

    for name, build in (("synthetic/bert_tiny", bert_tiny), ("synthetic/bert_base", bert_base)):
        program, shapes, index_values = build(batch=batch)
        yield name, program, shapes, index_values


def bench_models(zoo: Path, repeats: int, batch: int) -> list[dict]:
    from accelsim.config import list_presets, load_config
    from accelsim.schedule import simulate

    rows = []
    print(f"{'model':<34} {'preset':<15} {'ops':>5} {'cycles':>13} {'res_rows':>9} {'first_s':>8} {'warm_s':>8}")
    for name, program, shapes, values in list(_onnx_models(zoo, batch)) + list(_synthetic_models(batch)):
        for preset in list_presets():
            hw = load_config(preset)
            start = time.perf_counter()
            sched = simulate(program, shapes, hw, index_values=values)
            first = time.perf_counter() - start
            warm = _median_time(lambda: simulate(program, shapes, hw, index_values=values), repeats)
            row = {"model": name, "preset": preset, "ops": len(sched.works), "cycles": sched.total_cycles,
                   "residency_rows": len(sched.residency), "first_s": first, "warm_s": warm}
            rows.append(row)
            print(f"{name:<34} {preset:<15} {row['ops']:>5} {row['cycles']:>13} {row['residency_rows']:>9} "
                  f"{first:>8.3f} {warm:>8.3f}", flush=True)
    return rows


def _layer_program(layer: dict):
    from accelsim.ir import Instruction, Parameter, Program, TensorSpec

    if layer["kind"] == "gemm":
        m, k, n = layer["m"], layer["k"], layer["n"]
        w = np.zeros((k, n), dtype=np.float32)
        prog = Program((TensorSpec("x", "float32", (m, k)),), (TensorSpec("y", "float32", (m, n)),),
                       {"w": Parameter("w", (k, n), "l")}, {"w": w}, {},
                       (Instruction("matmul", layer["name"], ("x", "w"), ("y",)),))
        return prog, {"x": (m, k), "y": (m, n)}
    h, wd, kh, kw, c, o, s = (layer[key] for key in ("ifmap_h", "ifmap_w", "filter_h", "filter_w", "channels",
                                                        "filters", "stride"))
    oh, ow = (h - kh) // s + 1, (wd - kw) // s + 1
    w = np.zeros((o, c, kh, kw), dtype=np.float32)
    inst = Instruction("conv", layer["name"], ("x", "w"), ("y",),
                       {"strides": (s, s), "pads": (0, 0, 0, 0), "dilations": (1, 1), "group": 1})
    prog = Program((TensorSpec("x", "float32", (1, c, h, wd)),), (TensorSpec("y", "float32", (1, o, oh, ow)),),
                   {"w": Parameter("w", w.shape, "l")}, {"w": w}, {}, (inst,))
    return prog, {"x": (1, c, h, wd), "y": (1, o, oh, ow)}


def bench_scalesim(python: str, layers_file: Path, repeats: int) -> list[dict]:
    from accelsim.config import load_config
    from accelsim.schedule import simulate

    spec = json.loads(layers_file.read_text())
    rows = []
    print(f"\n{'layer':<32} {'array':>7} {'df':>3} {'scalesim_cyc':>12} {'accelsim_cyc':>12} "
          f"{'scalesim_s':>10} {'accelsim_s':>10} {'ratio':>9}")
    for rows_, cols_ in spec["arrays"]:
        for dataflow in spec["dataflows"]:
            for layer in spec["layers"]:
                one = {"arrays": [[rows_, cols_]], "dataflows": [dataflow], "layers": [layer]}
                with tempfile.TemporaryDirectory() as tmp:
                    layers_path, out_path = Path(tmp) / "l.json", Path(tmp) / "o.json"
                    layers_path.write_text(json.dumps(one))
                    subprocess.run([python, str(HERE / "scalesim_reference" / "run_scalesim.py"), "--layers",
                                    str(layers_path), "--out", str(out_path)], check=True, capture_output=True)
                    ref = json.loads(out_path.read_text())[0]
                hw = load_config("hbm_datacenter", [
                    f"array.rows={rows_}", f"array.cols={cols_}", f"array.dataflow={dataflow}",
                    "precision.weight_bytes=1", "precision.activation_bytes=1", "precision.accumulator_bytes=1", "precision.scale_bytes=0"])
                prog, shapes = _layer_program(layer)
                sched = simulate(prog, shapes, hw, convention="scalesim")
                ours = int(sched.ops["compute_cycles_reported"][0])
                seconds = _median_time(lambda: simulate(prog, shapes, hw, convention="scalesim"), repeats)
                row = {"layer": layer["name"], "array": f"{rows_}x{cols_}", "dataflow": dataflow,
                       "scalesim_cycles": ref["compute_cycles"], "accelsim_cycles": ours,
                       "scalesim_s": ref["seconds"], "accelsim_s": seconds, "ratio": ref["seconds"] / seconds}
                rows.append(row)
                flag = "" if ours == ref["compute_cycles"] else "  MISMATCH"
                print(f"{layer['name']:<32} {row['array']:>7} {dataflow:>3} {ref['compute_cycles']:>12} {ours:>12} "
                      f"{ref['seconds']:>10.2f} {seconds:>10.4f} {row['ratio']:>9.0f}{flag}", flush=True)
    if rows:
        total = sum(r["scalesim_s"] for r in rows) / sum(r["accelsim_s"] for r in rows)
        print(f"all layers: SCALE-Sim / accelsim time = {total:.0f}x "
              f"(median per layer {statistics.median(r['ratio'] for r in rows):.0f}x)")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zoo", type=Path, default=Path("build/zoo"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=1, help="inference batch of the scheduled models")
    parser.add_argument("--scalesim-python", default="/tmp/scalesim-venv/bin/python")
    parser.add_argument("--scalesim-layers", type=Path, default=HERE / "scalesim_reference" / "bench_layers.json")
    parser.add_argument("--skip-scalesim", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args()
    print(f"# load average {os.getloadavg()}, python {sys.version.split()[0]}")
    result = {"models": bench_models(args.zoo, args.repeats, args.batch)}
    if not args.skip_scalesim:
        if not Path(args.scalesim_python).is_file():
            print(f"# {args.scalesim_python} missing: create the SCALE-Sim venv (see run_scalesim.py)")
        else:
            result["scalesim"] = bench_scalesim(args.scalesim_python, args.scalesim_layers, args.repeats)
    print(f"# load average {os.getloadavg()}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
