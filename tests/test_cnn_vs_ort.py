"""CNNs end to end: accelsim fp32 golden inference vs onnxruntime on the same ONNX file.

Acceptance (issue 2): max |Δ| ≤ 1e-4 relative to the output scale (max |ORT output|) and
top-1 identical on every sample, for both torch exporters — legacy (folds BatchNorm itself)
and dynamo (keeps BatchNormalization, which the frontend folds into the conv).

Models: small CNNs exported here from torch (conv/BN/ReLU/max-pool/avg-pool/grouped conv/
linear, random BN statistics), the bundled LeNet-5 (when built) and the zoo's ResNet-18
(quick build: untrained weights, 32×32 digits).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from accelsim import executor
from frontend import load_onnx

import torch
nn = torch.nn

REPO = Path(__file__).resolve().parents[1]
BUNDLED_LENET = REPO / "accelsim" / "bundled" / "lenet5"


def ort_run(path: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def compare(path: Path, feeds: dict[str, np.ndarray]) -> dict[str, float]:
    """Run both engines; assert the acceptance bounds; return the agreement numbers."""
    program = load_onnx(path)
    ours = executor.run(program, feeds).outputs
    refs = ort_run(path, feeds)
    stats = {}
    for name, ref in zip(program.output_names, refs):
        got = ours[name]
        assert got.shape == ref.shape and got.dtype == ref.dtype
        scale = float(np.max(np.abs(ref)))
        max_abs = float(np.max(np.abs(got - ref)))
        assert max_abs <= 1e-4 * scale, f"{path.name}:{name}: max|Δ| {max_abs:.3g} > 1e-4 × {scale:.3g}"
        flips = int(np.sum(np.argmax(got, axis=-1) != np.argmax(ref, axis=-1)))
        assert flips == 0, f"{path.name}:{name}: top-1 differs on {flips} of {len(ref)} samples"
        stats[name] = max_abs / scale
        print(f"{path.parent.name}/{path.name}:{name}: max|Δ|/scale {max_abs / scale:.2e} "
              f"on {len(ref)} samples, top-1 identical")
    return stats


class SmallCNN(nn.Module):
    """(B,1,16,16) -> conv+BN+ReLU -> maxpool -> conv(no bias)+BN+ReLU -> avgpool
    -> grouped strided conv + ReLU -> BN (after a non-conv: stays unfolded) -> flatten -> 10."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(16)
        self.conv3 = nn.Conv2d(16, 16, 3, stride=2, padding=1, groups=4)
        self.bn3 = nn.BatchNorm2d(16)
        self.fc = nn.Linear(16 * 2 * 2, 10)

    def forward(self, image):
        x = nn.functional.max_pool2d(torch.relu(self.bn1(self.conv1(image))), 2)
        x = nn.functional.avg_pool2d(torch.relu(self.bn2(self.conv2(x))), 2)
        x = self.bn3(torch.relu(self.conv3(x)))
        return self.fc(torch.flatten(x, 1))


def _randomise_batchnorm(model: nn.Module, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            c = module.num_features
            module.running_mean.copy_(torch.randn(c, generator=generator) * 0.5)
            module.running_var.copy_(torch.rand(c, generator=generator) * 2 + 0.2)
            module.weight.data.copy_(torch.randn(c, generator=generator) * 0.5 + 1)
            module.bias.data.copy_(torch.randn(c, generator=generator) * 0.2)


def export_both(model: nn.Module, example: tuple, folder: Path) -> dict[str, Path]:
    """Export with the legacy exporter and with dynamo (unoptimised: BatchNorm kept)."""
    import contextlib
    import io
    import warnings

    paths = {"legacy": folder / "legacy.onnx", "dynamo": folder / "dynamo.onnx"}
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, example, str(paths["legacy"]), dynamo=False,
                          input_names=["image"], output_names=["logits"],
                          dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}})
        torch.onnx.export(model, example, str(paths["dynamo"]), dynamo=True, optimize=False,
                          external_data=False, input_names=["image"], output_names=["logits"],
                          dynamic_shapes=({0: torch.export.Dim("batch")},))
    for path in paths.values():
        onnx.checker.check_model(str(path))
    return paths


