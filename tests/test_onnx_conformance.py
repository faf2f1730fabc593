"""ONNX backend node test cases for every op type the frontend claims.

Each case (model + input/output arrays, generated in memory from the installed onnx) is
lowered with ``frontend.lower_model``, run with ``accelsim.executor.run`` and compared the
way onnx's backend runner does: same shape, same dtype, values within rtol/atol of the case
(1e-3 / 1e-7) with NaNs equal. Cases listed in ``tests/conformance/exclusions*.py`` are
still run and must still fail: the test then passes, confirming the written reason, and an
excluded case that starts passing is a stale exclusion and fails the run. Nothing skips.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

import frontend
from accelsim import executor


def _load(module: str):
    """Import ``tests/conformance/<module>.py`` by path (tests/ is not a package)."""
    name = f"_conformance_{module}"
    if name not in sys.modules:
        path = Path(__file__).parent / "conformance" / f"{module}.py"
        spec = importlib.util.spec_from_file_location(name, path)
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


cases = _load("cases")
_compute, _layout = _load("exclusions").EXCLUSIONS, _load("exclusions_layout").EXCLUSIONS
_both = sorted(set(_compute) & set(_layout))
assert not _both, f"cases excluded in both exclusion lists: {_both}"
EXCLUSIONS: dict[str, str] = {**_compute, **_layout}

ALL_CASES = cases.collect()
IN_SCOPE = sorted(
    name
    for name, (op_type, domain, _case) in ALL_CASES.items()
    if op_type in frontend.RULES and domain in ("", "ai.onnx")
)


def run_case(name: str) -> None:
    """Lower, run and compare one case; AssertionError/Exception on any mismatch."""
    _op, _domain, case = ALL_CASES[name]
    model = case.model
    program = frontend.lower_model(model, name=name)
    inputs, expected = case.data_sets[0]
    graph_inputs = [v.name for v in model.graph.input]
    feed = {n: cases.as_array(v) for n, v in zip(graph_inputs, inputs)}
    result = executor.run(program, feed)
    output_names = [v.name for v in model.graph.output]
    assert len(output_names) == len(expected)
    for out_name, ref in zip(output_names, expected):
        ref = cases.as_array(ref)
        got = np.asarray(result.outputs[out_name])
        assert got.shape == ref.shape, f"{out_name}: shape {got.shape} != {ref.shape}"
        assert got.dtype == ref.dtype, f"{out_name}: dtype {got.dtype} != {ref.dtype}"
        if ref.dtype.kind in "fc":
            np.testing.assert_allclose(got, ref, rtol=case.rtol, atol=case.atol, equal_nan=True)
        else:
            np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("name", IN_SCOPE)
def test_node_case(name: str) -> None:
    if name in EXCLUSIONS:
        try:
            run_case(name)
        except Exception:  # noqa: BLE001 - any failure confirms the exclusion
            return  # the written exclusion holds: this case is still unsupported
        pytest.fail(f"{name} passes but is listed as excluded ({EXCLUSIONS[name]}): remove it")
    run_case(name)


def test_exclusions_are_written_and_known() -> None:
    """Every exclusion names an in-scope case and has a reason; no other skip exists."""
    unknown = sorted(set(EXCLUSIONS) - set(IN_SCOPE))
    assert not unknown, f"exclusions name cases that are not in scope: {unknown}"
    assert all(isinstance(r, str) and len(r) > 10 for r in EXCLUSIONS.values())
    excluded = [name for name in IN_SCOPE if name in EXCLUSIONS]
    assert len(excluded) == len(EXCLUSIONS)
