"""PVF trial throughput: the fast exact path vs a naive full re-run per fault (PyTorchFI-style).

Usage::

    python -m benchmarks.bench_pvf [--zoo build/zoo] [--models DIR ...] [--faults 400]
                                   [--inputs-per-fault 1,64] [--eval 256]

For every model folder (bundled lenet5 and dlrm_small, plus ``<zoo>/<model>/`` folders with a
torch adapter below) the same campaign faults (single bit flips in fp32 parameters, drawn
exactly as ``accelsim pvf`` draws them: bits-weighted parameter, uniform element and bit,
``k`` random inputs of the eval set per fault) are evaluated

* by the fast path: ``faults.campaign.TrialEvaluator.run_chunk`` — the whole per-trial work
  of a campaign (draw, golden-cache resume, delta, stacking, early stop, outcome records);
* naively in torch eager: the weight is corrupted in place in the original torch module, the
  whole model runs on the fault's inputs, the weight is restored (what PyTorchFI-style tools do);
* (for reference) naively in onnxruntime with the corrupted initializer fed per run.

Both run in this process with one thread (torch.set_num_threads(1), BLAS limited to 1),
alternating, after a warm-up; the result is the ratio of trials per second. The outcomes
(top-1 change / CTR criterion) of fast and torch runs are compared trial by trial.
"""
from __future__ import annotations

import argparse
import json
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
    """The zoo's torch module for ``folder``, weights loaded from its model.onnx (by name)."""
    import torch

    card = json.loads((folder / "card.json").read_text()) if (folder / "card.json").is_file() else {}
    name = card.get("name", folder.name)
    if name.startswith("lenet"):
        from benchmarks.models.lenet import LeNet5

        module = LeNet5()
    elif name.startswith("dlrm") and "table_rows" in card:
        from benchmarks.models.dlrm import DLRM, DLRMBag

        cls = DLRMBag if "bag" in name else DLRM
        module = cls(tuple(card["table_rows"]), tuple(card["bottom_mlp"]), tuple(card["top_mlp"][1:]))
    elif name.startswith("resnet"):
        from benchmarks.models import resnet

        cls = getattr(resnet, "ResNet18", None)
        if cls is None:
            return None
        module = cls(**({"num_classes": card["num_classes"]} if "num_classes" in card else {}))
    else:
        return None
    weights = _onnx_weights(folder / "model.onnx")
    state = module.state_dict()
    for key, value in state.items():
        src = weights.get(key)
        if src is None or tuple(src.shape) != tuple(value.shape):
            if key.endswith(("running_mean", "running_var", "num_batches_tracked")):
                continue
            return None  # exported names differ: no faithful torch twin
        state[key] = torch.from_numpy(np.array(src))
    module.load_state_dict(state)
    return module.eval()


