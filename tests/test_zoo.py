"""Model zoo: quick builds of every builder, exported graphs, cards and the bundled models.

Each quick model is built once per session (lazily) into a temporary folder; the whole file
takes a couple of minutes on 2 cores, most of it in the dynamo exporter.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from accelsim import bundled
from benchmarks.models import bert, build_zoo, common, dlrm, lenet, resnet

QUICK_MODELS = ("lenet5", "dlrm", "dlrm_bag", "resnet18", "minilm_tweets", "tinybert_tweets", "bert_base")
_built: dict[str, Path] = {}


@pytest.fixture(autouse=True)
def _seeded_torch():
    """Every torch draw of a test (random initial weights, example tensors) from a fixed seed."""
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def zoo_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("zoo")


def built(name: str, zoo_dir: Path) -> Path:
    """Folder of the quick build of ``name`` (lenet5 goes through the CLI)."""
    if name not in _built:
        if name == "lenet5":
            assert build_zoo.main(["--out", str(zoo_dir), "--only", "lenet5", "--quick"]) == 0
            assert "lenet5" in json.loads((zoo_dir / "zoo.json").read_text())
        else:
            build_zoo.BUILDERS[name](zoo_dir / name, quick=True, seed=0)
        _built[name] = zoo_dir / name
    return _built[name]


def card_of(folder: Path) -> dict:
    return json.loads((folder / "card.json").read_text())


def onnx_files(folder: Path) -> list[Path]:
    return [p for p in (folder / common.LEGACY_FILE, folder / common.DYNAMO_FILE) if p.exists()]


def feeds_for(folder: Path, path: Path) -> dict[str, np.ndarray]:
    info = card_of(folder)["graphs"][path.name]
    with np.load(folder / info["eval_inputs_file"]) as npz:
        return {k: npz[k] for k in npz.files}


def metric(card: dict, outputs: np.ndarray, labels: np.ndarray) -> float:
    return dlrm.auc(outputs, labels) if card["metric"] == "auc" else common.accuracy(outputs, labels)


def torch_model_for(card: dict) -> torch.nn.Module:
    """Rebuild the torch architecture a card describes (random weights) to count parameters."""
    name = card["name"]
    if name == "lenet5":
        return lenet.LeNet5()
    if name == "resnet18":
        return resnet.ResNet18(num_classes=10)
    if name.startswith("dlrm"):
        cls = dlrm.DLRMBag if name == "dlrm_bag" else dlrm.DLRM
        return cls(tuple(card["table_rows"]), tuple(card["bottom_mlp"]), tuple(card["top_mlp"][1:]))
    c = card["config"]
    return bert.BertClassifier(bert.hf_classifier({
        "vocab_size": c["vocab"], "hidden_size": c["hidden"], "num_hidden_layers": c["layers"],
        "num_attention_heads": c["heads"], "intermediate_size": c["intermediate"],
        "max_position_embeddings": c["max_position"]}))


# --------------------------------------------------------------------------- architecture
def test_resnet18_has_torchvision_layout_and_count():
    model = resnet.ResNet18(num_classes=1000)
    assert common.count_params(model) == resnet.RESNET18_PARAMS_1000 == 11_689_512
    names = dict(model.named_parameters())
    for key, shape in {"conv1.weight": (64, 3, 7, 7), "bn1.weight": (64,), "layer1.0.conv1.weight": (64, 64, 3, 3),
                       "layer2.0.downsample.0.weight": (128, 64, 1, 1), "layer2.0.downsample.1.bias": (128,),
                       "layer4.1.bn2.weight": (512,), "fc.weight": (1000, 512), "fc.bias": (1000,)}.items():
        assert tuple(names[key].shape) == shape, key
    assert sum(isinstance(m, torch.nn.Conv2d) for m in model.modules()) == 20
    assert common.count_params(resnet.ResNet18(num_classes=10)) == 11_689_512 - 990 * 513


def test_lenet5_shape_and_count():
    model = lenet.LeNet5()
    assert common.count_params(model) == 61_706
    assert model(torch.zeros(3, 1, 32, 32)).shape == (3, 10)


def test_dlrm_interaction_is_reference_lower_triangle():
    model = dlrm.DLRM((5, 7), (13, 8, 16), (4, 1))
    generator = torch.Generator().manual_seed(5)
    x, e0, e1 = (torch.randn(2, 16, generator=generator) for _ in range(3))
    out = model.interact(x, [e0, e1])
    expected = torch.stack([(e0 * x).sum(1), (e1 * x).sum(1), (e1 * e0).sum(1)], 1)  # (1,0) (2,0) (2,1)
    torch.testing.assert_close(out, torch.cat([x, expected], 1))
    assert model.top_mlp[0].in_features == 16 + 3


def test_default_dlrm_size_has_over_a_million_rows():
    rows = dlrm.SIZES["default"].rows
    assert sum(rows) >= 1_000_000 and len(rows) == 26
    assert sum(100_000 <= r <= 400_000 for r in rows) >= 3 and sum(r < 1000 for r in rows) >= 8


def test_training_and_data_are_deterministic():
    data = lenet.load_digits_32(0)
    weights = []
    for _ in range(2):
        common.seed_everything(0)
        model = lenet.LeNet5()
        lenet.train_classifier(model, data["x_train"][:256], data["y_train"][:256], epochs=1, seed=0)
        weights.append(torch.cat([p.detach().ravel() for p in model.parameters()]))
    assert torch.equal(weights[0], weights[1])
    teacher = dlrm.Teacher(dlrm.SIZES["quick"].rows, 0, multi_hot=True)
    a, b = (teacher.sample(300, multi_hot=True, seed=0, stream=5) for _ in range(2))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[2], b[2])
    assert all(np.array_equal(x[0], y[0]) and np.array_equal(x[1], y[1]) for x, y in zip(a[1], b[1]))


# --------------------------------------------------------------------------- quick builds
@pytest.mark.parametrize("name", QUICK_MODELS)
def test_quick_build_files_checker_and_onnxruntime(name, zoo_dir):
    folder = built(name, zoo_dir)
    card = card_of(folder)
    for fname in ("model.onnx", "eval_inputs.npz", "eval_labels.npy", "eval_outputs_torch.npy", "card.json"):
        assert (folder / fname).is_file(), fname
    labels = np.load(folder / "eval_labels.npy")
    reference = np.load(folder / "eval_outputs_torch.npy")
    assert card["name"] == name and card["quick"] is True and card["eval_size"] == len(labels) == len(reference)
    files = onnx_files(folder)
    assert {p.name for p in files} == set(card["graphs"])
    assert card["dynamo_export"]["ok"] == ((folder / common.DYNAMO_FILE).exists())
    for path in files:
        onnx.checker.check_model(str(path))
        model = onnx.load(str(path), load_external_data=False)
        assert model.opset_import[0].version == 20 or any(o.version == 20 for o in model.opset_import)
        init = {i.name for i in model.graph.initializer}
        graph_inputs = [i.name for i in model.graph.input if i.name not in init]
        feeds = feeds_for(folder, path)
        assert sorted(feeds) == sorted(graph_inputs) == sorted(card["input_names"])
        out = common.run_onnx(path, feeds)
        assert out.shape == reference.shape
        assert common.max_rel_diff(out, reference) <= 1e-4, path.name
        assert metric(card, out, labels) == pytest.approx(card["graphs"][path.name][card["metric"]], abs=1e-9)
        assert common.op_histogram(model)["ops"] == card["graphs"][path.name]["ops"]
        if path.name == common.LEGACY_FILE:   # no parameter shares another's tensor via Identity
            assert not [n.name for n in model.graph.node if n.op_type == "Identity" and n.input[0] in init]
    assert card[card["metric"]] == card["graphs"]["model.onnx"][card["metric"]]


@pytest.mark.parametrize("name", QUICK_MODELS)
def test_card_param_count_matches_torch_model(name, zoo_dir):
    card = card_of(built(name, zoo_dir))
    model = torch_model_for(card)
    assert card["params"] == common.count_params(model)
    assert card["params_by_module"] == common.params_by_module(model)
    assert sum(card["params_by_module"].values()) == card["params"]


def test_dlrm_module_names_reach_the_graph(zoo_dir):
    card = card_of(built("dlrm", zoo_dir))
    assert {"bottom_mlp.0", "top_mlp.2", "emb.3"} <= set(card["params_by_module"])
    model = onnx.load(str(built("dlrm", zoo_dir) / "model.onnx"))
    init = {i.name for i in model.graph.initializer}
    assert {"bottom_mlp.0.weight", "top_mlp.2.bias", "emb.3.weight", "emb.25.weight"} <= init
    assert "Loop" not in card["graphs"]["model.onnx"]["ops"]
    assert card["graphs"]["model.onnx"]["ops"]["Gather"] >= 26


def test_dlrm_bag_legacy_graph_has_one_loop_per_table(zoo_dir):
    folder = built("dlrm_bag", zoo_dir)
    model = onnx.load(str(folder / "model.onnx"))
    loops = [n for n in model.graph.node if n.op_type == "Loop"]
    assert len(loops) == dlrm.NUM_TABLES
    body = next(a.g for a in loops[0].attribute if a.name == "body")
    assert {"Gather", "Slice", "ReduceSum"} <= {n.op_type for n in body.node}
    card = card_of(folder)
    assert card["graphs"]["model.onnx"]["subgraphs"]["Loop.body"]["instances"] == dlrm.NUM_TABLES
    assert card["input_names"] == ["dense_x", "offsets", *[f"indices_{k}" for k in range(26)]]
    offsets = np.load(folder / "eval_inputs.npz")["offsets"]
    assert offsets.shape == (26, card["eval_size"]) and np.all(offsets[:, 0] == 0)


def test_resnet18_exports_fold_or_keep_batchnorm(zoo_dir):
    card = card_of(built("resnet18", zoo_dir))
    legacy = card["graphs"]["model.onnx"]["ops"]
    assert "BatchNormalization" not in legacy and legacy["Conv"] == 20
    assert card["graphs"]["model.dynamo.onnx"]["ops"]["BatchNormalization"] == 20


def test_bert_cards_report_baseline_and_inputs(zoo_dir):
    for name in ("minilm_tweets", "tinybert_tweets", "bert_base"):
        card = card_of(built(name, zoo_dir))
        assert 0.0 < card["majority_baseline_accuracy"] < 1.0
        for info in card["graphs"].values():
            assert [(i["name"], i["dtype"]) for i in info["inputs"]] == [("input_ids", "int64"), ("attention_mask", "int64")]
        assert card["graphs"]["model.onnx"]["ops"]["LayerNormalization"] == 2 * card["config"]["layers"] + 1
    assert card_of(built("minilm_tweets", zoo_dir))["config"]["hidden"] == 384


# --------------------------------------------------------------------------- bundled models
def test_bundled_lenet_reproduces_its_accuracy():
    folder = bundled.path("lenet5")
    card = card_of(folder)
    assert card["accuracy"] >= 0.95 and card["quick"] is False
    with np.load(folder / "eval_inputs.npz") as npz:
        feeds = {k: npz[k] for k in npz.files}
    labels = np.load(folder / "eval_labels.npy")
    assert feeds["image"].shape == (len(labels), 1, 32, 32) and len(labels) >= 350
    logits = common.run_onnx(folder / "model.onnx", feeds)
    assert common.accuracy(logits, labels) == pytest.approx(card["accuracy"], abs=1e-12)
    assert common.accuracy(logits, labels) >= 0.95


def test_bundled_dlrm_small_reproduces_its_auc():
    folder = bundled.path("dlrm_small")
    card = card_of(folder)
    assert 10_000 <= card["total_rows"] <= 50_000 and card["auc"] > 0.7
    with np.load(folder / "eval_inputs.npz") as npz:
        feeds = {k: npz[k] for k in npz.files}
    assert feeds["dense_x"].dtype == np.float32 and feeds["sparse_ids"].dtype == np.int64
    assert np.all(feeds["sparse_ids"] < np.array(card["table_rows"]))
    ctr = common.run_onnx(folder / "model.onnx", feeds)
    assert dlrm.auc(ctr, np.load(folder / "eval_labels.npy")) == pytest.approx(card["auc"], abs=1e-12)
    assert card["params"] == common.count_params(torch_model_for(card))


def test_bundle_is_small_and_path_rejects_unknown_names():
    root = bundled.path("lenet5").parent
    total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    assert total < 5_000_000
    for name in bundled.NAMES:
        assert {"model.onnx", "eval_inputs.npz", "eval_labels.npy", "card.json"} <= {p.name for p in bundled.path(name).iterdir()}
    with pytest.raises(KeyError, match="no bundled model"):
        bundled.path("resnet18")
