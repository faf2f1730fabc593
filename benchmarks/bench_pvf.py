"""PVF trial throughput: the fast exact path vs naive full re-runs per fault, side by side.

Usage::

    python -m benchmarks.bench_pvf [--zoo build/zoo] [--models NAME,...] [--faults 400]
                                   [--inputs-per-fault 1] [--eval 256] [--dynamo] [--json F]

For every model (bundled lenet5 and dlrm_small, every ``<zoo>/<model>/model.onnx``; with
``--dynamo`` the ``model.dynamo.onnx`` exports too, and always DLRM's) the same campaign
faults — single bit flips in fp32 parameters drawn exactly as ``accelsim pvf`` draws them
(bits-weighted parameter, uniform element and bit, ``k`` random inputs of the eval set per
fault), over the parameters the naive injectors can corrupt — are evaluated in this process,
one thread each, after a warm-up:

* fast: ``TrialEvaluator.run_chunk`` — the whole per-trial work of a campaign (draw, start
  instruction on the fault's rows, stacking, propagation, early stop, outcome records);
  the golden cache is built before (its time is printed apart);
* ort: onnxruntime (one intra-op thread) with the corrupted initializer fed per trial (one
  buffer per parameter, corrupted in place and restored), on the fault's inputs only (ragged
  bag inputs cut to the fault's bags);
* torch: PyTorchFI-style, the weight of the zoo's torch module corrupted in place, the model
  run eagerly on the fault's inputs, the weight restored (where a torch twin with matching
  parameter names exists: LeNet-5, DLRM).

``agree``: trials whose outcome (top-1 change; ``ctr>0.05|click`` for DLRM) is the same in the
fast path and in onnxruntime, over the trials decided in both (a decision within float noise of
its threshold in either is set aside). The closing line gives the geometric mean of fast/ort.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------- torch adapters
def _onnx_weights(path: Path) -> dict[str, np.ndarray]:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def torch_module(folder: Path):
    """The zoo's torch module for ``folder``, weights loaded from its model.onnx (by name), or
    None when the exported names or shapes do not match the module's."""
    card = json.loads((folder / "card.json").read_text()) if (folder / "card.json").is_file() else {}
    name = card.get("name", folder.name)
    if name.startswith("lenet"):
        from benchmarks.models.lenet import LeNet5

        module = LeNet5()
    elif name.startswith("dlrm") and "table_rows" in card:
        from benchmarks.models.dlrm import DLRM, DLRMBag

        cls = DLRMBag if "bag" in name else DLRM
        module = cls(tuple(card["table_rows"]), tuple(card["bottom_mlp"]), tuple(card["top_mlp"][1:]))
    else:
        return None
    import torch

    weights = _onnx_weights(folder / "model.onnx")
    state = module.state_dict()
    for key, value in state.items():
        src = weights.get(key)
        if src is None or tuple(src.shape) != tuple(value.shape):
            return None
        state[key] = torch.from_numpy(np.array(src))
    module.load_state_dict(state)
    return module.eval()


# ---------------------------------------------------------------------------- inputs of a fault
def fault_inputs(inputs: dict[str, np.ndarray], rows: np.ndarray, batch: int) -> dict[str, np.ndarray]:
    """The graph inputs of the samples ``rows``: batch-major inputs sliced; DLRM's ragged bags
    (``offsets`` [tables, B] into flat ``indices_t``) cut to those samples' bags."""
    out = {}
    offsets = inputs.get("offsets")
    ragged = offsets is not None and np.ndim(offsets) == 2 and offsets.shape[1] == batch
    for name, value in inputs.items():
        if ragged and (name == "offsets" or name.startswith("indices_")):
            continue
        out[name] = np.asarray(value)[rows]
    if ragged:
        new_offsets = []
        for t in range(offsets.shape[0]):
            flat = inputs[f"indices_{t}"]
            ends = np.append(offsets[t, 1:], flat.size)
            parts = [flat[offsets[t, r]:ends[r]] for r in rows]
            lengths = [p.size for p in parts]
            new_offsets.append(np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(offsets.dtype))
            out[f"indices_{t}"] = np.concatenate(parts).astype(flat.dtype)
        out["offsets"] = np.stack(new_offsets)
    return out


