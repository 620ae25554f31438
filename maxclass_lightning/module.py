"""The LightningModule: class images as parameters, a frozen classifier, the negative class score as loss."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from lightning.pytorch import Callback, LightningModule
from lightning.pytorch.cli import OptimizerCallable
from torch import Tensor, nn
from torchvision.transforms import v2
from typing_extensions import override

from maxclass_lightning import classifiers, regularizers
from maxclass_lightning.callbacks import DivergenceGuard, ImageExport, ImageLogger
from maxclass_lightning.checkpoints import InterruptCheckpoint, PeriodicCheckpoint, is_lightning_default
from maxclass_lightning.data import shard, step_loader, work_items
from maxclass_lightning.display import Display
from maxclass_lightning.errors import ConfigError
from maxclass_lightning.images import ClassImages, ImageCallable, PixelImage
from maxclass_lightning.transforms import Resize

#: The seed's optimizer: AdamW with a large step (pixels are unbounded) and weight decay, which
#: keeps pixel values small and spreads features over the image.
SEED_LEARNING_RATE = 5.0
SEED_WEIGHT_DECAY = 0.1

#: Images per classifier forward pass when ``batch_size`` is null: bounds memory for many classes
#: (VGG16 at 256 px holds about 90 MB of activations per image) at no cost in speed.
AUTO_BATCH_SIZE = 64


class ClassVisualizer(LightningModule):
    """Optimizes one input image per class so that the frozen classifier's logit for it is maximal.

    Args:
        classes: ImageNet class indices or names (case-insensitive), or ``all``.
        image_size: side of each optimized image, in pixels.
        classifier: torchvision model name, or ``package.module:function`` returning an ``nn.Module``.
        weights: torchvision weights name (``DEFAULT``, ``IMAGENET1K_V1``), path to a local state
            dict, or null (a seeded random network; for a callable, its network as returned).
        normalize: apply ImageNet mean/std before the classifier (the seed feeds the raw image).
        image: the parameterization (default: ``PixelImage``, the seed's raw pixels).
        optimizer: optimizer over the image parameters only (default: AdamW, lr 5.0, weight decay 0.1).
        views: augmented views of each image scored per step (their mean score is maximized).
        transforms: how a view is made (``RandomViews`` for transformation robustness); null:
            the image itself, as the seed does.
        regularizer_weights: per-image penalties added to the loss, by name: ``l2`` (mean squared
            pixel value), ``total_variation``, ``blur`` (distance to its own 3x3 blur).
        batch_size: images per classifier forward pass, to bound memory; null: up to
            ``AUTO_BATCH_SIZE`` (64). Results are the same up to float rounding.
        channels_last: run the classifier in NHWC memory layout (faster convolutions on
            tensor-core GPUs; measured in the README).
        compile: ``torch.compile`` the classifier's forward (slow first step, faster after).
        display: how images become pictures (TensorBoard, PNG export).
        seed: seed of the image initialization and augmentations; the CLI sets it from
            ``seed_everything``.
    """

    def __init__(
        self,
        classes: int | str | list[int | str] = 259,
        image_size: int = 256,
        classifier: str = "vgg16",
        weights: str | None = "DEFAULT",
        normalize: bool = True,
        image: ImageCallable | None = None,
        optimizer: OptimizerCallable | None = None,
        views: int = 1,
        transforms: nn.Module | None = None,
        regularizer_weights: dict[str, float] | None = None,
        batch_size: int | None = None,
        channels_last: bool = False,
        compile: bool = False,
        display: Display | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if image_size < 1:
            raise ConfigError(f"model.image_size is {image_size}; give a positive number of pixels such as 224")
        if views < 1:
            raise ConfigError(f"model.views is {views}; give a positive number of views per image, e.g. 1 or 4")
        if batch_size is not None and batch_size < 1:
            raise ConfigError(f"model.batch_size is {batch_size}; give a positive number of images or null")
        self.save_hyperparameters()
        try:
            self.classifier = classifiers.build_classifier(classifier, weights, seed=seed)
        except ConfigError as error:
            raise ConfigError(f"model.classifier / model.weights: {error}") from None
        self.class_names = classifiers.class_names(classifier, self.classifier)
        try:
            self.classes = classifiers.resolve_classes(classes, self.class_names)
        except ConfigError as error:
            raise ConfigError(f"model.classes: {error}") from None
        #: per class of the run, its name in tags and file names: ``259_pomeranian``
        self.tags = [f"{index}_{self.class_names[index].lower().replace(' ', '_')}" for index in self.classes]
        self.register_buffer("class_indices", torch.tensor(self.classes), persistent=False)
        self.normalize = (
            v2.Normalize(classifiers.IMAGENET_MEAN, classifiers.IMAGENET_STD) if normalize else nn.Identity()
        )
        self.image: ClassImages = (image or PixelImage)(self.classes, image_size, seed)
        self.optimizer = optimizer
        self.views = views
        self.transforms = transforms or Resize()
        self.regularizer_weights = regularizers.check(regularizer_weights or {})
        self.batch_size = batch_size
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.classifier.to(memory_format=self.memory_format)
        self.display = display or Display()
        self.seed = seed
        self._check_runnable()
        if compile:  # after the check, which would otherwise compile for the CPU first
            self.classifier.compile()

    def _check_runnable(self) -> None:
        """Fail at construction, before a Trainer writes anything, if the optimizer cannot be built
        or one image cannot go through the views and the classifier."""
        if self.optimizer is not None:
            try:
                self.optimizer([nn.Parameter(torch.zeros(1))])
            except (ValueError, TypeError) as error:
                raise ConfigError(f"model.optimizer cannot be built ({error}); fix its init_args") from None
        work = torch.zeros(1, 2, dtype=torch.long)
        try:
            with torch.no_grad():
                logits = self.scores(self.transforms(self.image(work[:, 0]), self.view_keys(work)))
        except RuntimeError as error:
            reason = str(error).splitlines()[0]
            raise ConfigError(
                f"one {self.hparams.image_size}-px image cannot go through classifier {self.hparams.classifier} "
                f"({reason}); the image size is likely too small for it: use e.g. model.image_size: 224"
            ) from None
        if logits.shape[-1] != len(self.class_names):
            raise ConfigError(
                f"classifier {self.hparams.classifier} gives {logits.shape[-1]} scores but has "
                f"{len(self.class_names)} class names; give the network a matching `categories` list"
            )

    @override
    def configure_callbacks(self) -> list[Callback]:
        """Periodic checkpoints, TensorBoard snapshots, PNG export and the divergence and interruption
        guards are on by default; ``trainer.callbacks`` entries of the same type take
        their place (``trainer.enable_checkpointing: false`` turns the periodic checkpoint off)."""
        present = {type(callback) for callback in self.trainer.callbacks}
        # The checkpoint first: on SIGTERM the grace period may not outlast a 1000-class export.
        defaults = [InterruptCheckpoint, DivergenceGuard, ImageExport, ImageLogger]
        checkpoints = self.trainer.checkpoint_callbacks  # empty with trainer.enable_checkpointing false
        if checkpoints and all(is_lightning_default(callback) for callback in checkpoints):
            defaults.insert(0, PeriodicCheckpoint)
        return [callback() for callback in defaults if callback not in present]

    @override
    def train(self, mode: bool = True) -> ClassVisualizer:
        """The classifier stays in eval mode whatever Lightning asks: its dropout must stay off."""
        super().train(mode)
        self.classifier.eval()
        return self

    def scores(self, images: Tensor) -> Tensor:
        """Logits of the classifier for images in the parameterization's range, ``[K, classes]``."""
        return self.classifier(self.normalize(images).contiguous(memory_format=self.memory_format))

    def view_keys(self, work: Tensor) -> Tensor:
        """(seed, class, view, step) of each work item, ``[K, 4]`` on its device: all that its
        random view may depend on."""
        constant = torch.ones_like(work[:, 0])
        return torch.stack(
            [constant * self.seed, self.class_indices[work[:, 0]], work[:, 1], constant * self.global_step], dim=1
        )

    def _loss(self, work: Tensor, with_stats: bool = False) -> tuple[Tensor, dict[str, Tensor]]:
        """Negative target logit summed over ``work`` items (a mean over each class's views),
        plus the weighted regularizers of each image; with ``with_stats`` (logging steps only),
        each item's score, probability and rank too."""
        if len(work) == 0:  # a process with nothing to do this step (more processes than items)
            dtype = torch.promote_types(next(self.image.parameters()).dtype, torch.float32)  # as the others'
            nothing = work.new_zeros(0, dtype=dtype)
            zero = sum(p.sum() for p in self.image.parameters()) * 0  # DDP still needs a gradient
            return zero, {"score": nothing, "prob": nothing, "rank": nothing}
        positions = work[:, 0]
        # Images and views in float32 even under bf16 autocast, which would coarsen the warps'
        # sampling grids and the colour mixing; only the classifier runs in low precision.
        with torch.autocast(self.device.type, enabled=False):
            images = self.image(positions)
            views = self.transforms(images, self.view_keys(work))
        logits = self.scores(views)
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
        target = logits.gather(1, self.class_indices[positions, None]).squeeze(1)
        stats = self._stats(logits, target, positions) if with_stats else {}
        loss = -target.sum() / self.views
        if self.regularizer_weights:
            loss = loss + regularizers.weighted(images, self.regularizer_weights).sum() / self.views
        return loss, stats

    @torch.no_grad()
    def _stats(self, logits: Tensor, target: Tensor, positions: Tensor) -> dict[str, Tensor]:
        """Each item's target score, probability and rank (1: the classifier's top class)."""
        probability = logits.softmax(1).gather(1, self.class_indices[positions, None]).squeeze(1)
        rank = (logits > target[:, None]).sum(1) + 1
        return {"score": target.detach(), "prob": probability, "rank": rank.to(probability.dtype)}

    def chunks(self, work: Tensor) -> tuple[Tensor, ...]:
        """``work`` cut into classifier forward passes of at most ``batch_size`` items."""
        return work.split(self.batch_size or AUTO_BATCH_SIZE)

    @override
    def training_step(self, work: Tensor, batch_idx: int) -> Tensor:
        """The loss over this process's work items, split into ``batch_size`` chunks.

        Chunks before the last are differentiated on their own and their gradients added into
        the last chunk's loss as ``(p * g).sum()`` terms: one backward pass (as DDP expects) with
        the exact total gradient, holding one chunk's activations at a time.
        """
        parameters = [p for p in self.image.parameters() if p.requires_grad]
        chunks = self.chunks(work)
        logging = self._is_log_step()
        earlier_loss = work.new_zeros((), dtype=torch.float32)
        earlier_grads: list[Tensor] | None = None
        chunk_stats = []
        for chunk in chunks[:-1]:
            loss, stats = self._loss(chunk, logging)
            grads = torch.autograd.grad(loss, parameters)
            if earlier_grads is None:
                earlier_grads = list(grads)
            else:
                for total, grad in zip(earlier_grads, grads):
                    total.add_(grad)
            earlier_loss = earlier_loss + loss.detach()
            chunk_stats.append(stats)
        loss, stats = self._loss(chunks[-1], logging)
        chunk_stats.append(stats)
        if earlier_grads is not None:
            carried = sum((p * g).sum() for p, g in zip(parameters, earlier_grads))
            loss = loss + earlier_loss + (carried - carried.detach())
        if logging:
            metrics = self._log_metrics(work, loss.detach().clone(), chunk_stats)
            # CPU tensors: Lightning keeps them where they are, so the progress bar costs no sync.
            progress = {key: torch.tensor(metrics[key]) for key in ("loss", "prob")}
            self.log_dict(progress, prog_bar=True, logger=False, batch_size=1)
        # DDP averages gradients over processes, each of which computed a disjoint share of the
        # items: scaling by the number of processes gives every image its single-device gradient.
        return loss * self.trainer.world_size

    def _is_log_step(self) -> bool:
        """Every ``trainer.log_every_n_steps`` steps, counting from the first."""
        return self.global_step % (self.trainer.log_every_n_steps or self.trainer.max_steps) == 0

    def _log_metrics(self, work: Tensor, loss: Tensor, chunk_stats: list[dict[str, Tensor]]) -> dict[str, float]:
        """Loss, per-class score/prob/rank and image statistics, summed over processes, written to
        the loggers and returned.

        Called on logging steps only (a host sync); the values describe the images after
        ``global_step`` optimizer steps, and are logged at that step, like the image snapshots.
        """
        stats = {key: torch.cat([s[key] for s in chunk_stats]) for key in chunk_stats[0]}
        strategy = self.trainer.strategy
        values = torch.stack(list(stats.values()), 1).to(self.device)
        per_class = values.new_zeros(len(self.classes), len(stats))
        per_class.index_add_(0, work[:, 0], values / self.views)
        per_class = strategy.reduce(per_class, reduce_op="sum")
        total_loss = strategy.reduce(loss, reduce_op="sum")
        mean_probability = per_class[:, 1].mean()
        metrics = {"loss": total_loss.item(), "prob": mean_probability.item(), "hp_metric": mean_probability.item()}
        for column, values in zip(stats, per_class.T.tolist()):
            metrics.update({f"{column}/{tag}": value for tag, value in zip(self.tags, values)})
        metrics.update({f"image/{key}": value.item() for key, value in self.image_statistics().items()})
        for logger in self.loggers:
            logger.log_metrics(metrics, step=self.global_step)
        return metrics

    @override
    def on_train_end(self) -> None:
        """Score the final images, after the last step, so the scalars end where the images do."""
        work = shard(work_items(len(self.classes), self.views), self.global_rank, self.trainer.world_size)
        work = work.to(self.device)
        with torch.no_grad():
            losses, chunk_stats = zip(*(self._loss(chunk, with_stats=True) for chunk in self.chunks(work)))
        self._log_metrics(work, sum(losses), list(chunk_stats))

    def run_summary(self) -> dict[str, int | float | str | bool | None]:
        """What defines this run, for TensorBoard's hyperparameter view and hparams.yaml."""
        optimizer = self.trainer.optimizers[0]
        group = optimizer.param_groups[0]
        shown = self.tags if len(self.tags) <= 16 else [*self.tags[:16], f"... {len(self.tags)} classes"]
        return {
            "classes": ", ".join(shown),
            "num_classes": len(self.classes),
            "image_size": self.hparams.image_size,
            "classifier": self.hparams.classifier,
            "weights": str(self.hparams.weights),
            "normalize": self.hparams.normalize,
            "image": type(self.image).__name__,
            "optimizer": type(optimizer).__name__,
            "lr": group["lr"],
            "weight_decay": group.get("weight_decay", 0.0),
            "views": self.views,
            "transforms": type(self.transforms).__name__,
            "batch_size": self.batch_size,
            "max_steps": self.trainer.max_steps,
            "devices": self.trainer.world_size,
            "precision": str(self.trainer.precision),
            "seed": self.seed,
        }

    @override
    def on_train_start(self) -> None:
        """Hyperparameters are logged once, here, where the optimizer and trainer are known."""
        for logger in self.loggers:
            logger.log_hyperparams(self.run_summary())

    @torch.no_grad()
    def render(self, positions: Sequence[int] | None = None) -> Tensor:
        """The current images of these class positions (all by default), ``[K, 3, size, size]``."""
        if positions is None:
            positions = range(len(self.classes))
        with torch.autocast(self.device.type, enabled=False):
            return self.image(torch.as_tensor(list(positions), device=self.device)).detach()

    @torch.no_grad()
    def image_statistics(self) -> dict[str, Tensor]:
        """Mean, std, min and max over all class images, rendered ``batch_size`` at a time."""
        chunk = self.batch_size or AUTO_BATCH_SIZE
        count, total, squares, low, high = 0, 0.0, 0.0, [], []
        for start in range(0, len(self.classes), chunk):
            part = self.render(range(start, min(start + chunk, len(self.classes)))).double()
            count, total, squares = count + part.numel(), total + part.sum(), squares + part.square().sum()
            low, high = [*low, part.min()], [*high, part.max()]
        mean = total / count
        return {
            "mean": mean.float(),
            "std": (squares / count - mean**2).clamp_min(0).sqrt().float(),
            "min": torch.stack(low).min().float(),
            "max": torch.stack(high).max().float(),
        }

    @override
    def configure_optimizers(self) -> torch.optim.Optimizer:
        """The optimizer sees the image parameters alone: the classifier is not trained."""
        if self.optimizer is None:
            return torch.optim.AdamW(self.image.parameters(), lr=SEED_LEARNING_RATE, weight_decay=SEED_WEIGHT_DECAY)
        return self.optimizer(self.image.parameters())

    @override
    def train_dataloader(self):
        trainer = self.trainer
        if trainer.max_steps is None or trainer.max_steps < 1:
            raise ConfigError(f"trainer.max_steps is {trainer.max_steps}; give the number of optimizer steps, e.g. 200")
        return step_loader(len(self.classes), self.views, trainer.max_steps, trainer.global_rank, trainer.world_size)

    @override
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Checkpoints hold the images and optimizer state, not the frozen classifier (528 MB for VGG16):
        it is rebuilt from the hyperparameters."""
        state = checkpoint["state_dict"]
        for key in [key for key in state if key.startswith("classifier.")]:
            del state[key]

    @override
    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Put the rebuilt classifier's weights back so that strict loading still checks the images,
        and give the images the checkpoint's dtype first: Lightning restores before its precision
        plugin converts the module, so a float64 run would otherwise be rounded through float32."""
        state = checkpoint["state_dict"]
        saved = {state[f"image.{name}"].dtype for name, _ in self.image.named_parameters() if f"image.{name}" in state}
        if len(saved) == 1:
            self.image.to(dtype=saved.pop())
        state.update({f"classifier.{k}": v for k, v in self.classifier.state_dict().items()})
