"""The networks that regress the parameter vector from a 240x240 crop (no torchvision: written here).

`fast`: a MobileNetV2-like net (about 1.3M weights) for real time on a CPU; `resnet18`: a ResNet-18-like
net for the GPU. Both end in one linear layer whose weights start at zero and whose bias is the mean
frontal face at the default distance under ambient light, so an untrained encoder outputs that face.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from facetrack.model.layout import ParamLayout
from facetrack.render.camera import DEFAULT_TRANSLATION
from facetrack.render.sh import default_gamma

EXPRESSION_START = 0.01  # sigmoid output of an untrained encoder for every expression weight


def conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        self.use_res = stride == 1 and cin == cout
        layers = [conv_bn(cin, mid, 1)] if expand != 1 else []
        layers += [conv_bn(mid, mid, 3, stride, groups=mid), conv_bn(mid, cout, 1, act=False)]
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x) if self.use_res else self.block(x)


class FastNet(nn.Module):
    """MobileNetV2-like: 240x240 -> 8x8 x 384 -> pooled features."""

    SETTINGS = ((1, 16, 1, 1), (4, 24, 2, 2), (4, 32, 3, 2), (4, 64, 3, 2), (4, 96, 2, 1), (4, 160, 2, 2))
    features = 384

    def __init__(self) -> None:
        super().__init__()
        layers, cin = [conv_bn(3, 16, 3, 2)], 16
        for t, c, n, s in self.SETTINGS:
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        layers.append(conv_bn(cin, self.features, 1))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).mean(dim=(2, 3))


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.a = conv_bn(cin, cout, 3, stride)
        self.b = conv_bn(cout, cout, 3, 1, act=False)
        self.skip = conv_bn(cin, cout, 1, stride, act=False) if stride != 1 or cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.b(self.a(x)) + self.skip(x))


class ResNet18(nn.Module):
    """ResNet-18 layout (2-2-2-2 basic blocks, 64-512 channels)."""

    features = 512

    def __init__(self) -> None:
        super().__init__()
        layers = [conv_bn(3, 64, 7, 2), nn.MaxPool2d(3, 2, 1)]
        cin = 64
        for c, s in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers += [BasicBlock(cin, c, s), BasicBlock(c, c, 1)]
            cin = c
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).mean(dim=(2, 3))


BACKBONES = {"fast": FastNet, "resnet18": ResNet18}


def output_affine(layout: ParamLayout) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-entry scale and offset turning the head's raw output into parameters of sensible size."""
    sl = layout.slices()
    scale, bias = torch.ones(layout.size), torch.zeros(layout.size)
    scale[sl["rot"]] = 0.5
    scale[sl["trans"]] = torch.tensor([5.0, 5.0, 20.0])
    bias[sl["trans"]] = torch.tensor(DEFAULT_TRANSLATION)
    scale[sl["gamma"]] = 0.5
    bias[sl["gamma"]] = default_gamma(1)[0].reshape(-1)
    bias[sl["alpha_exp"]] = math.log(EXPRESSION_START / (1 - EXPRESSION_START))
    return scale, bias


class Encoder(nn.Module):
    """Crop (B, 3, 240, 240), RGB in [0, 1] -> parameter vector (B, D) in `layout` order."""

    def __init__(self, layout: ParamLayout, backbone: str = "fast") -> None:
        super().__init__()
        self.layout, self.backbone_name = layout, backbone
        self.backbone = BACKBONES[backbone]()
        self.head = nn.Linear(self.backbone.features, layout.size)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        scale, bias = output_affine(layout)
        self.register_buffer("out_scale", scale)
        self.register_buffer("out_bias", bias)
        self.exp = layout.slices()["alpha_exp"]

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.head(self.backbone((image - 0.5) / 0.25)) * self.out_scale + self.out_bias
        return torch.cat([x[:, : self.exp.start], torch.sigmoid(x[:, self.exp]), x[:, self.exp.stop :]], dim=1)
