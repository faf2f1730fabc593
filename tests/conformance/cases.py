"""ONNX's own backend node test cases, generated in memory from the installed ``onnx``.

``collect()`` returns ``{case_name: (op_type, TestCase)}`` for every node test case; the
op type is that of the node under test (an ``_expanded`` case, which tests the op's
function body, is attributed to the op it expands).
"""
from __future__ import annotations

import functools
import re
import warnings

import numpy as np
from onnx import numpy_helper


@functools.lru_cache(maxsize=1)
def collect() -> dict[str, tuple[str, str, object]]:
    """case name -> (op_type, domain, TestCase)."""
    from onnx.backend.test.case import node as node_cases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with np.errstate(all="ignore"):
            cases = node_cases.collect_testcases(None)
    tested = node_cases._existing_names  # name of the base case -> NodeProto under test
    out: dict[str, tuple[str, str, object]] = {}
    for case in cases:
        base = re.sub(r"_expanded(_ver\d+)?$", "", case.name)
        node = tested.get(base)
        if node is None:
            continue
        out[case.name] = (node.op_type, node.domain, case)
    return out


def as_array(value) -> np.ndarray:
    """A case's input/output as numpy (some are stored as TensorProto)."""
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "data_type"):
        return numpy_helper.to_array(value)
    return np.asarray(value)
