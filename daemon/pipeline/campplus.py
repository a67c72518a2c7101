"""CAM++ speaker embedding network (Wang et al., Interspeech 2023, "CAM++: A Fast and Efficient
Network for Speaker Verification Using Context-Aware Masking"), written from the paper and the
layout of the released 3D-Speaker state dict (``campplus_cn_en_common.pt``, Apache-2.0), plus a
pyannote.audio ``Model`` wrapper so that pyannote's SpeakerDiarization pipeline can use it.

Architecture: a 2-D convolutional front end (FCM: two stages of residual blocks over 80-bin fbank),
a TDNN layer, three densely connected TDNN blocks whose layers gate a local convolution with
context-aware masks (global mean + 100-frame segment means), transition layers, statistics
pooling and a 192-d embedding layer ending in a non-affine BatchNorm (no ReLU after it).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def _bn_relu(channels: int) -> nn.Sequential:
    return nn.Sequential(OrderedDict(batchnorm=nn.BatchNorm1d(channels), relu=nn.ReLU()))


class _ResBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=(stride, 1), padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=(stride, 1), bias=False),
                nn.BatchNorm2d(planes),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class _FCM(nn.Module):
    """Front-end convolution module: (batch, mels, frames) -> (batch, 32 * mels/8, frames)."""

    def __init__(self, channels: int = 32, mels: int = 80) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.layer1 = nn.Sequential(
            _ResBlock(channels, channels, 2), _ResBlock(channels, channels, 1)
        )
        self.layer2 = nn.Sequential(
            _ResBlock(channels, channels, 2), _ResBlock(channels, channels, 1)
        )
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=(2, 1), padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.out_channels = channels * (mels // 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x.unsqueeze(1))))
        out = self.layer2(self.layer1(out))
        out = F.relu(self.bn2(self.conv2(out)))
        b, c, f, t = out.shape
        return out.reshape(b, c * f, t)


class _TDNN(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.linear = nn.Conv1d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False)
        self.nonlinear = _bn_relu(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.nonlinear(self.linear(x))
        return out


class _CAM(nn.Module):
    """Context-aware masking: a local conv gated by global + segment-level context."""

    def __init__(self, cin: int, cout: int, kernel: int, dilation: int, segment: int = 100) -> None:
        super().__init__()
        pad = (kernel - 1) // 2 * dilation
        self.linear_local = nn.Conv1d(cin, cout, kernel, padding=pad, dilation=dilation, bias=False)
        self.linear1 = nn.Conv1d(cin, cin // 2, 1)
        self.linear2 = nn.Conv1d(cin // 2, cout, 1)
        self.segment = segment

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        local = self.linear_local(x)
        frames = x.shape[-1]
        seg = F.avg_pool1d(x, self.segment, self.segment, ceil_mode=True)
        seg = seg.repeat_interleave(self.segment, dim=-1)[..., :frames]
        context = x.mean(-1, keepdim=True) + seg
        mask = torch.sigmoid(self.linear2(F.relu(self.linear1(context))))
        out: torch.Tensor = local * mask
        return out


class _DenseLayer(nn.Module):
    def __init__(self, cin: int, growth: int, bottleneck: int, kernel: int, dilation: int) -> None:
        super().__init__()
        self.nonlinear1 = _bn_relu(cin)
        self.linear1 = nn.Conv1d(cin, bottleneck, 1, bias=False)
        self.nonlinear2 = _bn_relu(bottleneck)
        self.cam_layer = _CAM(bottleneck, growth, kernel, dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.cam_layer(self.nonlinear2(self.linear1(self.nonlinear1(x))))
        return out


class _DenseBlock(nn.ModuleDict):
    def __init__(self, layers: int, cin: int, growth: int, kernel: int, dilation: int) -> None:
        super().__init__(
            {
                f"tdnnd{i + 1}": _DenseLayer(cin + i * growth, growth, 4 * growth, kernel, dilation)
                for i in range(layers)
            }
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.values():
            x = torch.cat([x, layer(x)], dim=1)
        return x


class _Transit(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.nonlinear = _bn_relu(cin)
        self.linear = nn.Conv1d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.linear(self.nonlinear(x))
        return out


class _Embed(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.linear = nn.Conv1d(cin, cout, 1, bias=False)
        self.nonlinear = nn.Sequential(OrderedDict(batchnorm=nn.BatchNorm1d(cout, affine=False)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.nonlinear(self.linear(x.unsqueeze(-1))).squeeze(-1)
        return out


class CAMPPlus(nn.Module):
    """(batch, frames, 80) mean-normalised fbank -> frame features, pooled into 192-d embeddings."""

    def __init__(self, mels: int = 80, embedding: int = 192) -> None:
        super().__init__()
        self.head = _FCM(mels=mels)
        channels = 128
        xv: OrderedDict[str, nn.Module] = OrderedDict(
            tdnn=_TDNN(self.head.out_channels, channels, 5, stride=2)
        )
        for i, (layers, dilation) in enumerate(((12, 1), (24, 2), (16, 2)), start=1):
            xv[f"block{i}"] = _DenseBlock(layers, channels, 32, 3, dilation)
            channels += layers * 32
            xv[f"transit{i}"] = _Transit(channels, channels // 2)
            channels //= 2
        xv["out_nonlinear"] = _bn_relu(channels)
        self.xvector = nn.ModuleDict(xv)
        self.dense = _Embed(channels * 2, embedding)
        self.dimension = embedding

    def frames(self, fbank: torch.Tensor) -> torch.Tensor:
        """(batch, frames, mels) -> (batch, 512, frames / 2)."""
        return self.back(self.front(fbank))

    def front(self, fbank: torch.Tensor) -> torch.Tensor:
        """The 2-D convolutional front end, (batch, frames, mels) -> (batch, 320, frames): half
        the network's time on torch, about a third on ONNX Runtime, and local (10 frames of
        context on either side), so a long stretch can go through it once and be cut into
        overlapping pieces for :meth:`back`."""
        out: torch.Tensor = self.head(fbank.transpose(1, 2))
        return out

    def back(self, front: torch.Tensor) -> torch.Tensor:
        """The TDNN layers, (batch, 320, frames) -> (batch, 512, frames / 2); their masks see
        the mean over the whole input."""
        x = front
        for module in self.xvector.values():
            x = module(x)
        return x

    def forward(self, fbank: torch.Tensor) -> torch.Tensor:
        x = self.frames(fbank)
        out: torch.Tensor = self.dense(torch.cat([x.mean(-1), x.std(-1)], dim=-1))
        return out

    def load_reference_state(self, state: dict[str, Any]) -> None:
        """Load the 3D-Speaker state dict (its ``xvector.dense.*`` lives in ``dense.*`` here)."""
        renamed = {
            (k.replace("xvector.dense.", "dense.") if k.startswith("xvector.dense.") else k): v
            for k, v in state.items()
        }
        self.load_state_dict(renamed, strict=True)
