"""The skip gradient method: every known residual block's branch is found and its gradient scaled,
in float64 against the block's own two paths; the scores are unchanged, and the network computes
its usual gradients outside the app's forward passes."""

from __future__ import annotations

import copy
import re

import pytest
import timm
import torch
from efficientnet_lite_pytorch import EfficientNet
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torchvision import models
from torchvision.models.convnext import CNBlockConfig, ConvNeXt
from torchvision.models.efficientnet import EfficientNet as EfficientNetV2
from torchvision.models.efficientnet import FusedMBConvConfig

from maxclass_lightning.errors import ConfigError
from maxclass_lightning.gradients import SkipGradient, branch_end, residual_branches
from maxclass_lightning.module import ClassVisualizer
from tests.conftest import fit_in_process, run_dir, tiny_args
from tests.test_distributed import final_images

#: Networks of torchvision's EfficientNetV2 (FusedMBConv) and ConvNeXt blocks, small: the
#: published ones take seconds to initialize on two cores.
FUSED = [FusedMBConvConfig(1, 3, 1, 16, 16, 2), FusedMBConvConfig(4, 3, 2, 16, 32, 2)]
CONVNEXT = [CNBlockConfig(16, 32, 2), CNBlockConfig(32, None, 1)]

#: Network -> its residual blocks, counted from the architecture's published stage depths (the
#: first block of a stage that changes width or stride has no identity shortcut in the
#: MobileNet/EfficientNet families; a ResNet's, ConvNeXt's or RegNet's has a projection).
NETWORKS = {
    "resnet18": (models.resnet18, 2 + 2 + 2 + 2),
    "resnet50": (models.resnet50, 3 + 4 + 6 + 3),
    "mobilenet_v2": (models.mobilenet_v2, 0 + 1 + 2 + 3 + 2 + 2 + 0),
    "mobilenet_v3_small": (models.mobilenet_v3_small, 0 + 0 + 1 + 0 + 2 + 1 + 0 + 2),
    "efficientnet_b0": (models.efficientnet_b0, 0 + 1 + 1 + 2 + 2 + 3 + 0),
    "efficientnet_v2 (small)": (lambda: EfficientNetV2(FUSED, dropout=0, last_channel=64), 2 + 1),
    "convnext (small)": (lambda: ConvNeXt(CONVNEXT, layer_scale=1.0), 2 + 1),
    "regnet_y_400mf": (models.regnet_y_400mf, 1 + 3 + 6 + 6),
    # Without zero_init_last: timm starts each branch's last batch norm at 0, a branch with no gradient.
    "timm:resnet18": (lambda: timm.create_model("resnet18", zero_init_last=False), 8),
    "timm:resnet50": (lambda: timm.create_model("resnet50", zero_init_last=False), 16),
    "timm:efficientnet_b0": (lambda: timm.create_model("efficientnet_b0"), 9),
    "efficientnet_lite0": (lambda: EfficientNet.from_name("efficientnet-lite0"), 0 + 1 + 1 + 2 + 2 + 3 + 0),
}

#: Blocks with an activation after the shortcut's addition: there the skip path's gradient is
#: masked by its derivative (ReLU's: where the output is positive).
ACTIVATION_AFTER_ADD = ("BasicBlock", "Bottleneck", "ResBottleneckBlock")

SCALE = 0.25


def block_inputs(network: torch.nn.Module) -> dict[torch.nn.Module, torch.Tensor]:
    """Each residual block -> its input when the network reads a random 64-px float64 image."""
    inputs = {}
    handles = [
        block.register_forward_pre_hook(lambda module, args: inputs.__setitem__(module, args[0]))
        for block in network.modules()
        if branch_end(block) is not None
    ]
    with torch.no_grad():
        network(torch.rand(1, 3, 64, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))
    for handle in handles:
        handle.remove()
    return inputs


def input_gradient(block, x, weights):
    x = x.detach().requires_grad_()
    output = block(x)
    (gradient,) = torch.autograd.grad((output * weights).sum(), x)
    return output.detach(), gradient


