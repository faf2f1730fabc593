"""Naive reference injectors: a full inference per fault, independent of the fast path.

* :class:`OnnxNaive` — the corrupted weight is written into the ONNX initializer and the
  model runs in onnxruntime. ``mode="feed"`` (default) exposes the initializers as
  overridable graph inputs once and feeds the corrupted tensor per trial (one session, the
  same graph); ``mode="rewrite"`` rebuilds the model with the initializer replaced and opens a
  new session per trial (slow; used to check that both modes agree).
* :class:`TorchEagerNaive` — PyTorchFI-style: the weight of a torch module is corrupted in
  place, the whole model runs in eager mode, the weight is restored.

Only parameters whose IR value equals an ONNX initializer of the same name (``Parameter.
source``) can be injected naively (a BatchNorm-folded conv weight, for instance, cannot);
:meth:`OnnxNaive.supports` tells which.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from accelsim.ir import Program


class NaiveError(ValueError):
    pass


def subset_inputs(inputs: Mapping[str, np.ndarray], rows: np.ndarray, batch: int) -> dict | None:
    """The inputs of the given samples, or None if some input is not batch-major (ragged bags)."""
    if all(np.ndim(v) >= 1 and np.shape(v)[0] == batch for v in inputs.values()):
        return {k: np.asarray(v)[rows] for k, v in inputs.items()}
    return None


class OnnxNaive:
    """onnxruntime with the corrupted parameter in the initializer."""

    def __init__(self, model_path: str | Path, program: Program, *, mode: str = "feed", threads: int = 1):
        import onnx
        from onnx import numpy_helper

        if mode not in ("feed", "rewrite"):
            raise NaiveError(f"unknown naive mode {mode!r}")
        self.mode = mode
        self.threads = threads
        self.model = onnx.load(str(model_path))
        inits = {t.name: t for t in self.model.graph.initializer}
        self.init_of: dict[str, str] = {}
        for name, param in program.parameters.items():
            source = param.source or name
            tensor = inits.get(source)
            if tensor is None:
                continue
            value = numpy_helper.to_array(tensor)
            if value.dtype == np.float32 and value.shape == tuple(param.shape) and np.array_equal(
                value, program.parameter_values[name]
            ):
                self.init_of[name] = source
        self.output_names = [o.name for o in self.model.graph.output]
        if mode == "feed":
            graph_inputs = {i.name for i in self.model.graph.input}
            for name in self.init_of.values():
                if name in graph_inputs:
                    continue
                t = inits[name]
                self.model.graph.input.append(
                    onnx.helper.make_tensor_value_info(name, t.data_type, list(t.dims))
                )
            self.session = self._session(self.model)

    def supports(self, param: str) -> bool:
        return param in self.init_of

    def _session(self, model):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])

    def run(self, inputs: Mapping[str, np.ndarray], corrupted: Mapping[str, np.ndarray] | None = None,
            output: str | None = None) -> np.ndarray:
        """Output ``output`` (default: first) with parameters replaced by ``corrupted``."""
        corrupted = dict(corrupted or {})
        for name in corrupted:
            if name not in self.init_of:
                raise NaiveError(f"parameter {name!r} has no matching ONNX initializer")
        name = output or self.output_names[0]
        if self.mode == "feed":
            feeds = dict(inputs)
            feeds.update({self.init_of[p]: np.ascontiguousarray(v, dtype=np.float32) for p, v in corrupted.items()})
            return self.session.run([name], feeds)[0]
        import onnx
        from onnx import numpy_helper

        model = onnx.ModelProto()
        model.CopyFrom(self.model)
        by_init = {self.init_of[p]: v for p, v in corrupted.items()}
        for i, tensor in enumerate(model.graph.initializer):
            if tensor.name in by_init:
                model.graph.initializer[i].CopyFrom(
                    numpy_helper.from_array(np.asarray(by_init[tensor.name], dtype=np.float32), tensor.name)
                )
        return self._session(model).run([name], dict(inputs))[0]


class TorchEagerNaive:
    """Corrupt a torch module's weight in place, run it eagerly, restore the weight."""

    def __init__(self, module, tensors: Mapping[str, object], input_names: list[str]):
        """``tensors``: IR parameter name -> the module's torch tensor holding it (same layout)."""
        self.module = module.eval()
        self.tensors = dict(tensors)
        self.input_names = list(input_names)

    def supports(self, param: str) -> bool:
        return param in self.tensors

    def run(self, inputs: Mapping[str, np.ndarray], param: str | None = None, index: np.ndarray | None = None,
            values: np.ndarray | None = None) -> np.ndarray:
        import torch

        args = [torch.from_numpy(np.ascontiguousarray(inputs[n])) for n in self.input_names]
        with torch.no_grad():
            if param is None:
                return self.module(*args).numpy()
            flat = self.tensors[param].view(-1)
            idx = torch.from_numpy(np.asarray(index, dtype=np.int64))
            saved = flat[idx].clone()
            flat[idx] = torch.from_numpy(np.asarray(values, dtype=np.float32))
            try:
                out = self.module(*args)
            finally:
                flat[idx] = saved
            return out.numpy()