# ---------------------------------------------------------------------------- measurement
def bench_model(path: Path, *, faults: int, inputs_per_fault: int, eval_size: int, seed: int) -> dict:
    import torch

    from faults.common import outcome as oc
    from faults.common.threads import single_blas_thread
    from faults.pvf.evaluator import TrialEvaluator
    from faults.pvf.plan import CampaignConfig, resolve_criterion
    from faults.reference.onnx_naive import OnnxNaive, TorchEagerNaive
    from frontend import load_onnx

    import gc

    gc.collect()  # free the previous model's caches (torch modules hold reference cycles)
    torch.set_num_threads(1)
    folder = path.parent
    program = load_onnx(str(path))
    with np.load(folder / "eval_inputs.npz") as data:
        inputs = {k: data[k] for k in data.files}
    if len({np.shape(v)[0] for v in inputs.values()}) == 1:  # batch-major: keep the first eval_size
        inputs = {k: v[:eval_size] for k, v in inputs.items()}
    onaive = OnnxNaive(path, program, threads=1)
    module = torch_module(folder) if path.name == "model.onnx" else None
    tnaive = None
    if module is not None:
        params = dict(module.named_parameters())
        tensors = {p.name: params[p.source].data for p in program.parameters.values()
                   if p.source in params and tuple(params[p.source].shape) == tuple(p.shape)}
        tnaive = TorchEagerNaive(module, tensors, list(program.input_names))
    usable = [p for p in program.parameters if onaive.supports(p) and (tnaive is None or tnaive.supports(p))]
    cfg = CampaignConfig(fault="sbf", trials=faults, seed=seed, target=tuple(f"param={p}" for p in usable),
                         inputs_per_trial=inputs_per_fault, chunk_size=64)
    with single_blas_thread():
        crit_text = resolve_criterion(program, inputs, cfg)
        crit = oc.parse_criterion(crit_text)
        ev = TrialEvaluator(program, inputs, cfg, crit_text)
        t0 = time.perf_counter()
        inj = ev.injector("fp32")
        golden_s = time.perf_counter() - t0
        ev.run_chunk(list(range(faults, faults + 64)))  # warm-up: compiled kernels, caches
        trials = list(range(faults))
        drawn = [ev.draw(t) for t in trials]
        subsets = [fault_inputs(inputs, f.rows, inj.batch) for _, _, f in drawn]
        for sub, (_, _, f) in list(zip(subsets, drawn))[:3]:  # warm-up of the naive engines
            onaive.run(sub, {f.param: inj.corrupted_value(f)})
            if tnaive is not None:
                tnaive.run(sub, f.param, f.corruption.index, inj.fault_values(f)[0])
        t0 = time.perf_counter()
        rows = []
        for lo in range(0, faults, 64):
            rows += ev.run_chunk(trials[lo:lo + 64])
        fast_s = time.perf_counter() - t0
        buffers = {f.param: np.array(inj.golden[f.param], dtype=np.float32) for _, _, f in drawn}
        t0 = time.perf_counter()
        ort_out = []
        for sub, (_, _, f) in zip(subsets, drawn):  # corrupt in place, run, restore (no copy)
            flat = buffers[f.param].reshape(-1)
            flat[f.corruption.index] = inj.fault_values(f)[0]
            ort_out.append(onaive.run(sub, {f.param: buffers[f.param]}))
            flat[f.corruption.index] = inj.fault_values(f)[1]
        ort_s = time.perf_counter() - t0
        torch_s = float("nan")
        if tnaive is not None:
            t0 = time.perf_counter()
            for sub, (_, _, f) in zip(subsets, drawn):
                tnaive.run(sub, f.param, f.corruption.index, inj.fault_values(f)[0])
            torch_s = time.perf_counter() - t0
        ort_golden = onaive.run(inputs)
    agree = compared = 0
    for (_, _, f), out, row in zip(drawn, ort_out, rows):
        rec = oc.compare(ort_golden[f.rows], out, f.rows, probability=inj.probability_output)
        fast_rec = oc.records_from_bytes(row["records"]) if row["records"] else rec[:0]
        if crit.ambiguous(rec).any() or (fast_rec.size and crit.ambiguous(fast_rec).any()):
            continue
        compared += 1
        agree += int(crit.trial_outcome(rec) == row["outcome"])
    return {
        "model": f"{folder.name}/{path.name}", "faults": faults, "inputs_per_fault": inputs_per_fault or inj.batch,
        "eval_inputs": inj.batch, "params": len(usable), "golden_cache_s": round(golden_s, 2),
        "kept_gib": round(inj.gold.kept_bytes / 2**30, 3),
        "fast_trials_per_s": faults / fast_s, "ort_trials_per_s": faults / ort_s,
        "torch_trials_per_s": faults / torch_s if tnaive is not None else None,
        "ratio_vs_ort": ort_s / fast_s, "ratio_vs_torch": torch_s / fast_s if tnaive is not None else None,
        "early_masked": float(np.mean([r["early_masked"] for r in rows])),
        "agree": f"{agree}/{compared}", "agree_ok": agree == compared,
        "sdc": int(sum(r["outcome"] == 1 for r in rows)), "due": int(sum(r["outcome"] == 2 for r in rows)),
    }


