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
