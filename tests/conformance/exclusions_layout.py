"""Conformance exclusions for layout/shape, gather/scatter/embedding and Loop ops.

``{case_name: reason}``; merged with ``exclusions.py`` by ``tests/test_onnx_conformance.py``.
Every entry needs a real reason (unsupported dtype, out-of-scope attribute, ...).
"""
from __future__ import annotations

_BY_REASON: dict[str, list[str]] = {
    "Loop is lowered only as torch's nn.EmbeddingBag pattern (to embedding_bag); a general "
    "Loop (loop-carried tensors, sequences of arbitrary values) is out of scope": [
        "test_loop11", "test_loop13_seq", "test_loop16_seq_none",
    ],
    "the expanded Range function body is a general Loop (counter + accumulator), not an "
    "EmbeddingBag; the Range op itself is supported and tested by the non-expanded cases": [
        "test_range_float_type_positive_delta_expanded",
        "test_range_int32_type_negative_delta_expanded",
        "test_range_float16_type_positive_delta_expanded",
        "test_range_bfloat16_type_positive_delta_expanded",
    ],
    "float16/bfloat16 activations: the IR computes every float activation in fp32 (graph "
    "inputs are converted to float32, bfloat16 is not a numpy type), so the output dtype differs": [
        "test_range_float16_type_positive_delta", "test_range_bfloat16_type_positive_delta",
    ],
    "float64 output: the IR's float type is fp32 (EyeLike with dtype=DOUBLE yields float32)": [
        "test_eyelike_with_dtype",
    ],
    "training-mode Dropout: training_mode is a run-time graph input (and ratio > 0 draws random "
    "masks); accelsim simulates inference only": [
        "test_training_dropout", "test_training_dropout_default", "test_training_dropout_default_mask",
        "test_training_dropout_mask", "test_training_dropout_zero_ratio",
        "test_training_dropout_zero_ratio_mask",
    ],
    "sequence/optional-typed graph inputs: the IR has tensors only (sequences exist only inside "
    "a recognised EmbeddingBag Loop)": [
        "test_identity_sequence", "test_identity_opt",
    ],
    "the graph output is a Constant node's value: nothing runs on the accelerator, and the "
    "frontend rejects programs whose output is a load-time constant": [
        "test_constant",
    ],
}

EXCLUSIONS: dict[str, str] = {case: reason for reason, cases in _BY_REASON.items() for case in cases}
