"""Fast path vs onnxruntime, trial by trial: the exactness check used by tests and benchmarks."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from accelsim import executor
from accelsim.ir import Program

from faults.common import outcome as oc
from faults.pvf.evaluator import TrialEvaluator
from faults.pvf.plan import CampaignConfig, resolve_criterion
from faults.pvf.targets import parse_target
from faults.reference.onnx_naive import NaiveError, OnnxNaive, subset_inputs


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
