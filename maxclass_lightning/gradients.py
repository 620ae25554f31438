"""The skip gradient method (SGM; Wu et al., "Skip connections matter", ICLR 2020): in each residual
block of the classifier, the gradient through the residual branch is scaled by ``skip_gradient``
< 1, so that more of the image's gradient comes through the skip connections, from the features
of lower layers (the paper's explanation of why such images fool other networks better).
The scores are unchanged, only the direction the image moves in: a picture made this way is read
better by networks never used to make it (docs/results.md: Lite1's pictures, judged by Lite0 at
256 passes, 0.784 -> 0.912).

Written here because no maintained library ships it for feature visualization (it comes from the
transfer-attack literature); residual branches are found by the block types of torchvision, timm
and EfficientNet-Lite, listed in ``branch_end``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor, nn
from torchvision.models import convnext, efficientnet, mobilenetv2, mobilenetv3, regnet, resnet

#: The networks whose residual blocks are known, for the message when a network has none.
KNOWN = "ResNet, MobileNetV2/V3, EfficientNet, ConvNeXt, RegNet (torchvision, timm) and EfficientNet-Lite"


class _ScaleGradient(torch.autograd.Function):
    """The identity forward (a copy: blocks add their shortcut to it in place), the gradient
    times ``scale`` backward."""

    @staticmethod
    def forward(ctx, tensor: Tensor, scale: float) -> Tensor:
        ctx.scale = scale
        return tensor.clone()

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        return grad * ctx.scale, None


def branch_end(block: nn.Module) -> nn.Module | None:
    """The module through which every path of ``block``'s residual branch, and no path of its
    shortcut, passes (its last common module), or None when ``block`` is no residual block it knows."""
    if isinstance(block, resnet.BasicBlock):
        return block.bn2
    if isinstance(block, resnet.Bottleneck):
        return block.bn3
    if isinstance(block, mobilenetv2.InvertedResidual):
        return block.conv if block.use_res_connect else None
    if isinstance(block, (mobilenetv3.InvertedResidual, efficientnet.MBConv, efficientnet.FusedMBConv)):
        return block.block if block.use_res_connect else None
    if isinstance(block, convnext.CNBlock):
        return block.block
    if isinstance(block, regnet.ResBottleneckBlock):
        return block.f
    # Optional packages, by name, so that neither is imported for a network that uses neither.
    kind = f"{type(block).__module__}.{type(block).__name__}"
    if kind == "timm.models.resnet.BasicBlock":
        return block.bn2
    if kind == "timm.models.resnet.Bottleneck":
        return block.bn3
    if kind.startswith("timm.models._efficientnet_blocks.") and getattr(block, "has_skip", False):
        return block.drop_path  # the branch's last module in every timm MobileNet/EfficientNet block
    if kind == "efficientnet_lite_pytorch.model.MBConvBlock":
        args = block._block_args  # the package's own condition for adding the shortcut
        skips = args.id_skip and args.stride == 1 and args.input_filters == args.output_filters
        return block._bn2 if skips else None
    return None


def residual_branches(network: nn.Module) -> list[nn.Module]:
    """The end of every residual branch in ``network`` (ensemble members included)."""
    return [end for block in network.modules() if (end := branch_end(block)) is not None]


class SkipGradient:
    """Scales the gradient of ``network``'s residual branches by ``scale`` inside ``active()``.

    Outside it the network is untouched: its forward hooks pass outputs through, so a network
    given from Python computes its usual gradients elsewhere. A network with no residual block
    (VGG16) has nothing to scale: the run says so in one line, and goes on.
    """

    def __init__(self, network: nn.Module, scale: float, name: str) -> None:
        self.scale, self.on = scale, False
        if scale == 1:
            return
        branches = residual_branches(network)
        if not branches:  # a recipe's value on a network without skip connections: nothing to scale
            rank_zero_info(
                f"model.skip_gradient {scale} changes nothing here: classifier {name} has no residual block of "
                f"{KNOWN}; set model.skip_gradient: 1.0 to silence this"
            )
        for branch in branches:
            branch.register_forward_hook(self._scale)

    def _scale(self, module: nn.Module, args: tuple, output: Tensor) -> Tensor | None:
        return _ScaleGradient.apply(output, self.scale) if self.on else None

    @contextmanager
    def active(self) -> Iterator[None]:
        """The forward passes run inside differentiate with the branches scaled."""
        self.on = True
        try:
            yield
        finally:
            self.on = False
