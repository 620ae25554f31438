"""The LightningModule: class images as parameters, a frozen classifier, the negative class score as loss."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path

import torch
from lightning.pytorch import Callback, LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn
from typing_extensions import override

from maxclass_lightning import checkpoints, classifiers, data, preflight, steps
from maxclass_lightning.callbacks import default_callbacks
from maxclass_lightning.display import Display
from maxclass_lightning.errors import about
from maxclass_lightning.gradients import SkipGradient
from maxclass_lightning.images import ImageCallable, PixelImage, load_picture
from maxclass_lightning.metrics import StepScores, item_scores
from maxclass_lightning.objectives import ClassObjective
from maxclass_lightning.ownership import OwnedImages
from maxclass_lightning.targets import targets
from maxclass_lightning.transforms import Resize, resized

#: The seed's optimizer: AdamW with a large step (pixels are unbounded) and weight decay, which
#: keeps pixel values small and spreads features over the image.
SEED_OPTIMIZER = partial(torch.optim.AdamW, lr=5.0, weight_decay=0.1)

#: Images per classifier forward pass when ``batch_size`` is null: bounds memory for many classes
#: (VGG16 at 256 px holds about 90 MB of activations per image) at no cost in speed.
AUTO_BATCH_SIZE = 64


class ClassVisualizer(OwnedImages, LightningModule):
    """Optimizes input images per class so that the frozen classifier's logit for it is maximal.

    Under ``trainer.strategy: owned_classes`` each process holds, optimizes and exports only the
    images of its own share of the classes (``ownership``). Each option: docs/configuration.md.

    Args:
        classes: ImageNet class indices or names (case-insensitive), or ``all``; null: 259.
        objectives: instead of classes, one image per objective string, e.g. ``"features.28:17"``,
            ``"features.28:17@center"``, ``"features.28"``, ``"logit:259 - logit:151"``.
        image_size: side of each optimized image, in pixels; null: the classifier's input side.
        classifier: torchvision name, ``efficientnet_lite0``/``1``/``2``, ``timm:<name>``, ``package.module:function``,
            (Python) an ``nn.Module``, or a list of these: an ensemble, each network at its own input side.
        weights: ``DEFAULT`` (pretrained), a torchvision weights name, a state dict path, or null (random).
        normalize: apply the classifier's own mean/std before it; false feeds the raw image (the seed).
        skip_gradient: scale of the gradient through the classifier's residual branches (SGM): below 1,
            more comes through the skip connections, and other networks read the pictures better; 1: off.
        image: the parameterization (default: ``PixelImage``, the seed's raw pixels).
        optimizer: optimizer over the image parameters (default: AdamW, lr 5.0, weight decay 0.1).
        lr_scheduler: learning-rate schedule, stepped once per optimizer step; null: constant.
        views: augmented views of each image scored per step (their mean score is maximized).
        exact_view_steps: last steps (count, or fraction of ``max_steps``) in which view 0 is the image itself.
        average_steps: last steps (count or fraction) whose moving average is the picture.
        average_decay: weight of the previous average at each of those steps.
        transforms: how a view is made (``RandomViews``, ``CropViews``); null: the image itself.
        init_image: a picture file every image starts from (feature accentuation); null: random.
        regularizer_weights: penalties by name: ``total_variation``, ``blur``, ``init_distance`` (to ``init_image``).
        batch_size: views per classifier forward pass (memory only); null: ``AUTO_BATCH_SIZE``.
        channels_last: run the classifier in NHWC memory layout (faster on tensor-core GPUs).
        compile: ``torch.compile`` the classifier's forward (slow first step, faster after).
        display: how images become pictures (TensorBoard, PNG export).
        seed: seed of the initialization and views; the CLI sets it from ``seed_everything``.
        samples_per_class: images per class, each from its own random stream.
        diversity_weight: weight of Lucid's diversity penalty among a class's samples (0: off).
        diversity_layer: classifier module whose output the diversity term compares.
    """

    def __init__(
        self,
        classes: int | str | list[int | str] | None = None,
        objectives: list[str] | None = None,
        image_size: int | None = None,
        classifier: str | nn.Module | list[str | nn.Module] = "vgg16",
        weights: str | None = classifiers.PRETRAINED,
        normalize: bool = True,
        skip_gradient: float = 1.0,
        image: ImageCallable | None = None,
        optimizer: OptimizerCallable | None = None,
        lr_scheduler: LRSchedulerCallable | None = None,
        views: int = 1,
        exact_view_steps: int | float = 0,
        average_steps: int | float = 0,
        average_decay: float = 0.9,
        transforms: nn.Module | None = None,
        init_image: str | None = None,
        regularizer_weights: dict[str, float] | None = None,
        batch_size: int | None = None,
        channels_last: bool = False,
        compile: bool = False,
        display: Display | None = None,
        seed: int = 0,
        samples_per_class: int = 1,
        diversity_weight: float = 0.0,
        diversity_layer: str | None = None,
    ) -> None:
        super().__init__()
        preflight.check_options(locals())
        # A module instance is not pickled into hparams and checkpoints: its class name stands in.
        named = classifiers.is_named(classifier)
        self.save_hyperparameters(ignore=[] if named else ["classifier"])
        self.hparams["classifier"] = classifier if named else classifiers.describe(classifier)
        # Optimized by hand: each forward pass (chunk) is differentiated on its own, then one step.
        self.automatic_optimization = False
        with about("model.classifier / model.weights"):
            described = classifiers.load(classifier, weights, seed, normalize)
        self.classifier, self.class_names = described.network, described.class_names
        self.skip_gradient = SkipGradient(self.classifier, skip_gradient, described.name)
        self.image_size = image_size or described.input_size
        self.targets = t = targets(described, self.image_size, classes, objectives)
        self.classes, self.references, self.tags, self.labels = t.classes, t.references, t.tags, t.labels
        self.samples_per_class, self.image_names = samples_per_class, t.image_names(samples_per_class)
        self.image_factory = image or PixelImage
        self.normalize = described.normalization() if normalize else nn.Identity()
        self.seed, self.views, self.batch_size = seed, views, batch_size
        self.optimizer, self.lr_scheduler = optimizer, lr_scheduler
        self.exact_view_steps, self.average_steps, self.average_decay = exact_view_steps, average_steps, average_decay
        self.transforms = transforms or Resize()
        self.objective = ClassObjective(
            self.classifier, views, samples_per_class, diversity_weight, diversity_layer, regularizer_weights
        )
        with about("model.init_image"):
            start = load_picture(Path(init_image).expanduser(), self.image_size) if init_image else None
        self.register_buffer("start_picture", start, persistent=False)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.classifier.to(memory_format=self.memory_format)
        self.display = display or Display()
        preflight.check_optimizer(optimizer, lr_scheduler)
        preflight.check_memory(self)
        self.own(range(len(self.classes)), [len(self.image_names)])
        preflight.check_forward(self)
        #: the scores of a logging step, for ``metrics.ScoreLogger`` to write before the optimizer step
        self.step_scores: StepScores | None = None
        if compile:  # after the check, which would otherwise compile for the CPU first
            self.classifier.compile()

    @override
    def configure_callbacks(self) -> list[Callback]:
        return default_callbacks(self.trainer)

    @override
    def train(self, mode: bool = True) -> ClassVisualizer:
        """The classifier stays in eval mode whatever Lightning asks: its dropout must stay off."""
        super().train(mode)
        self.classifier.eval()
        return self

    def scores(self, images: Tensor) -> Tensor:
        """Logits of the classifier for images in the parameterization's range, ``[K, classes]``."""
        return self.classifier(self.normalize(images).contiguous(memory_format=self.memory_format))

    def loss(self, work: Tensor, with_scores: bool = False) -> tuple[Tensor, Tensor | None]:
        """The objective's loss over ``work`` items (image row, view), and with ``with_scores``
        each item's ``metrics.COLUMNS`` (score, probability, rank, top-1)."""
        rows = work[:, 0]
        # Images and views in float32 even under bf16 autocast, which would coarsen the warps'
        # sampling grids and the colour mixing; only the classifier runs in low precision.
        with torch.autocast(self.device.type, enabled=False):
            images = self.image(rows)
            views = self.transforms(images, data.view_keys(work, self.seed, self.class_indices, self.global_step))
            if self.global_step >= steps.first_of_last(self.exact_view_steps, self.trainer.max_steps):
                views = torch.where((work[:, 1] == 0)[:, None, None, None], resized(images, views.shape[-1]), views)
        logits, target, features = self.read(views, rows)
        groups = self.row_positions[rows] * self.views + work[:, 1]  # a class's samples under one view
        scores = item_scores(logits.detach(), target.detach(), self.reference_classes[rows]) if with_scores else None
        return self.objective.loss(target, images, features, groups, self.start_picture), scores

    def read(self, views: Tensor, rows: Tensor) -> tuple[Tensor, Tensor, list[Tensor]]:
        """The classifier's logits of ``views`` of these image rows (at least float32), each
        view's target (its class's logit, or its objective's value) and the diversity layer's output."""
        with (
            self.objective.capture() as features,
            self.targets.values.capture() as captured,
            self.skip_gradient.active(),
        ):
            logits = self.scores(views)
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
        return logits, self.targets.values.values(logits, captured, self.row_positions[rows]), features

    def pass_size(self) -> int:
        """Work items per classifier forward pass, never splitting the items the objective compares."""
        return data.pass_size(self.batch_size or AUTO_BATCH_SIZE, self.objective.group_items)

    def chunks(self, work: Tensor) -> tuple[Tensor, ...]:
        return work.split(self.pass_size()) if len(work) else ()  # none on a process that owns no class

    @override
    def training_step(self, work: Tensor, batch_idx: int) -> Tensor:
        """One optimizer step over this process's images: each forward pass is differentiated on
        its own (one pass's activations held at a time), then one step.

        No gradient crosses processes: each owns its images, and computes their whole gradient.
        """
        optimizer = self.optimizers()
        step = self.global_step
        optimizer.zero_grad()
        logging = steps.is_log_step(self.trainer)
        losses, scores = [], []
        for chunk in self.chunks(work):
            loss, chunk_scores = self.loss(chunk, logging)
            self.manual_backward(loss)
            losses.append(loss.detach())
            scores.append(chunk_scores)
        if not losses:  # owning no class: empty gradients, so the optimizer state has every entry the others' has
            self.manual_backward(sum(p.sum() for p in self.image.parameters()))
        loss = torch.stack(losses).sum() if losses else self.zero()
        if logging:  # written before the step: the scores describe the images after ``step`` steps
            self.step_scores = StepScores.of(work, scores, loss)
        optimizer.step()
        scheduler = self.lr_schedulers()
        if scheduler is not None:  # manual optimization: Lightning leaves the stepping to the module
            scheduler.step()
        if self.image_average is not None:  # before the callbacks' end of the run: they see the average
            self.image_average.after_step(self.image, step, self.trainer.max_steps)
        return loss

    def zero(self) -> Tensor:
        """A zero in the dtype of the losses and scores (as every process's, for collectives)."""
        dtype = torch.promote_types(next(self.image.parameters()).dtype, torch.float32)
        return torch.zeros((), dtype=dtype, device=self.device)

    @override
    def on_train_start(self) -> None:
        if self.image_average is not None:
            self.image_average.resume(self.image)

    @torch.no_grad()
    def render(self, rows: Sequence[int] | None = None) -> Tensor:
        """This process's current images at these rows (all by default), ``[K, 3, size, size]``;
        row ``i`` is the run's image ``owned_rows[i]``."""
        if rows is None:
            rows = range(len(self.owned_rows))
        with torch.autocast(self.device.type, enabled=False):
            return self.image(torch.as_tensor(list(rows), dtype=torch.long, device=self.device)).detach()

    @override
    def configure_optimizers(self) -> torch.optim.Optimizer | dict:
        """The optimizer sees the image parameters alone: the classifier is not trained. A
        schedule is handed to Lightning, which saves and restores its state with the checkpoint."""
        optimizer = (self.optimizer or SEED_OPTIMIZER)(self.image.parameters())
        if self.lr_scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.lr_scheduler(optimizer), "interval": "step"}}

    @override
    def train_dataloader(self):
        return data.step_loader(len(self.owned_rows), self.views, self.trainer.max_steps)

    @override
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoints.drop_classifier(checkpoint)

    @override
    def on_load_checkpoint(self, checkpoint: dict) -> None:
        checkpoints.prepare_to_load(self, checkpoint)
