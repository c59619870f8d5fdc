"""MODNet weights (numpy) -> the matte-only ONNX graph, built with onnx.helper, no PyTorch.

Mirrors `trt_modnet.modnet.model` and what `trt_modnet.modnet.export` writes: the backbone's batch norms
folded into its convolutions, IBNorm as batch norm on the first half of the channels and instance norm
(no affine) on the rest, ReLU6 as Clip, the SE block as pooling, two bias-free linear layers and a gate,
and bilinear `align_corners=False` resizing as `Resize` with `half_pixel` coordinates.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from trt_modnet.graph.modelfile import INPUT_NAME, OUTPUT_NAME

OPSET = 17
_EPS = 1e-5
# (expansion t, output channels c, repeats n, first stride s): MobileNetV2 as in trt_modnet.modnet.backbone.
_INVERTED_RESIDUAL_SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                              (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))  # fmt: skip
_TAPS = (1, 3, 6, 13, 18)
_HR = 32

Weights = Mapping[str, np.ndarray]


class ShapeMismatch(ValueError):
    """A tensor does not fit where MODNet uses it (ONNX Runtime does not always notice)."""


class _Graph:
    """Accumulates nodes and initializers under unique names."""

    def __init__(self, weights: Weights) -> None:
        self.w = weights
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._count = 0
        self.channels: dict[str, int] = {INPUT_NAME: 3}

    def const(self, value: np.ndarray, hint: str) -> str:
        name = self._name(hint)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, op_type: str, inputs: list[str], hint: str, outputs: int = 1, **attrs: object) -> str:
        names = [self._name(f"{hint}/{op_type}") for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, names, **attrs))
        known = [self.channels[i] for i in inputs if i in self.channels]
        if known:
            self.channels[names[0]] = sum(known) if op_type == "Concat" else known[0]
        return names[0] if outputs == 1 else names  # type: ignore[return-value]

    def _name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def conv(self, x: str, prefix: str, stride: int = 1, groups: int = 1, bn: str | None = None) -> str:
        """Conv `prefix.weight` (+ `prefix.bias`), with the batch norm at `bn` folded in."""
        weight = self.w[f"{prefix}.weight"].astype(np.float32)
        bias = self.w.get(f"{prefix}.bias")
        bias = np.zeros(weight.shape[0], np.float32) if bias is None else bias.astype(np.float32)
        if bn is not None:
            # float32, in the PyTorch exporter's order: the two graphs then hold (nearly) equal weights.
            scale = self.w[f"{bn}.weight"] / np.sqrt(self.w[f"{bn}.running_var"] + np.float32(_EPS))
            weight = weight * scale[:, None, None, None]
            bias = (bias - self.w[f"{bn}.running_mean"]) * scale + self.w[f"{bn}.bias"]
        if weight.shape[1] * groups != self.channels[x]:
            raise ShapeMismatch(
                f"{prefix}.weight is {weight.shape}, where MODNet has {self.channels[x]} channels"
            )
        k = weight.shape[2]
        y = self.op(
            "Conv",
            [x, self.const(weight, prefix), self.const(bias, prefix)],
            prefix,
            kernel_shape=[k, k],
            strides=[stride, stride],
            pads=[k // 2] * 4,
            group=groups,
        )
        self.channels[y] = weight.shape[0]
        return y

    def relu6(self, x: str, hint: str) -> str:
        lo = self.const(np.array(0.0, np.float32), "zero")
        hi = self.const(np.array(6.0, np.float32), "six")
        return self.op("Clip", [x, lo, hi], hint)

    def up(self, x: str, scale: float, hint: str) -> str:
        scales = self.const(np.array([1, 1, scale, scale], np.float32), f"{hint}/scales")
        return self.op(
            "Resize", [x, "", scales], hint, mode="linear", coordinate_transformation_mode="half_pixel"
        )

    def cat(self, xs: list[str], hint: str) -> str:
        return self.op("Concat", xs, hint, axis=1)


def _conv_ibn_relu(g: _Graph, x: str, prefix: str, stride: int = 1, *, ibn: bool = True) -> str:
    """trt_modnet.modnet.model.Conv2dIBNormRelu (with_relu=True) or, without `ibn`, a bare head conv."""
    y = g.conv(x, f"{prefix}.layers.0", stride)
    if not ibn:
        return y
    bn = f"{prefix}.layers.1.bnorm"
    half = g.w[f"{bn}.weight"].shape[0]
    channels = g.w[f"{prefix}.layers.0.weight"].shape[0]
    sizes = g.const(np.array([half, channels - half], np.int64), f"{prefix}/split")
    b, i = g.op("Split", [y, sizes], prefix, outputs=2, axis=1)
    if not 0 < half < channels or g.w[f"{bn}.running_var"].shape != (half,):
        raise ShapeMismatch(f"{bn} has {half} channels of the {channels} that MODNet normalises")
    b = g.op(
        "BatchNormalization",
        [b, *(g.const(g.w[f"{bn}.{k}"], bn) for k in ("weight", "bias", "running_mean", "running_var"))],
        bn,
        epsilon=_EPS,
    )
    ones = g.const(np.ones(channels - half, np.float32), f"{prefix}/inorm")
    zeros = g.const(np.zeros(channels - half, np.float32), f"{prefix}/inorm")
    i = g.op("InstanceNormalization", [i, ones, zeros], f"{prefix}/inorm", epsilon=_EPS)
    return g.op("Relu", [g.cat([b, i], prefix)], prefix)


def _backbone(g: _Graph, x: str) -> list[str]:
    """MobileNetV2 features; returns the 1/2, 1/4, 1/8, 1/16 and 1/32 taps."""
    f = "backbone.model.features"
    taps: list[str] = []
    x = g.relu6(g.conv(x, f"{f}.0.0", stride=2, bn=f"{f}.0.1"), f"{f}.0")
    channels, index = 32, 1
    for t, c, n, s in _INVERTED_RESIDUAL_SETTING:
        for r in range(n):
            x = _inverted_residual(g, x, f"{f}.{index}.conv", t, s if r == 0 else 1, channels == c)
            if index in _TAPS:
                taps.append(x)
            channels, index = c, index + 1
    x = g.relu6(g.conv(x, f"{f}.{index}.0", bn=f"{f}.{index}.1"), f"{f}.{index}")
    taps.append(x)
    return taps


def _inverted_residual(g: _Graph, x: str, p: str, expansion: int, stride: int, same: bool) -> str:
    y, i = x, 0
    if expansion != 1:
        y, i = g.relu6(g.conv(y, f"{p}.0", bn=f"{p}.1"), p), 3
    hidden = g.w[f"{p}.{i}.weight"].shape[0]
    y = g.relu6(g.conv(y, f"{p}.{i}", stride, groups=hidden, bn=f"{p}.{i + 1}"), p)
    y = g.conv(y, f"{p}.{i + 3}", bn=f"{p}.{i + 4}")
    return g.op("Add", [x, y], p) if stride == 1 and same else y


def _se_block(g: _Graph, x: str) -> str:
    p = "lr_branch.se_block.fc"
    squeeze, excite = g.w[f"{p}.0.weight"].shape, g.w[f"{p}.2.weight"].shape
    if squeeze[1] != g.channels[x] or excite != (g.channels[x], squeeze[0]):
        raise ShapeMismatch(
            f"{p} weights are {squeeze} and {excite}, where MODNet has {g.channels[x]} channels"
        )
    w = g.op("Flatten", [g.op("GlobalAveragePool", [x], p)], p, axis=1)
    w = g.op("Relu", [g.op("MatMul", [w, g.const(g.w[f"{p}.0.weight"].T, p)], p)], p)
    w = g.op("Sigmoid", [g.op("MatMul", [w, g.const(g.w[f"{p}.2.weight"].T, p)], p)], p)
    axes = g.const(np.array([2, 3], np.int64), p)
    return g.op("Mul", [x, g.op("Unsqueeze", [w, axes], p)], p)


def _matte(g: _Graph, img: str) -> str:
    enc2x, enc4x, _, _, enc32x = _backbone(g, img)
    lr16x = _conv_ibn_relu(g, g.up(_se_block(g, enc32x), 2, "lr"), "lr_branch.conv_lr16x")
    lr8x = _conv_ibn_relu(g, g.up(lr16x, 2, "lr"), "lr_branch.conv_lr8x")

    h = "hr_branch"
    img2x, img4x = g.up(img, 1 / 2, h), g.up(img, 1 / 4, h)
    enc2x = _conv_ibn_relu(g, enc2x, f"{h}.tohr_enc2x")
    hr4x = _conv_ibn_relu(g, g.cat([img2x, enc2x], h), f"{h}.conv_enc2x", stride=2)
    hr4x = _conv_ibn_relu(g, g.cat([hr4x, _conv_ibn_relu(g, enc4x, f"{h}.tohr_enc4x")], h), f"{h}.conv_enc4x")
    hr4x = g.cat([hr4x, g.up(lr8x, 2, h), img4x], h)
    for k in range(3):
        hr4x = _conv_ibn_relu(g, hr4x, f"{h}.conv_hr4x.{k}")
    hr2x = g.cat([g.up(hr4x, 2, h), enc2x], h)
    for k in range(4):
        hr2x = _conv_ibn_relu(g, hr2x, f"{h}.conv_hr2x.{k}")

    f = "f_branch"
    lr2x = g.up(_conv_ibn_relu(g, g.up(lr8x, 2, f), f"{f}.conv_lr4x"), 2, f)
    f2x = _conv_ibn_relu(g, g.cat([lr2x, hr2x], f), f"{f}.conv_f2x")
    y = _conv_ibn_relu(g, g.cat([g.up(f2x, 2, f), img], f), f"{f}.conv_f.0")
    y = _conv_ibn_relu(g, y, f"{f}.conv_f.1", ibn=False)
    return g.op("Sigmoid", [y], f)


def build_modnet_onnx(weights: Weights) -> onnx.ModelProto:
    """The matte-only graph: `input` float32 [N,3,H,W] in [-1,1] -> `output` [N,1,H,W], dynamic N, H, W."""
    g = _Graph(weights)
    matte = _matte(g, INPUT_NAME)
    if g.channels[matte] != 1:
        raise ShapeMismatch(f"the matte has {g.channels[matte]} channels, not 1")
    g.nodes.append(helper.make_node("Identity", [matte], [OUTPUT_NAME]))
    dims = ["batch_size", None, "height", "width"]
    graph = helper.make_graph(
        g.nodes,
        "modnet",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [dims[0], 3, dims[2], dims[3]])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [dims[0], 1, dims[2], dims[3]])],
        g.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.producer_name = "trt_modnet"
    onnx.checker.check_model(model)
    return model
