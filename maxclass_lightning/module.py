"""The LightningModule: class images as parameters, a frozen classifier, the negative class score as loss."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from lightning.pytorch import Callback, LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.loggers import TensorBoardLogger
from torch import Tensor, nn
from torch.distributed import ReduceOp
from torchvision.transforms import v2
from typing_extensions import override

from maxclass_lightning import classifiers, validation
from maxclass_lightning.averaging import ImageAverage
from maxclass_lightning.callbacks import DivergenceGuard, ImageExport, ImageLogger
from maxclass_lightning.checkpoints import InterruptCheckpoint, PeriodicCheckpoint, is_lightning_default
from maxclass_lightning.data import step_loader, work_items
from maxclass_lightning.display import Display
from maxclass_lightning.errors import ConfigError
from maxclass_lightning.images import ClassImages, ImageCallable, PixelImage
from maxclass_lightning.objectives import ClassObjective, class_logit
from maxclass_lightning.ownership import check_strategy, owned_classes, uses_ownership
from maxclass_lightning.transforms import Resize, resized

#: The seed's optimizer: AdamW with a large step (pixels are unbounded) and weight decay, which
#: keeps pixel values small and spreads features over the image.
SEED_LEARNING_RATE = 5.0
SEED_WEIGHT_DECAY = 0.1

#: Images per classifier forward pass when ``batch_size`` is null: bounds memory for many classes
#: (VGG16 at 256 px holds about 90 MB of activations per image) at no cost in speed.
AUTO_BATCH_SIZE = 64

#: Classes up to which each class gets its own TensorBoard scalar tags (``prob/259_pomeranian``):
#: beyond, thousands of tags make the browser unusable, and histograms summarize all classes.
MAX_CLASS_SCALARS = 64


class ClassVisualizer(LightningModule):
    """Optimizes input images per class so that the frozen classifier's logit for it is maximal.

    With several processes (``trainer.strategy: owned_classes``) each process holds, optimizes
    and exports only the images of its own share of the classes (``ownership``).

    Args:
        classes: ImageNet class indices or names (case-insensitive), or ``all``.
        image_size: side of each optimized image, in pixels; null: the classifier's own input
            side (torchvision's weights transforms, timm's ``pretrained_cfg``; 224 otherwise).
        classifier: torchvision model name, ``efficientnet_lite0``/``efficientnet_lite1`` (lite
            extra), ``timm:<name>`` (timm extra), ``package.module:function`` returning an
            ``nn.Module``, or (from Python) an ``nn.Module`` instance. An instance is not saved in
            hparams or checkpoints (its class name stands in): load such a run with
            ``ClassVisualizer.load_from_checkpoint(path, classifier=model)``.
        weights: torchvision or timm weights name (``DEFAULT``, ``IMAGENET1K_V1``), path to a local
            state dict, or null (a seeded random network; for a Lite network, a callable or a
            module, the network as given).
        normalize: apply the classifier's own mean/std (ImageNet's unless its metadata says
            otherwise) before it; false feeds the raw image, as the seed does.
        image: the parameterization (default: ``PixelImage``, the seed's raw pixels).
        optimizer: optimizer over the image parameters only (default: AdamW, lr 5.0, weight decay 0.1).
        lr_scheduler: learning-rate schedule, stepped once per optimizer step (e.g.
            ``torch.optim.lr_scheduler.CosineAnnealingLR`` with ``T_max`` = ``trainer.max_steps``);
            null: a constant rate.
        views: augmented views of each image scored per step (their mean score is maximized).
        exact_view_steps: in the run's last steps, this many (a whole number) or this fraction
            of ``trainer.max_steps`` (a float in [0, 1], as Lightning's ``limit_*_batches``), view 0
            of each image is the image itself, only resized to the classifier's input: the exported
            picture is then scored as it is, not only through augmented views, so the network that
            made it reads it as the class (0: never).
        average_steps: in the run's last steps, this many (a whole number) or this fraction of
            ``trainer.max_steps``, an exponential moving average of the image is kept, and after
            the last step the image becomes it (``averaging``): what only one step's views
            rewarded averages out (0: the last step's image).
        average_decay: weight of the previous average at each of those steps (0.9: about the
            last 10 weigh most).
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
        samples_per_class: images per class, each from its own random stream (sample 0 is the
            image a one-sample run makes); exported as ``<index>_<name>_<sample>.png``.
        diversity_weight: weight of Lucid's diversity penalty among a class's samples (0: off).
        diversity_layer: classifier module whose output the diversity term compares.
        max_class_scalars: runs of up to this many classes get per-class scalar tags; all runs
            get histograms of probability and rank and summary scalars.
    """

    def __init__(
        self,
        classes: int | str | list[int | str] = 259,
        image_size: int | None = None,
        classifier: str | nn.Module = "vgg16",
        weights: str | None = "DEFAULT",
        normalize: bool = True,
        image: ImageCallable | None = None,
        optimizer: OptimizerCallable | None = None,
        lr_scheduler: LRSchedulerCallable | None = None,
        views: int = 1,
        exact_view_steps: int | float = 0,
        average_steps: int | float = 0,
        average_decay: float = 0.9,
        transforms: nn.Module | None = None,
        regularizer_weights: dict[str, float] | None = None,
        batch_size: int | None = None,
        channels_last: bool = False,
        compile: bool = False,
        display: Display | None = None,
        seed: int = 0,
        samples_per_class: int = 1,
        diversity_weight: float = 0.0,
        diversity_layer: str | None = None,
        max_class_scalars: int = MAX_CLASS_SCALARS,
    ) -> None:
        super().__init__()
        if image_size is not None and image_size < 1:
            raise ConfigError(f"model.image_size is {image_size}; give a positive number of pixels such as 224")
        if views < 1:
            raise ConfigError(f"model.views is {views}; give a positive number of views per image, e.g. 1 or 4")
        if not validation.fraction_or_count(exact_view_steps):
            raise ConfigError(
                f"model.exact_view_steps is {exact_view_steps}; give a number of final steps such as 16, "
                "or a fraction of the run in [0, 1] such as 0.125 (0: none)"
            )
        if not validation.fraction_or_count(average_steps):
            raise ConfigError(
                f"model.average_steps is {average_steps}; give a number of final steps such as 32, "
                "or a fraction of the run in [0, 1] such as 0.25 (0: none)"
            )
        if not (isinstance(average_decay, (int, float)) and 0 <= average_decay < 1):
            raise ConfigError(f"model.average_decay is {average_decay}; give a weight in [0, 1) such as 0.9")
        if batch_size is not None and batch_size < 1:
            raise ConfigError(f"model.batch_size is {batch_size}; give a positive number of images or null")
        if samples_per_class < 1:
            raise ConfigError(f"model.samples_per_class is {samples_per_class}; give a positive number such as 1 or 4")
        if not (isinstance(diversity_weight, (int, float)) and math.isfinite(diversity_weight)) or diversity_weight < 0:
            raise ConfigError(
                f"model.diversity_weight is {diversity_weight}; give a non-negative weight such as 0 (off) or 10"
            )
        if max_class_scalars < 0:
            raise ConfigError(f"model.max_class_scalars is {max_class_scalars}; give a number of classes, 0 or more")
        # A module instance is not pickled into hparams and checkpoints: its class name stands in.
        self.save_hyperparameters(ignore=[] if isinstance(classifier, str) else ["classifier"])
        if not isinstance(classifier, str):
            self.hparams["classifier"] = classifiers.describe(classifier)
        # Optimized by hand: each forward pass (chunk) is differentiated on its own, then one step.
        self.automatic_optimization = False
        try:
            self.classifier = classifiers.build_classifier(classifier, weights, seed=seed)
        except ConfigError as error:
            raise ConfigError(f"model.classifier / model.weights: {error}") from None
        self.class_names = classifiers.class_names(classifier, self.classifier)
        input_side, mean, std = classifiers.input_spec(classifier, self.classifier)
        try:
            self.classes = classifiers.resolve_classes(classes, self.class_names)
        except ConfigError as error:
            raise ConfigError(f"model.classes: {error}") from None
        #: per class of the run, its name in tags and file names: ``259_pomeranian``
        self.tags = [f"{index}_{self.class_names[index].lower().replace(' ', '_')}" for index in self.classes]
        self.samples_per_class = samples_per_class
        #: per image of the run (class-major, then sample), its file name
        k = samples_per_class
        self.image_names = [tag if k == 1 else f"{tag}_{sample}" for tag in self.tags for sample in range(k)]
        self.image_factory = image or PixelImage
        self.image_size = image_size or input_side
        self.max_class_scalars = max_class_scalars
        self.normalize = v2.Normalize(mean, std) if normalize else nn.Identity()
        self.seed = seed
        self.average_steps, self.average_decay = average_steps, average_decay
        self.own(range(len(self.classes)), [len(self.image_names)])
        self.optimizer = optimizer
        self.lr_scheduler = lr_scheduler
        self.views = views
        self.exact_view_steps = exact_view_steps
        self.transforms = transforms or Resize()
        self.objective = ClassObjective(
            self.classifier, views, samples_per_class, diversity_weight, diversity_layer, regularizer_weights
        )
        self.batch_size = batch_size
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.classifier.to(memory_format=self.memory_format)
        self.display = display or Display()
        self._check_runnable()
        if compile:  # after the check, which would otherwise compile for the CPU first
            self.classifier.compile()

    def _check_runnable(self) -> None:
        """Fail at construction, before a Trainer writes anything, if the optimizer cannot be built
        or one image cannot go through the views and the classifier."""
        parameters = [nn.Parameter(torch.zeros(1))]
        try:
            optimizer = self.optimizer(parameters) if self.optimizer else torch.optim.SGD(parameters, lr=1.0)
        except (ValueError, TypeError) as error:
            raise ConfigError(f"model.optimizer cannot be built ({error}); fix its init_args") from None
        if self.lr_scheduler is not None:
            try:
                self.lr_scheduler(optimizer)
            except (ValueError, TypeError, KeyError) as error:
                raise ConfigError(f"model.lr_scheduler cannot be built ({error}); fix its init_args") from None
        work = torch.zeros(1, 2, dtype=torch.long)
        try:
            with torch.no_grad():
                logits = self.scores(self.transforms(self.image(work[:, 0]), self.view_keys(work)))
        except RuntimeError as error:
            reason = str(error).splitlines()[0]
            raise ConfigError(
                f"one {self.image_size}-px image cannot go through classifier {self.hparams.classifier} "
                f"({reason}); the image size is likely too small for it: use e.g. model.image_size: 224"
            ) from None
        if logits.shape[-1] != len(self.class_names):
            raise ConfigError(
                f"classifier {self.hparams.classifier} gives {logits.shape[-1]} scores but has "
                f"{len(self.class_names)} class names; give the network a matching `categories` list"
            )

    def own(self, positions: range, row_counts: list[int]) -> None:
        """Hold the images of the classes at these positions of the run (a contiguous block), and
        only those: ``owned_rows`` are their rows among all the run's images, ``row_counts`` the
        rows each process holds."""
        k = self.samples_per_class
        self.owned_rows = range(positions.start * k, positions.stop * k)
        self.row_counts = row_counts
        starts = [sum(row_counts[:rank]) for rank in range(len(row_counts))]
        #: the rows of the run's images each process holds
        self.all_rows = [range(start, start + count) for start, count in zip(starts, row_counts)]
        row_classes = [self.classes[position] for position in positions for _ in range(k)]
        #: per image row of this process, its ImageNet class and its class position in the run
        self.register_buffer("class_indices", torch.tensor(row_classes, dtype=torch.long), persistent=False)
        self.register_buffer(
            "row_positions", torch.arange(positions.start, positions.stop).repeat_interleave(k), persistent=False
        )
        self.image: ClassImages = self.image_factory(row_classes, self.image_size, self.seed)
        self.image_average = ImageAverage(self.image, self.average_decay) if self.average_steps else None

    @override
    def setup(self, stage: str) -> None:
        """Under ``owned_classes``, keep only this process's share of the classes: their images
        are made from their own random streams, the same as in a single-process run."""
        trainer = self.trainer
        if uses_ownership(trainer.strategy):
            shares = [owned_classes(len(self.classes), rank, trainer.world_size) for rank in range(trainer.world_size)]
            self.own(shares[trainer.global_rank], [len(share) * self.samples_per_class for share in shares])
        else:
            check_strategy(trainer.strategy, trainer.world_size)

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
        random view may depend on (the samples of a class see the same views)."""
        constant = torch.ones_like(work[:, 0])
        return torch.stack(
            [constant * self.seed, self.class_indices[work[:, 0]], work[:, 1], constant * self.global_step], dim=1
        )

    def _loss(self, work: Tensor, with_stats: bool = False) -> tuple[Tensor, dict[str, Tensor]]:
        """The objective's loss over ``work`` items (image row, view); with ``with_stats``
        (logging steps only), each item's score, probability, rank and top-1 too."""
        rows = work[:, 0]
        # Images and views in float32 even under bf16 autocast, which would coarsen the warps'
        # sampling grids and the colour mixing; only the classifier runs in low precision.
        with torch.autocast(self.device.type, enabled=False):
            images = self.image(rows)
            views = self.transforms(images, self.view_keys(work))
            if self._scores_exact_views():
                picture = resized(images, views.shape[-1])
                views = torch.where((work[:, 1] == 0)[:, None, None, None], picture, views)
        with self.objective.capture() as features:
            logits = self.scores(views)
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
        target = class_logit(logits, self.class_indices[rows])
        stats = self._stats(logits, target, rows) if with_stats else {}
        groups = self.row_positions[rows] * self.views + work[:, 1]  # a class's samples under one view
        return self.objective.loss(target, images, features, groups), stats

    def _scores_exact_views(self) -> bool:
        """Whether this step is one of the last ``exact_view_steps`` of the run."""
        return self.global_step >= self._first_of_last(self.exact_view_steps)

    def _first_of_last(self, steps: int | float) -> float:
        """The first step of the run's last ``steps``; infinite for none."""
        max_steps = self.trainer.max_steps
        count = round(steps * max_steps) if isinstance(steps, float) else steps
        return max(0, max_steps - count) if count > 0 else math.inf

    @torch.no_grad()
    def _stats(self, logits: Tensor, target: Tensor, rows: Tensor) -> dict[str, Tensor]:
        """Each item's target score, probability, rank (1: the classifier's top class) and top-1 (0 or 1)."""
        probability = logits.softmax(1).gather(1, self.class_indices[rows, None]).squeeze(1)
        rank = ((logits > target[:, None]).sum(1) + 1).to(probability.dtype)
        return {"score": target.detach(), "prob": probability, "rank": rank, "top1": (rank == 1).to(rank.dtype)}

    def chunks(self, work: Tensor) -> tuple[Tensor, ...]:
        """``work`` cut into classifier forward passes of about ``batch_size`` items, never
        splitting the items the objective compares with each other (a class's samples)."""
        group = self.objective.group_items
        size = max(group, (self.batch_size or AUTO_BATCH_SIZE) // group * group)
        return work.split(size) if len(work) else ()  # none on a process that owns no class

    @override
    def training_step(self, work: Tensor, batch_idx: int) -> Tensor:
        """One optimizer step over this process's images: each ``batch_size`` chunk is
        differentiated on its own (one chunk's activations held at a time), then one step.

        No gradient crosses processes: each owns its images, and computes their whole gradient.
        """
        optimizer = self.optimizers()
        step = self.global_step
        optimizer.zero_grad()
        logging = self._is_log_step()
        losses, chunk_stats = [], []
        for chunk in self.chunks(work):
            loss, stats = self._loss(chunk, logging)
            self.manual_backward(loss)
            losses.append(loss.detach())
            chunk_stats.append(stats)
        if not losses:  # owning no class: empty gradients, so the optimizer state has every entry the others' has
            self.manual_backward(sum(p.sum() for p in self.image.parameters()))
        loss = torch.stack(losses).sum() if losses else self._zero()
        if logging:  # before the step: the values describe the images after ``global_step`` steps
            metrics = self._log_metrics(work, loss, chunk_stats)
            # CPU tensors: Lightning keeps them where they are, so the progress bar costs no sync.
            progress = {key: torch.tensor(metrics[key]) for key in ("loss", "prob")}
            self.log_dict(progress, prog_bar=True, logger=False, batch_size=1)
        optimizer.step()
        scheduler = self.lr_schedulers()
        if scheduler is not None:  # manual optimization: Lightning leaves the stepping to the module
            scheduler.step()
        first = self._first_of_last(self.average_steps)
        if self.image_average is not None and step >= first:  # ``step``: the optimizer step has counted itself
            self.image_average.update(self.image, first=step == first)
            if step == self.trainer.max_steps - 1:  # before the callbacks' end of the run: they see the average
                self.image_average.swap(self.image)
        return loss

    def _zero(self) -> Tensor:
        """A zero in the dtype of the losses and scores (as every process's, for collectives)."""
        dtype = torch.promote_types(next(self.image.parameters()).dtype, torch.float32)
        return torch.zeros((), dtype=dtype, device=self.device)

    def _is_log_step(self) -> bool:
        """Every ``trainer.log_every_n_steps`` steps, counting from the first."""
        return self.global_step % (self.trainer.log_every_n_steps or self.trainer.max_steps) == 0

    def _log_metrics(self, work: Tensor, loss: Tensor, chunk_stats: list[dict[str, Tensor]]) -> dict[str, float]:
        """Loss, per-class score/prob/rank, summaries over all images and image statistics,
        summed over processes, written to the loggers and returned.

        Called on logging steps only (a host sync and a small all-reduce: four numbers per
        image); the values describe the images after ``global_step`` optimizer steps, and are
        logged at that step, like the image snapshots. Runs of more than ``max_class_scalars``
        classes get no per-class tags: histograms of each image's probability and rank instead.
        """
        keys = ("score", "prob", "rank", "top1")
        stats = [torch.stack([s[key] for key in keys], 1) for s in chunk_stats if s]
        per_image = self._zero().new_zeros(len(self.image_names), len(keys))
        values = torch.cat(stats) if stats else per_image[:0]
        per_image.index_add_(0, work[:, 0].to(self.device) + self.owned_rows.start, values.to(self.device) / self.views)
        strategy = self.trainer.strategy
        per_image = strategy.reduce(per_image, reduce_op="sum")
        total_loss = strategy.reduce(loss.to(self.device), reduce_op="sum")
        per_class = per_image.view(len(self.classes), self.samples_per_class, len(keys)).mean(1)
        probability = per_image[:, 1]
        metrics = {
            "loss": total_loss.item(),
            "prob": probability.mean().item(),
            "hp_metric": probability.mean().item(),
            "summary/prob_min": probability.min().item(),
            "summary/top1_fraction": (per_image[:, 3] == 1).double().mean().item(),
        }
        if len(self.classes) <= self.max_class_scalars:
            for column, values in zip(keys[:3], per_class.T.tolist()):
                metrics.update({f"{column}/{tag}": value for tag, value in zip(self.tags, values)})
        metrics.update({f"image/{key}": value.item() for key, value in self.image_statistics().items()})
        for logger in self.loggers:
            logger.log_metrics(metrics, step=self.global_step)
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_histogram("histograms/prob", probability.cpu(), self.global_step)
                logger.experiment.add_histogram("histograms/rank", per_image[:, 2].cpu(), self.global_step)
        return metrics

    @override
    def on_train_end(self) -> None:
        """Score the final images, after the last step, so the scalars end where the images do."""
        work = work_items(len(self.owned_rows), self.views).to(self.device)
        with torch.no_grad():
            scored = [self._loss(chunk, with_stats=True) for chunk in self.chunks(work)]
        loss = sum((loss for loss, _ in scored), self._zero())
        self._log_metrics(work, loss, [stats for _, stats in scored])

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
            "lr_scheduler": type(self.lr_schedulers()).__name__ if self.lr_scheduler else "none",
            "views": self.views,
            "average_steps": self.average_steps,
            "transforms": type(self.transforms).__name__,
            "batch_size": self.batch_size,
            "samples_per_class": self.samples_per_class,
            "diversity_weight": self.objective.diversity_weight if self.objective.uses_diversity else 0.0,
            "max_steps": self.trainer.max_steps,
            "devices": self.trainer.world_size,
            "precision": str(self.trainer.precision),
            "seed": self.seed,
        }

    @override
    def on_train_start(self) -> None:
        """Hyperparameters are logged once, here, where the optimizer and trainer are known. A run
        resumed from the end of one that averaged its images goes on from its last step's images."""
        if self.image_average is not None and self.image_average.swapped:
            self.image_average.swap(self.image)
        for logger in self.loggers:
            logger.log_hyperparams(self.run_summary())

    @torch.no_grad()
    def render(self, rows: Sequence[int] | None = None) -> Tensor:
        """This process's current images at these rows (all by default), ``[K, 3, size, size]``;
        row ``i`` is the run's image ``owned_rows[i]``."""
        if rows is None:
            rows = range(len(self.owned_rows))
        with torch.autocast(self.device.type, enabled=False):
            return self.image(torch.as_tensor(list(rows), dtype=torch.long, device=self.device)).detach()

    @torch.no_grad()
    def image_statistics(self) -> dict[str, Tensor]:
        """Mean, std, min and max over all images of the run, rendered ``batch_size`` at a time
        and combined over processes."""
        chunk = self.batch_size or AUTO_BATCH_SIZE
        moments = torch.zeros(3, dtype=torch.float64, device=self.device)  # count, sum, sum of squares
        low = torch.tensor(torch.inf, dtype=torch.float64, device=self.device)
        high = -low
        for start in range(0, len(self.owned_rows), chunk):
            part = self.render(range(start, min(start + chunk, len(self.owned_rows)))).double()
            moments += torch.stack([part.new_tensor(part.numel()), part.sum(), part.square().sum()])
            low, high = torch.minimum(low, part.min()), torch.maximum(high, part.max())
        strategy = self.trainer.strategy
        if self.trainer.world_size > 1:
            moments = strategy.reduce(moments, reduce_op="sum")
            low, high = strategy.reduce(low, reduce_op=ReduceOp.MIN), strategy.reduce(high, reduce_op=ReduceOp.MAX)
        count, total, squares = moments
        mean = total / count
        return {
            "mean": mean.float(),
            "std": (squares / count - mean**2).clamp_min(0).sqrt().float(),
            "min": low.float(),
            "max": high.float(),
        }

    @override
    def configure_optimizers(self) -> torch.optim.Optimizer | dict:
        """The optimizer sees the image parameters alone: the classifier is not trained. A
        schedule is handed to Lightning, which saves and restores its state with the checkpoint."""
        if self.optimizer is None:
            optimizer = torch.optim.AdamW(
                self.image.parameters(), lr=SEED_LEARNING_RATE, weight_decay=SEED_WEIGHT_DECAY
            )
        else:
            optimizer = self.optimizer(self.image.parameters())
        if self.lr_scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.lr_scheduler(optimizer), "interval": "step"}}

    @override
    def train_dataloader(self):
        trainer = self.trainer
        if trainer.max_steps is None or trainer.max_steps < 1:
            raise ConfigError(f"trainer.max_steps is {trainer.max_steps}; give the number of optimizer steps, e.g. 200")
        return step_loader(len(self.owned_rows), self.views, trainer.max_steps)

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
            dtype = saved.pop()
            self.image.to(dtype=dtype)
            if self.image_average is not None:
                self.image_average.to(dtype=dtype)
        state.update({f"classifier.{k}": v for k, v in self.classifier.state_dict().items()})
