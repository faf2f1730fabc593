"""fp16/bf16/int8 parameter storage: accelsim outputs vs a straightforward torch reference.

The reference quantises every parameter with torch's own conversions (``.half()``,
``.bfloat16()``, symmetric per-output-channel int8 written out in torch ops), writes the
dequantised values back into the ONNX initializers and runs onnxruntime in fp32. accelsim
must give the same outputs (fp32 accumulation on both sides).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper

from accelsim import executor
from frontend import load_onnx


def _torch_quantised(value: np.ndarray, fmt: str, channel_axis: int | None) -> np.ndarray:
    tensor = torch.from_numpy(value)
    if fmt == "fp16":
        return tensor.half().float().numpy()
    if fmt == "bf16":
        return tensor.bfloat16().float().numpy()
    if channel_axis is None:
        scale = tensor.abs().max() / 127
    else:
        dims = [d for d in range(tensor.dim()) if d != channel_axis]
        scale = tensor.abs().amax(dim=dims, keepdim=True) / 127
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    return (torch.clamp(torch.round(tensor / scale), -127, 127) * scale).numpy()


def _reference_outputs(model_path: Path, program, fmt: str, inputs) -> list[np.ndarray]:
    model = onnx.load(str(model_path))
    by_source = {p.source: p for p in program.parameters.values()}
    for index, init in enumerate(model.graph.initializer):
        param = by_source.get(init.name)
        if param is None:
            continue
        value = numpy_helper.to_array(init).astype(np.float32)
        quantised = _torch_quantised(value, fmt, param.channel_axis)
        model.graph.initializer[index].CopyFrom(numpy_helper.from_array(quantised, init.name))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, inputs)


class _Mlp(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.hidden = torch.nn.Linear(12, 32)
        self.out = torch.nn.Linear(32, 5)

    def forward(self, x):
        return self.out(torch.relu(self.hidden(x)))


@pytest.fixture(scope="module")
def mlp_model(tmp_path_factory) -> Path:
    torch.manual_seed(3)
    path = tmp_path_factory.mktemp("mlp") / "mlp.onnx"
    torch.onnx.export(_Mlp().eval(), (torch.randn(2, 12),), str(path), dynamo=False,
                      input_names=["x"], output_names=["logits"],
                      dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}})
    return path


@pytest.mark.parametrize("fmt", ["fp16", "bf16", "int8"])
def test_mlp_storage_matches_torch_reference(mlp_model, fmt):
    program = load_onnx(mlp_model)
    inputs = {"x": np.random.default_rng(1).normal(size=(64, 12)).astype(np.float32)}
    ours = executor.run(program, inputs, dtype=fmt).outputs["logits"]
    reference = _reference_outputs(mlp_model, program, fmt, inputs)[0]
    scale = float(np.abs(reference).max())
    assert np.abs(ours - reference).max() <= 1e-5 * scale
    fp32 = executor.run(program, inputs).outputs["logits"]
    assert not np.array_equal(ours, fp32)  # the storage format really changed the numbers


def test_bundled_lenet_storage_formats():
    from accelsim import bundled

    folder = bundled.path("lenet5")
    program = load_onnx(folder / "model.onnx")
    with np.load(folder / "eval_inputs.npz") as data:
        inputs = {k: data[k] for k in data.files}
    fp32 = executor.run(program, inputs).outputs
    (name,) = fp32
    for fmt in ("fp16", "bf16", "int8"):
        ours = executor.run(program, inputs, dtype=fmt).outputs[name]
        reference = _reference_outputs(folder / "model.onnx", program, fmt, inputs)[0]
        assert np.abs(ours - reference).max() <= 1e-4 * np.abs(reference).max()
        agreement = float(np.mean(ours.argmax(1) == fp32[name].argmax(1)))
        assert agreement >= 0.97, (fmt, agreement)
