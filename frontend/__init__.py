"""ONNX frontend: ``load_onnx(path) -> accelsim.ir.Program``.

Imports accelsim (IR and kernels, for constant folding) only.
"""
from frontend.loader import load_onnx, lower_model, read_model
from frontend.registry import FrontendError, RULES

__all__ = ["load_onnx", "lower_model", "read_model", "FrontendError", "RULES"]
