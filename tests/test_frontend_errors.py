"""Bad ONNX input fails with one clear line; good input lowers with stable names."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from accelsim import executor
from frontend import FrontendError, load_onnx


def _gemm_model(extra_nodes=(), drop_input: bool = False) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.normal(size=(4, 3)).astype(np.float32), "proj.weight")
    bias = numpy_helper.from_array(rng.normal(size=(3,)).astype(np.float32), "proj.bias")
    nodes = [helper.make_node("Gemm", ["x", "proj.weight", "proj.bias"], ["y"], name="/proj/Gemm")]
    nodes += list(extra_nodes)
    inputs = [] if drop_input else [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])]
    out_name = nodes[-1].output[0]
    graph = helper.make_graph(
        nodes, "g", inputs, [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, None)],
        initializer=[weight, bias],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])


def test_good_model_runs_and_names_parameters(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(_gemm_model(), path)
    program = load_onnx(path)
    assert set(program.parameters) == {"proj.weight", "proj.bias"}
    assert program.parameters["proj.weight"].component == "proj"
    assert program.parameters["proj.weight"].channel_axis == 1
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    y = executor.run(program, {"x": x}).outputs["y"]
    w = program.parameter_values["proj.weight"]
    np.testing.assert_allclose(y, x @ w + program.parameter_values["proj.bias"], rtol=1e-6)


def test_unsupported_ops_are_listed_with_node_names(tmp_path):
    nodes = [
        helper.make_node("Unique", ["y"], ["u"], name="uniq_0"),
        helper.make_node("NonZero", ["u"], ["nz1"], name="nz_a"),
        helper.make_node("NonZero", ["nz1"], ["nz2"], name="nz_b"),
    ]
    path = tmp_path / "m.onnx"
    onnx.save(_gemm_model(nodes), path)
    with pytest.raises(FrontendError) as info:
        load_onnx(path)
    message = str(info.value)
    assert "\n" not in message
    assert "NonZero (nz_a, nz_b)" in message and "Unique (uniq_0)" in message


def test_truncated_file_is_one_line(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(_gemm_model(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(FrontendError, match="truncated or corrupt"):
        load_onnx(path)


def test_missing_file(tmp_path):
    with pytest.raises(FrontendError, match="no such ONNX file"):
        load_onnx(tmp_path / "absent.onnx")


@pytest.mark.parametrize("escape", ["../weights.bin", "ABSOLUTE"])
def test_external_data_outside_folder_is_refused(tmp_path, escape):
    folder = tmp_path / "model"
    folder.mkdir()
    onnx.save(_gemm_model(), folder / "m.onnx", save_as_external_data=True,
              location="weights.bin", size_threshold=0)
    (folder / "weights.bin").rename(tmp_path / "weights.bin")
    target = str(tmp_path / "weights.bin") if escape == "ABSOLUTE" else escape
    model = onnx.load(str(folder / "m.onnx"), load_external_data=False)
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = target
    (folder / "m.onnx").write_bytes(model.SerializeToString())
    with pytest.raises(FrontendError, match="outside the model's folder"):
        load_onnx(folder / "m.onnx")


def test_external_data_inside_folder_loads(tmp_path):
    onnx.save(_gemm_model(), tmp_path / "m.onnx", save_as_external_data=True, location="m.onnx.data", size_threshold=0)
    program = load_onnx(tmp_path / "m.onnx")
    assert program.parameters["proj.weight"].shape == (4, 3)


def test_missing_input_is_one_line(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(_gemm_model(drop_input=True), path, )
    with pytest.raises(FrontendError, match=r"reads tensor 'x' that no graph input"):
        load_onnx(path)


def test_missing_runtime_input_is_named(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(_gemm_model(), path)
    program = load_onnx(path)
    with pytest.raises(ValueError, match="missing graph input"):
        executor.run(program, {})


def test_cli_reports_one_line_without_traceback(tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"\x08\x07garbage-not-a-model" * 3)
    env = dict(os.environ)
    result = subprocess.run([sys.executable, "-m", "cli", "inspect", str(path)],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("accelsim inspect: error:"), result.stderr


def test_frontend_error_is_a_user_error():
    from accelsim.errors import UserError

    assert issubclass(FrontendError, UserError) and issubclass(FrontendError, ValueError)


def test_broken_frontend_invariant_is_a_bug_not_a_user_error():
    from frontend.registry import LoweringContext

    ctx = LoweringContext(initializers={}, parameter_names=set(), value_shapes={}, opset=13)
    with pytest.raises(RuntimeError, match="internal:") as info:
        ctx.replace_parameter_value("absent", np.zeros(1, np.float32), source="test")
    assert not isinstance(info.value, FrontendError)
    with pytest.raises(RuntimeError, match="internal:"):
        ctx.emit("no_such_ir_op", ["a"], ["b"], {}, name="n")