# ---------------------------------------------------------------------------- exactness check
def exactness_check(
    model_path: str | Path,
    program: Program,
    inputs: Mapping[str, np.ndarray],
    *,
    faults: int = 500,
    seed: int = 0,
    fault: str = "sbf",
    inputs_per_fault: int = 2,
    criterion: str | None = None,
    chunk: int = 64,
    rtol: float = 1e-5,
    target: str | None = None,
) -> dict:
    """Fast path vs onnxruntime with the corrupted initializer, trial by trial (fp32).

    Faults are drawn like campaign trials (bits-weighted over the parameters that map to an
    ONNX initializer). Per input, the outcome under ``criterion`` must be equal (inputs whose
    deciding margin is within float noise in either run are set aside and counted), and the
    output deviation ``max|faulty - golden|`` must agree within ``rtol`` relative to
    ``max(that deviation, max|golden output|)``. A trial that fails this but whose fast-path
    output equals the executor's own full re-run (``accelsim.executor.run`` with the corrupted
    parameter) to ``rtol / 10`` while that full re-run differs from onnxruntime at least as
    much is counted as ``kernel_noise`` (the numpy-vs-onnxruntime summation order on an
    ill-conditioned sum, not the fast path) and listed apart. Returns counts and the failing
    trials.
    """
    from faults import outcome as oc
    from faults.campaign import CampaignConfig, TrialEvaluator, resolve_criterion

    from faults.targets import parse_target

    naive = OnnxNaive(model_path, program)
    wanted = parse_target(target)
    targets = tuple(f"param={p}" for p, q in program.parameters.items() if naive.supports(p) and wanted.matches(q))
    if not targets:
        raise NaiveError(f"{model_path}: no parameter maps to an ONNX initializer")
    cfg = CampaignConfig(fault=fault, trials=faults, seed=seed, target=targets, inputs_per_trial=inputs_per_fault,
                         chunk_size=chunk, criterion=criterion)
    crit_text = resolve_criterion(program, inputs, cfg)
    crit = oc.parse_criterion(crit_text)
    ev = TrialEvaluator(program, inputs, cfg, crit_text)
    inj = ev.injector("fp32")
    out_name = inj.output
    ort_golden = naive.run(inputs, output=out_name)
    scale = float(np.max(np.abs(inj.golden_output))) if inj.golden_output.size else 1.0
    mismatches: list[dict] = []
    set_aside = 0
    early = 0
    noise = 0
    compared = 0
    max_rel = 0.0
    outcomes = np.zeros(3, dtype=np.int64)
    for lo in range(0, faults, chunk):
        trials = list(range(lo, min(faults, lo + chunk)))
        drawn = [ev.draw(t) for t in trials]
        results = inj.evaluate([d[2] for d in drawn])
        early += sum(r.early_masked for r in results)
        for t, (_, _, f), res in zip(trials, drawn, results):
            rows = f.rows
            sub = subset_inputs(inputs, rows, inj.batch)
            if sub is None:  # ragged inputs (e.g. embedding-bag offsets): run the whole batch
                ref = naive.run(inputs, {f.param: inj.corrupted_value(f)}, output=out_name)[rows]
            else:
                ref = naive.run(sub, {f.param: inj.corrupted_value(f)}, output=out_name)
            rec_fast = oc.compare(inj.golden_output[rows], res.output, rows, probability=inj.probability_output)
            rec_ref = oc.compare(ort_golden[rows], ref, rows, probability=inj.probability_output)
            amb = crit.ambiguous(rec_fast) | crit.ambiguous(rec_ref)
            o_fast, o_ref = crit.outcomes(rec_fast), crit.outcomes(rec_ref)
            for k in range(rows.size):
                if amb[k]:
                    set_aside += 1
                    continue
                compared += 1
                outcomes[o_fast[k]] += 1
                d_fast, d_ref = float(rec_fast["dev"][k]), float(rec_ref["dev"][k])
                both_inf = np.isinf(d_fast) and np.isinf(d_ref)
                err = 0.0 if both_inf else abs(d_fast - d_ref)
                rel = err / max(d_ref if np.isfinite(d_ref) else 0.0, scale, 1e-30)
                max_rel = max(max_rel, rel if np.isfinite(rel) else np.inf)
                if o_fast[k] != o_ref[k] or not rel <= rtol:
                    if _kernel_noise(program, inputs, inj, f, res.output, ref, k, crit, rtol):
                        noise += 1
                        continue
                    mismatches.append({"trial": t, "param": f.param, "index": f.corruption.index.tolist(),
                                       "bit": f.corruption.bit, "input": int(rows[k]),
                                       "fast": (int(o_fast[k]), d_fast), "naive": (int(o_ref[k]), d_ref)})
    return {"faults": faults, "inputs_compared": compared, "set_aside": set_aside, "kernel_noise": noise,
            "mismatches": mismatches,
            "max_rel_dev_error": max_rel, "outcomes": outcomes.tolist(), "criterion": crit_text,
            "params": len(targets), "early_masked": early}


