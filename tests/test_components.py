"""Component labels: from initializer names, legacy node names and dynamo scope metadata."""
from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from frontend import lower_model
from frontend.components import component_label, module_path_of_node


def test_labels_from_names():
    assert component_label("layer2.0.conv1.weight", "") == "layer2.0.conv1"
    assert component_label("emb.3.weight", "") == "embedding.table3"
    assert component_label("bert.encoder.layer.3.attention.self.query.weight", "") == (
        "encoder.3.attention.query")
    assert component_label("bert.encoder.layer.3.output.dense.bias", "") == "encoder.3.ffn.out"
    assert component_label("onnx::Conv_193", "/layer1/layer1.0/conv1/Conv") == "layer1.0.conv1"
    assert module_path_of_node("/bert/encoder/layer.0/attention/self/query/MatMul") == (
        "bert.encoder.layer.0.attention.self.query")
    assert component_label("onnx::MatMul_714", "/bert/encoder/layer.0/attention/self/query/MatMul") == (
        "encoder.0.attention.query")
    assert component_label("fc.weight", "", rewrites=[(r"^fc$", "head")]) == "head"


def test_dynamo_scope_metadata_names_auto_named_weights():
    weight = numpy_helper.from_array(np.ones((4, 3), np.float32), "val_12")
    node = helper.make_node("MatMul", ["x", "val_12"], ["y"], name="node_MatMul_99")
    scopes = "['', 'bert', 'bert.encoder', 'bert.encoder.layer.2', 'bert.encoder.layer.2.intermediate', 'bert.encoder.layer.2.intermediate.dense', 'linear_4']"
    node.metadata_props.add(key="pkg.torch.onnx.name_scopes", value=scopes)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=[weight])
    program = lower_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)]))
    (param,) = program.parameters.values()
    assert param.component == "encoder.2.ffn.in"
    assert param.name == "encoder.2.ffn.in.weight" and param.source == "val_12"