def _paths(zoo: Path | None, names: list[str], dynamo: bool) -> list[Path]:
    found = [ROOT / "accelsim" / "bundled" / n / "model.onnx" for n in ("lenet5", "dlrm_small")]
    if zoo and zoo.is_dir():
        for folder in sorted(p.parent for p in zoo.glob("*/model.onnx")):
            if folder.name in ("lenet5", "dlrm_small"):
                continue
            found.append(folder / "model.onnx")
            if (dynamo or folder.name == "dlrm") and (folder / "model.dynamo.onnx").is_file():
                found.append(folder / "model.dynamo.onnx")
    found = [p for p in found if p.is_file()]
    if names:
        found = [p for p in found if p.parent.name in names]
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zoo", type=Path, default=None, help="folder of zoo model folders")
    parser.add_argument("--models", default="", help="only these model folders (comma separated names)")
    parser.add_argument("--faults", type=int, default=400)
    parser.add_argument("--inputs-per-fault", type=int, default=1, help="0 = the whole eval set")
    parser.add_argument("--eval", type=int, default=256, help="eval inputs kept (the golden batch)")
    parser.add_argument("--dynamo", action="store_true", help="also every model.dynamo.onnx")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; one thread for every engine; "
          f"{args.inputs_per_fault or 'all'} input(s) per fault")
    print(f"{'model':<32} {'eval':>5} {'golden s':>8} {'fast tr/s':>9} {'ort tr/s':>9} {'fast/ort':>8} "
          f"{'torch tr/s':>10} {'fast/torch':>10} {'early':>6} {'agree':>9}", flush=True)
    results = []
    for path in _paths(args.zoo, [n for n in args.models.split(",") if n], args.dynamo):
        try:
            r = bench_model(path, faults=args.faults, inputs_per_fault=args.inputs_per_fault,
                            eval_size=args.eval, seed=args.seed)
        except Exception as exc:  # report and go on with the other models
            print(f"{path.parent.name + '/' + path.name:<32} skipped: {type(exc).__name__}: {str(exc)[:100]}")
            continue
        results.append(r)
        tr = r["torch_trials_per_s"]
        torch_txt = f"{tr:.0f}" if tr else "n/a"
        torch_ratio = f"{r['ratio_vs_torch']:.1f}x" if tr else "n/a"
        print(f"{r['model']:<32} {r['eval_inputs']:>5} {r['golden_cache_s']:>8.1f} {r['fast_trials_per_s']:>9.0f} "
              f"{r['ort_trials_per_s']:>9.0f} {r['ratio_vs_ort']:>7.1f}x "
              f"{torch_txt:>10} {torch_ratio:>10} "
              f"{r['early_masked']:>6.2f} {r['agree']:>9}", flush=True)
    if results:
        geo = math.exp(np.mean([math.log(r["ratio_vs_ort"]) for r in results]))
        print(f"geometric mean fast/ort {geo:.2f}x over {len(results)} models; "
              f"every outcome agrees: {all(r['agree_ok'] for r in results)}; load average {os.getloadavg()[0]:.2f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"load": load, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