@pytest.fixture(scope="module")
def small_cnn_files(tmp_path_factory) -> tuple[dict[str, Path], np.ndarray]:
    torch.manual_seed(0)
    model = SmallCNN()
    with torch.no_grad():
        _randomise_batchnorm(model, 1)
    model.eval()
    paths = export_both(model, (torch.randn(2, 1, 16, 16),), tmp_path_factory.mktemp("small_cnn"))
    x = np.random.default_rng(0).standard_normal((64, 1, 16, 16)).astype(np.float32)
    return paths, x


@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
def test_small_cnn_matches_onnxruntime(small_cnn_files, exporter):
    files, x = small_cnn_files
    compare(files[exporter], {"image": x})


def test_dynamo_batchnorm_is_folded_into_convs(small_cnn_files):
    files, _ = small_cnn_files
    graph = onnx.load(str(files["dynamo"])).graph
    ops = [node.op_type for node in graph.node]
    assert ops.count("BatchNormalization") == 3 and ops.count("Conv") == 3
    program = load_onnx(files["dynamo"])
    histogram = program.op_histogram()
    # bn1, bn2 follow a conv; bn3 follows a ReLU and must stay a batch_norm instruction.
    assert histogram.get("batch_norm") == 1 and histogram["conv"] == 3
    convs = [inst for inst in program.instructions if inst.op == "conv"]
    assert all(inst.inputs[2] for inst in convs), "every folded conv needs a bias"
    folded = [p for p in program.parameters.values() if "BatchNorm" in p.source]
    assert {p.role for p in folded} == {"weight", "bias"} and len(folded) == 4
    assert program.parameters["conv2.bias"].component == "conv2"  # created by the fold
    assert program.parameters["conv2.weight"].channel_axis == 0
    bn3 = {p.role for p in program.parameters.values() if p.component == "bn3"}
    assert {"norm_scale", "norm_bias"} <= bn3


def test_bundled_lenet_matches_onnxruntime():
    # the bundle ships the legacy export only; the zoo test covers dynamo
    with np.load(BUNDLED_LENET / "eval_inputs.npz") as data:
        feeds = {key: data[key] for key in data.files}
    compare(BUNDLED_LENET / "model.onnx", feeds)


@pytest.fixture(scope="module")
def resnet_exports(tmp_path_factory) -> tuple[dict[str, Path], np.ndarray]:
    """The zoo's ResNet-18 module, random weights and BN statistics, exported here."""
    from benchmarks.models.resnet import ResNet18

    torch.manual_seed(0)
    model = ResNet18(num_classes=10)
    with torch.no_grad():
        _randomise_batchnorm(model, 2)
    model.eval()
    paths = export_both(model, (torch.randn(2, 3, 32, 32),), tmp_path_factory.mktemp("resnet_own"))
    x = np.random.default_rng(1).standard_normal((16, 3, 32, 32)).astype(np.float32)
    return paths, x


@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
def test_resnet18_random_bn_matches_onnxruntime(resnet_exports, exporter):
    files, x = resnet_exports
    compare(files[exporter], {"image": x})
    histogram = load_onnx(files[exporter]).op_histogram()
    assert "batch_norm" not in histogram and histogram["conv"] == 20


@pytest.fixture(scope="module")
def resnet_quick(tmp_path_factory) -> Path:
    from benchmarks.models import resnet

    folder = tmp_path_factory.mktemp("resnet18")
    card = resnet.build(folder, quick=True)
    assert card["dynamo_export"]["ok"], card["dynamo_export"]["error"]
    return folder


@pytest.mark.parametrize("name", ["model.onnx", "model.dynamo.onnx"])
def test_resnet18_quick_matches_onnxruntime(resnet_quick, name):
    inputs_file = resnet_quick / "eval_inputs.npz"
    if name != "model.onnx" and (resnet_quick / "eval_inputs.dynamo.npz").exists():
        inputs_file = resnet_quick / "eval_inputs.dynamo.npz"
    with np.load(inputs_file) as data:
        feeds = {key: data[key] for key in data.files}
    compare(resnet_quick / name, feeds)
    if name == "model.dynamo.onnx":
        histogram = load_onnx(resnet_quick / name).op_histogram()
        assert "batch_norm" not in histogram and histogram["conv"] == 20
