"""ResNet-18 in plain torch with torchvision's exact layer layout and parameter names.

``conv1, bn1, layer1.0.conv1, layer1.0.bn1, ..., layer2.0.downsample.0/1, ..., fc``:
11,689,512 parameters at 1000 classes (torchvision's count); the zoo model uses 10 classes
(11,181,642 parameters) and is trained briefly on the digits at 32x32 replicated to 3 channels.

Graph input ``image``: float32 (B, 3, 32, 32), normalised like LeNet's input; output
``logits``: float32 (B, 10). At 32x32 the spatial sizes are 16 (conv1) -> 8 (maxpool, layer1)
-> 4 (layer2) -> 2 (layer3) -> 1 (layer4). The legacy export folds BatchNorm into Conv; the
dynamo export keeps ``BatchNormalization`` nodes.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn as nn

from . import common
from .lenet import load_digits_32, train_classifier

RESNET18_PARAMS_1000 = 11_689_512


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN pairs plus identity (or 1x1 conv-BN ``downsample``) shortcut."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18(nn.Module):
    """torchvision ``resnet18`` layout: (B, 3, H, W) -> (B, num_classes) logits."""

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, 2)
        self.layer2 = self._make_layer(128, 2, stride=2)
        self.layer3 = self._make_layer(256, 2, stride=2)
        self.layer4 = self._make_layer(512, 2, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512, num_classes)
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes, kernel_size=1, stride=stride, bias=False),
                                       nn.BatchNorm2d(planes))
        layers = [BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        layers += [BasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(image))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def build(out_dir: Path, *, quick: bool = False, seed: int = 0) -> dict:
    """Train ResNet-18 (10 classes) on 32x32 digits: 6 epochs (quick: 0 epochs, eval on 64)."""
    t_start = time.perf_counter()
    common.seed_everything(seed, threads=2)
    data = load_digits_32(seed, channels=3)
    model = ResNet18(num_classes=10)
    epochs = 0 if quick else 6
    losses = train_classifier(model, data["x_train"], data["y_train"], epochs=epochs, seed=seed,
                              lr=1e-3, batch=64, weight_decay=1e-4)
    model.eval()
    perturbed = common.distinct_constant_tensors(model, seed)   # only untrained (quick) tensors
    n_eval = 64 if quick else len(data["y_test"])
    x_eval, y_eval = data["x_test"][:n_eval], data["y_test"][:n_eval]
    torch_out = common.torch_eval(model, [x_eval], batch=128)
    axes, shapes = common.batch_dynamic(["image"], ["logits"])
    return common.finish_model(
        out_dir, name="resnet18", model=model, example_args=(torch.from_numpy(x_eval[:2]),),
        eval_inputs={"image": x_eval}, eval_labels=y_eval, input_names=["image"], output_names=["logits"],
        dynamic_axes=axes, dynamic_shapes=shapes, metric="accuracy", metric_fn=common.accuracy,
        torch_outputs=torch_out, seed=seed, quick=quick, t_start=t_start, keep_batchnorm=True,
        extra={"family": "cnn", "task": "digits classification at 32x32, 3 channels (replicated gray)",
               "params_at_1000_classes": RESNET18_PARAMS_1000, "perturbed_constant_tensors": perturbed,
               "preprocessing": {"upsample": "bilinear 8x8 -> 32x32", "channels": "gray replicated x3",
                                 "mean": float(data["mean"]), "std": float(data["std"])},
               "training": {"epochs": epochs, "optimizer": "Adam lr=1e-3 wd=1e-4 batch=64",
                            "train_size": int(len(data["y_train"])),
                            "final_loss": losses[-1] if losses else None},
               "notes": "legacy export folds BatchNorm into Conv (eval mode); the dynamo file keeps "
                        "BatchNormalization (exported with the onnxscript BN-fusion rule disabled) "
                        "and writes ReduceMean+Reshape for avgpool+flatten"})
