"""Ensembles: a list of classifiers is optimized against as one, each network reading the image
at its own input side and with its own normalization."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from maxclass_lightning import classifiers
from maxclass_lightning.images import PixelImage
from tests.conftest import fit_in_process, tiny_args
from tests.networks import OWN_MEAN, OWN_STD

TINY = "tests.networks:tiny_imagenet_classifier"
OWN = "tests.networks:tiny_classifier_with_own_statistics"


def test_an_ensemble_maximizes_the_mean_logit_of_its_networks_each_read_its_own_way(tmp_path):
    args = [f"--model.classifier=[{TINY}, {OWN}]", "--model.normalize=true", "--model.classes=[259]"]
    cli = fit_in_process(tiny_args(tmp_path, *args, "--trainer.precision=64-true", "--trainer.max_steps=3"))
    assert cli.model.classifier.sizes == [224, 32] and cli.model.hparams.classifier == [TINY, OWN]
    first = classifiers.build_classifier(TINY, None, seed=0).double()
    second = classifiers.build_classifier(OWN, None, seed=0).double()
    imagenet_mean = torch.tensor(classifiers.IMAGENET_MEAN, dtype=torch.float64)[:, None, None]
    imagenet_std = torch.tensor(classifiers.IMAGENET_STD, dtype=torch.float64)[:, None, None]
    own_mean = torch.tensor(OWN_MEAN, dtype=torch.float64)[:, None, None]
    own_std = torch.tensor(OWN_STD, dtype=torch.float64)[:, None, None]
    image = PixelImage([259], 32, seed=0).pixels.detach().double().requires_grad_(True)
    optimizer = torch.optim.AdamW([image], lr=5.0, weight_decay=0.1)
    for _ in range(3):
        large = F.interpolate(image, size=(224, 224), mode="bilinear", antialias=True)
        logits = (first((large - imagenet_mean) / imagenet_std) + second((image - own_mean) / own_std)) / 2
        (-logits[0, 259]).backward()
        optimizer.step()
        optimizer.zero_grad()
    torch.testing.assert_close(cli.model.image.pixels.detach(), image.detach(), rtol=0, atol=1e-9)


def test_the_memory_check_counts_each_member_at_its_own_input_side():
    """What one view costs an ensemble in layer outputs: each member's, at its own input side,
    whatever the view's size (the estimate once divided the members' cost by the probe's side)."""
    from maxclass_lightning import preflight
    from maxclass_lightning.ensembles import Ensemble

    members = [classifiers.build_classifier(TINY, None, seed=0), classifiers.build_classifier(OWN, None, seed=0)]
    ensemble = Ensemble(members, [64, 128], [torch.nn.Identity(), torch.nn.Identity()]).eval()
    outputs = []
    leaves = [m for m in ensemble.members.modules() if not list(m.children())]  # the networks themselves
    handles = [
        leaf.register_forward_hook(lambda m, a, o: outputs.append(o.numel() * o.element_size())) for leaf in leaves
    ]
    with torch.no_grad():
        ensemble(torch.zeros(1, 3, 16, 16))
    for handle in handles:
        handle.remove()
    torch.testing.assert_close(
        preflight.activation_bytes_per_view(ensemble, 16), float(sum(outputs)), rtol=0.05, atol=0
    )