@pytest.mark.parametrize("name", list(NETWORKS))
def test_each_residual_branch_carries_the_scaled_share_of_the_gradient(name):
    build, blocks = NETWORKS[name]
    torch.manual_seed(0)
    network = build().double().eval()
    assert len(residual_branches(network)) == blocks
    inputs = block_inputs(network)
    skip = SkipGradient(network, SCALE, name)
    for block, x in inputs.items():
        end = branch_end(block)
        weights = torch.randn_like(block(x))
        output, full = input_gradient(block, x, weights)
        handle = end.register_forward_hook(lambda module, args, output: output.detach())  # the shortcut alone
        _, shortcut = input_gradient(block, x, weights)
        handle.remove()
        with skip.active():
            scaled_output, scaled = input_gradient(block, x, weights)

        assert torch.equal(scaled_output, output)  # the scores are unchanged
        assert not torch.allclose(full, shortcut)  # the branch carries gradient
        torch.testing.assert_close(scaled, shortcut + SCALE * (full - shortcut), rtol=1e-9, atol=1e-12)
        if x.shape == output.shape and getattr(block, "downsample", None) is None:
            # An identity shortcut: its gradient is the weights themselves (masked by a ReLU after
            # the addition), so the detached module ended the branch, all of it.
            mask = (output > 0) if type(block).__name__ in ACTIVATION_AFTER_ADD else 1
            torch.testing.assert_close(shortcut, weights * mask, rtol=0, atol=0)


def test_an_ensemble_scales_every_members_branches():
    torch.manual_seed(0)
    visualizer = ClassVisualizer(
        classes=[1], image_size=32, classifier=["resnet18", "mobilenet_v2"], weights=None, skip_gradient=0.5
    )
    image = torch.rand(1, 3, 32, 32)

    def gradient(member):
        x = image.clone().requires_grad_()
        member(x)[0, 1].backward()
        return x.grad

    for member, blocks in zip(visualizer.classifier.members, (8, 10)):
        assert len(residual_branches(member)) == blocks
        plain = gradient(member)
        with visualizer.skip_gradient.active():
            scaled = gradient(member)
        assert (scaled - plain).norm() > 0.01 * plain.norm()  # relative: a random member's are tiny


def test_the_network_given_from_python_keeps_its_own_gradients():
    """The hooks pass outputs through outside the app's forward passes (float64: a backward's
    reductions may sum in another order from run to run with several threads)."""
    torch.manual_seed(0)
    network = models.resnet18().eval()
    untouched = copy.deepcopy(network).double()
    visualizer = ClassVisualizer(classes=[1], image_size=32, classifier=network, skip_gradient=0.5)
    network.double()  # after the visualizer's float32 preflight pass; the hooks stay
    image = torch.rand(1, 3, 32, 32, dtype=torch.float64)

    def gradient(model):
        x = image.clone().requires_grad_()
        model(x)[0, 1].backward()
        return x.grad

    plain = gradient(untouched)
    torch.testing.assert_close(gradient(network), plain, rtol=1e-12, atol=1e-18)
    with visualizer.skip_gradient.active():
        scaled = gradient(network)
    assert (scaled - plain).norm() > 0.01 * plain.norm()


def test_fit_moves_the_image_along_the_scaled_gradient_with_the_same_first_scores(tmp_path):
    """Same seed: the same score at step 0 (the forward is unchanged), another image after 4 steps."""
    images, scores = {}, {}
    for scale in (1.0, 0.5):
        save_dir = tmp_path / str(scale)
        args = ["--model.classifier=resnet18", f"--model.skip_gradient={scale}", "--trainer.precision=64-true"]
        fit_in_process(tiny_args(save_dir, "--model.classes=[1]", *args))
        run = run_dir(save_dir)
        images[scale] = final_images(run)[1]
        accumulator = EventAccumulator(str(run), size_guidance={"scalars": 0})
        accumulator.Reload()
        scores[scale] = [event.value for event in accumulator.Scalars("score/1_goldfish")]
    assert scores[1.0][0] == scores[0.5][0] and scores[1.0][-1] != scores[0.5][-1]
    assert not torch.allclose(images[1.0], images[0.5])


def test_a_network_without_residual_blocks_runs_as_without_and_says_so_in_one_line(caplog, tmp_path):
    """A recipe's value on VGG16 or the tiny network: nothing to scale, the same images, one notice."""
    for scale in (1.0, 0.5):
        args = ["--model.classes=[1]", f"--model.skip_gradient={scale}", "--trainer.precision=64-true"]
        fit_in_process(tiny_args(tmp_path / str(scale), *args))
    notices = [record.getMessage() for record in caplog.records if "skip_gradient" in record.getMessage()]
    assert len(notices) == 1 and "model.skip_gradient 0.5 changes nothing here" in notices[0], notices
    assert "set model.skip_gradient: 1.0" in notices[0]
    plain, scaled = (final_images(run_dir(tmp_path / str(scale)))[1] for scale in (1.0, 0.5))
    torch.testing.assert_close(scaled, plain, rtol=0, atol=1e-10)  # float64 rounding only


def test_out_of_range_is_refused():
    with pytest.raises(ConfigError, match=re.escape("model.skip_gradient")):
        ClassVisualizer(classes=[1], image_size=32, classifier="resnet18", weights=None, skip_gradient=1.5)