# ---------------------------------------------------------------------------- measurement
def bench_model(folder: Path, *, faults: int, inputs_per_fault: int, eval_size: int, seed: int) -> dict:
    import torch

    from frontend import load_onnx as load_program
    from faults.pvf.evaluator import TrialEvaluator
    from faults.pvf.plan import CampaignConfig
    from faults.common.threads import single_blas_thread
    from faults.reference.onnx_naive import OnnxNaive, TorchEagerNaive, subset_inputs
    from faults.common import outcome as oc

    torch.set_num_threads(1)
    program = load_program(str(folder / "model.onnx"))
    with np.load(folder / "eval_inputs.npz") as data:
        inputs = {k: data[k] for k in data.files}
    if len({np.shape(v)[0] for v in inputs.values()}) == 1:  # batch-major: keep the first eval_size
        inputs = {k: v[:eval_size] for k, v in inputs.items()}
    module = torch_module(folder)
    input_names = list(program.input_names)
    tnaive = None
    if module is not None:
        params = dict(module.named_parameters())
        tensors = {p.name: params[p.source].data for p in program.parameters.values()
                   if p.source in params and tuple(params[p.source].shape) == tuple(p.shape)}
        tnaive = TorchEagerNaive(module, tensors, input_names)
    onaive = OnnxNaive(folder / "model.onnx", program)
    usable = [p for p in program.parameters if onaive.supports(p) and (tnaive is None or tnaive.supports(p))]
    cfg = CampaignConfig(fault="sbf", trials=faults, seed=seed, target=tuple(f"param={p}" for p in usable),
                         inputs_per_trial=inputs_per_fault, chunk_size=64)
    with single_blas_thread():
        crit_text = oc.default_criterion(np.prod(program.outputs[0].shape[1:] or (1,)) > 1
                                         if all(isinstance(d, int) for d in program.outputs[0].shape[1:]) else True)
        ev = TrialEvaluator(program, inputs, cfg, crit_text)
        t0 = time.perf_counter()
        inj = ev.injector("fp32")
        golden_s = time.perf_counter() - t0
        crit = oc.parse_criterion(crit_text)
        warm = list(range(faults, faults + 64))
        ev.run_chunk(warm)  # stacking probes, caches
        trials = list(range(faults))
        drawn = [ev.draw(t) for t in trials]
        if tnaive is not None:
            for _, _, f in drawn[:5]:
                tnaive.run(subset_inputs(inputs, f.rows, inj.batch) or inputs, f.param, f.corruption.index,
                           inj.fault_values(f)[0])
        # fast path (the whole campaign work per trial)
        t0 = time.perf_counter()
        rows = []
        for lo in range(0, faults, 64):
            rows += ev.run_chunk(trials[lo:lo + 64])
        fast_s = time.perf_counter() - t0
        # naive torch eager, same faults and inputs
        torch_s = float("nan")
        agree = compared = 0
        if tnaive is not None:
            t0 = time.perf_counter()
            outs = []
            for _, _, f in drawn:
                sub = subset_inputs(inputs, f.rows, inj.batch)
                if sub is None:
                    out = tnaive.run(inputs, f.param, f.corruption.index, inj.fault_values(f)[0])[f.rows]
                else:
                    out = tnaive.run(sub, f.param, f.corruption.index, inj.fault_values(f)[0])
                outs.append(out)
            torch_s = time.perf_counter() - t0
            golden_t = tnaive.run(inputs)
            for (_, _, f), out, row in zip(drawn, outs, rows):
                rec = oc.compare(golden_t[f.rows], out, f.rows, probability=inj.probability_output)
                amb = crit.ambiguous(rec).any()
                if not amb:
                    compared += 1
                    agree += int(crit.trial_outcome(rec) == row["outcome"])
        # naive onnxruntime (reference; fewer faults when slow)
        n_ort = min(faults, 200)
        t0 = time.perf_counter()
        for _, _, f in drawn[:n_ort]:
            onaive.run(subset_inputs(inputs, f.rows, inj.batch) or inputs, {f.param: inj.corrupted_value(f)})
        ort_s = (time.perf_counter() - t0) * faults / n_ort
    early = float(np.mean([r["early_masked"] for r in rows]))
    result = {
        "model": folder.name, "faults": faults, "inputs_per_fault": inputs_per_fault or inj.batch,
        "eval_inputs": inj.batch, "params": len(usable), "golden_cache_s": round(golden_s, 3),
        "fast_trials_per_s": faults / fast_s, "torch_trials_per_s": faults / torch_s if tnaive else None,
        "ort_trials_per_s": faults / ort_s, "early_masked": early,
        "ratio_vs_torch": (torch_s / fast_s) if tnaive else None, "ratio_vs_ort": ort_s / fast_s,
        "outcome_agreement": f"{agree}/{compared}" if tnaive else None,
        "sdc": int(sum(r["outcome"] == 1 for r in rows)), "due": int(sum(r["outcome"] == 2 for r in rows)),
    }
    return result


def _folders(zoo: Path | None, extra: list[str]) -> list[Path]:
    found = []
    for name in ("lenet5", "dlrm_small"):
        folder = ROOT / "accelsim" / "bundled" / name
        if (folder / "model.onnx").is_file():
            found.append(folder)
    if zoo and zoo.is_dir():
        found += sorted(p.parent for p in zoo.glob("*/model.onnx"))
    found += [Path(e) for e in extra]
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zoo", type=Path, default=None, help="folder of zoo model folders")
    parser.add_argument("--models", nargs="*", default=[], help="extra model folders")
    parser.add_argument("--faults", type=int, default=400)
    parser.add_argument("--inputs-per-fault", default="1,64", help="comma separated (0 = whole eval set)")
    parser.add_argument("--eval", type=int, default=256, help="eval inputs kept (the golden batch)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; one thread for every engine")
    results = []
    header = (f"{'model':<14} {'in/fault':>8} {'fast tr/s':>10} {'torch tr/s':>10} {'ratio':>7} "
              f"{'ort tr/s':>9} {'ratio':>7} {'early':>6} {'agree':>10}")
    print(header)
    for folder in _folders(args.zoo, args.models):
        for k in [int(x) for x in args.inputs_per_fault.split(",")]:
            try:
                r = bench_model(folder, faults=args.faults, inputs_per_fault=k, eval_size=args.eval, seed=args.seed)
            except Exception as exc:  # report and go on with the other models
                print(f"{folder.name:<14} skipped: {type(exc).__name__}: {str(exc).splitlines()[0][:100]}")
                continue
            results.append(r)
            tr = r["torch_trials_per_s"]
            torch_txt = f"{tr:.0f}" if tr else "n/a"
            ratio_txt = f"{r['ratio_vs_torch']:.1f}x" if tr else "n/a"
            print(f"{r['model']:<14} {r['inputs_per_fault']:>8} {r['fast_trials_per_s']:>10.0f} "
                  f"{torch_txt:>10} {ratio_txt:>7} {r['ort_trials_per_s']:>9.0f} "
                  f"{r['ratio_vs_ort']:>6.1f}x {r['early_masked']:>6.2f} {str(r['outcome_agreement']):>10}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"load": load, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
