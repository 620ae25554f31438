"""What a step asks of the chip: the FLOPs of one step, counted, and the chip's dense peak, looked up,
so that a measured step time reads as a fraction of what the hardware can do."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

#: Dense peak TFLOP/s by GPU name (substring, first match), from the vendors' data sheets (SXM
#: parts; no sparsity): (bf16 tensor cores, tf32 tensor cores). float32 convolutions run on TF32
#: tensor cores only where ``torch.backends.cudnn.allow_tf32`` (PyTorch's default for cuDNN).
PEAK_TFLOPS = {
    "H200": (989.0, 494.0),
    "H100": (989.0, 494.0),
    "A100": (312.0, 156.0),
    "L40S": (362.0, 183.0),
    "L4": (121.0, 60.0),
    "A10": (125.0, 62.5),
    "V100": (125.0, 15.7),  # no bf16: fp16 tensor cores; fp32 (no tf32)
    "T4": (65.0, 8.1),  # fp16 tensor cores; fp32
}


def peak_tflops(device: torch.device, precision: str) -> float | None:
    """The chip's dense peak for this precision, or None for a CPU or an unknown GPU."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, (bf16, tf32) in PEAK_TFLOPS.items():
        if key in name:
            return bf16 if precision == "bf16-mixed" else tf32
    return None


def step_flops(network: nn.Module, size: int, batch: int, device: torch.device) -> int:
    """FLOPs of one step: the classifier's forward and its backward to the input only (the
    network is frozen), counted by ``torch.utils.flop_counter`` on the real operators."""
    image = torch.rand(batch, 3, size, size, device=device, requires_grad=True)
    with FlopCounterMode(display=False) as counter:
        network(image).sum().backward()
    return counter.get_total_flops()


def recipe_flops(recipe: str) -> dict[str, float]:
    """A recipe's classifier FLOPs: one pass (forward and backward to the input, at the recipe's
    image side), passes per class (steps x views) and the whole run. The classifier is built with
    random weights (no download); its FLOPs do not depend on them."""
    import yaml

    from maxclass_lightning import classifiers, recipes

    config = yaml.safe_load(recipes.path(recipe).read_text())
    model, steps = config["model"], int(config["trainer"]["max_steps"])
    described = classifiers.load(model.get("classifier", "vgg16"), None, 0, True)
    size = int(model.get("image_size") or described.input_size)
    classes = model.get("classes")
    count = len(described.class_names) if classes == "all" else len(classes) if isinstance(classes, list) else 1
    per_pass = step_flops(described.network.eval(), size, 1, torch.device("cpu"))
    passes = steps * int(model.get("views", 1))
    return {
        "pass_flops": per_pass,
        "passes_per_class": passes,
        "classes": count,
        "run_flops": per_pass * passes * count,
    }


def projected_seconds(run_flops: float, peak: float, fraction: float) -> float:
    """Seconds for ``run_flops`` at ``fraction`` of a ``peak`` TFLOP/s chip."""
    return run_flops / (peak * 1e12 * fraction)


def main() -> None:
    """``python -m tools.flops [RECIPE]``: a recipe's FLOPs and its wall time projected on an H200
    (dense bf16 peak) at several fractions of that peak."""
    import sys

    recipe = sys.argv[1] if len(sys.argv) > 1 else "atlas"
    figures = recipe_flops(recipe)
    peak = PEAK_TFLOPS["H200"][0]
    print(
        f"{recipe}: {figures['pass_flops'] / 1e9:.1f} GFLOP a pass x {figures['passes_per_class']} passes x "
        f"{figures['classes']} classes = {figures['run_flops'] / 1e15:.2f} PFLOP"
    )
    for fraction in (1.0, 0.5, 0.3):
        seconds = projected_seconds(figures["run_flops"], peak, fraction)
        print(f"H200 at {fraction:.0%} of its {peak:g} TFLOP/s bf16 peak: {seconds:.0f} s")


if __name__ == "__main__":
    main()