def _kernel_noise(program, inputs, inj, fault, fast_out, ref_out, k, crit, rtol) -> bool:
    """Is a fast-vs-onnxruntime disagreement already present in the executor's full re-run?"""
    from accelsim import executor
    from faults import outcome as oc

    value = inj.corrupted_value(fault)
    full = executor.run(program, inputs, dtype="fp32", parameter_values={fault.param: value})
    full_out = full.outputs[inj.output][fault.rows]
    a, b, c = fast_out[k].astype(np.float64), full_out[k].astype(np.float64), ref_out[k].astype(np.float64)
    if not np.array_equal(np.isfinite(a), np.isfinite(b)):
        return False
    fin = np.isfinite(a) & np.isfinite(c)
    scale = max(float(np.max(np.abs(b[fin]))) if fin.any() else 0.0, 1e-30)
    fast_full = float(np.max(np.abs(a[fin] - b[fin]))) if fin.any() else 0.0
    full_ref = float(np.max(np.abs(b[fin] - c[fin]))) if fin.any() else 0.0
    fast_ref = float(np.max(np.abs(a[fin] - c[fin]))) if fin.any() else 0.0
    rows = fault.rows[[k]]
    same_outcome = (crit.outcomes(oc.compare(inj.golden_output[rows], fast_out[[k]], rows))
                    == crit.outcomes(oc.compare(inj.golden_output[rows], full_out[[k]], rows))).all()
    return bool(same_outcome and fast_full <= (rtol / 10) * scale and full_ref >= 0.5 * fast_ref)
