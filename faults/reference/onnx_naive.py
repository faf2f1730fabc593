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
    """A parameter or mode the naive injector cannot handle."""


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
