"""LeNet-5 on scikit-learn's 8x8 digits upsampled to 32x32.

Graph input ``image``: float32 (B, 1, 32, 32), pixel values normalised with the training
split's mean/std; output ``logits``: float32 (B, 10). Eval set = the 20 % stratified test
split (360 images), fixed by the seed.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import common

IMAGE_SIZE = 32
NUM_CLASSES = 10
MIN_ACCURACY = 0.95


class LeNet5(nn.Module):
    """Classic LeNet-5: conv 6@5x5 -> maxpool -> conv 16@5x5 -> maxpool -> 120 -> 84 -> 10 (ReLU).

    (B, 1, 32, 32) -> conv1 (B, 6, 28, 28) -> pool (B, 6, 14, 14) -> conv2 (B, 16, 10, 10)
    -> pool (B, 16, 5, 5) -> flatten 400 -> fc1 120 -> fc2 84 -> fc3 10 logits. 61,706 params.
    """

    def __init__(self, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, kernel_size=5)
        self.conv2 = nn.Conv2d(6, 16, kernel_size=5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(image)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


def load_digits_32(seed: int, *, channels: int = 1) -> dict[str, np.ndarray]:
    """Digits as float32 (N, channels, 32, 32), bilinear-upsampled from 8x8 and normalised.

    Returns ``x_train, y_train, x_test, y_test`` (labels int64); the stratified 80/20 split
    (1437 / 360 images) and the normalisation statistics depend only on ``seed``.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = digits.images.astype(np.float32) / 16.0                      # (1797, 8, 8) in [0, 1]
    with torch.no_grad():
        up = F.interpolate(torch.from_numpy(images)[:, None], size=(IMAGE_SIZE, IMAGE_SIZE),
                           mode="bilinear", align_corners=False).numpy()
    labels = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(up, labels, test_size=0.2, random_state=seed, stratify=labels)
    mean, std = float(x_tr.mean()), float(x_tr.std())
    norm = lambda a: np.ascontiguousarray(np.repeat((a - mean) / std, channels, axis=1), dtype=np.float32)
    return {"x_train": norm(x_tr), "y_train": y_tr, "x_test": norm(x_te), "y_test": y_te,
            "mean": np.float32(mean), "std": np.float32(std)}


def train_classifier(model: nn.Module, x: np.ndarray, y: np.ndarray, *, epochs: int, seed: int,
                     lr: float = 1e-3, batch: int = 64, weight_decay: float = 0.0) -> list[float]:
    """Adam + cross-entropy over seeded shuffles; returns the mean loss of each epoch."""
    gen = common.rng(seed, 11)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    losses = []
    model.train()
    for _ in range(epochs):
        order = torch.from_numpy(gen.permutation(len(x)))
        total = 0.0
        for i in range(0, len(x), batch):
            idx = order[i:i + batch]
            loss = F.cross_entropy(model(xt[idx]), yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        losses.append(total / len(x))
    model.eval()
    return losses


def build(out_dir: Path, *, quick: bool = False, seed: int = 0) -> dict:
    """Train LeNet-5 (30 epochs; 4 in quick mode), export, evaluate, write the card.

    Full mode asserts test accuracy >= 0.95 on the exported ``model.onnx``.
    """
    t_start = time.perf_counter()
    common.seed_everything(seed, threads=1)
    data = load_digits_32(seed)
    model = LeNet5()
    epochs = 4 if quick else 30
    losses = train_classifier(model, data["x_train"], data["y_train"], epochs=epochs, seed=seed)

    x_eval, y_eval = data["x_test"], data["y_test"]
    torch_out = common.torch_eval(model, [x_eval])
    axes, shapes = common.batch_dynamic(["image"], ["logits"])
    card = common.finish_model(
        out_dir, name="lenet5", model=model, example_args=(torch.from_numpy(x_eval[:2]),),
        eval_inputs={"image": x_eval}, eval_labels=y_eval, input_names=["image"], output_names=["logits"],
        dynamic_axes=axes, dynamic_shapes=shapes, metric="accuracy", metric_fn=common.accuracy,
        torch_outputs=torch_out, seed=seed, quick=quick, t_start=t_start,
        extra={"family": "cnn", "task": "digits classification (sklearn load_digits, 10 classes)",
               "preprocessing": {"upsample": "bilinear 8x8 -> 32x32, align_corners=False",
                                 "scale": "pixel/16, then (x - mean) / std",
                                 "mean": float(data["mean"]), "std": float(data["std"])},
               "training": {"epochs": epochs, "optimizer": "Adam lr=1e-3 batch=64",
                            "train_size": int(len(data["y_train"])), "final_loss": losses[-1]}})
    if not quick and card["accuracy"] < MIN_ACCURACY:
        raise AssertionError(f"lenet5 test accuracy {card['accuracy']:.4f} < {MIN_ACCURACY}")
    return card
