"""What a run reports while its images form: each image's target score, probability and rank,
summaries over all images, the images' statistics and the run's hyperparameters, to the loggers
(TensorBoard) and the progress bar.

The module hands over the scores it computed anyway on a logging step (``StepScores``, from the
logits of the step's own forward passes: no extra pass); ``ScoreLogger`` sums them over processes
and writes them before the optimizer step, so every value describes the images after
``global_step`` steps, like the image snapshots of that step.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from torch import Tensor
from torch.distributed import ReduceOp
from typing_extensions import override

from maxclass_lightning.checkpoints import run_directory
from maxclass_lightning.classifiers import describe
from maxclass_lightning.data import work_items
from maxclass_lightning.objectives import target_scores

#: Classes up to which each class gets its own TensorBoard tags (``prob/259_pomeranian``,
#: ``images/259_pomeranian``): beyond, thousands of tags make the browser unusable, and histograms
#: and the grid show all classes.
MAX_CLASS_TAGS = 32

#: The columns of ``StepScores.items``.
COLUMNS = ("score", "prob", "rank", "top1")

#: The final scores, in the run folder: ``[{"name", "class", "label", "score", "probability", "rank"}]``.
SCORES_FILE = "scores.json"

#: The scores the progress bar shows.
PROGRESS_BAR = ("loss", "prob")

#: Classes named one by one in the hyperparameters' ``classes`` entry.
SUMMARY_CLASSES = 16


@dataclass
class StepScores:
    """One step's scores: ``work`` ``[K, 2]`` (image row, view), each item's ``COLUMNS`` ``[K, 4]``
    and the step's loss (this process's share)."""

    work: Tensor
    items: Tensor
    loss: Tensor

    @classmethod
    def of(cls, work: Tensor, chunks: list[Tensor], loss: Tensor) -> StepScores:
        """From the scores of each forward pass (none on a process that owns no class)."""
        return cls(work, torch.cat(chunks) if chunks else loss.new_zeros(0, len(COLUMNS)), loss)


@torch.no_grad()
def current_scores(module: LightningModule) -> StepScores:
    """The scores of the module's current images, every view, as a step at ``global_step`` sees them."""
    work = work_items(len(module.owned_rows), module.views).to(module.device)
    scored = [module.loss(chunk, with_scores=True) for chunk in module.chunks(work)]
    return StepScores.of(work, [scores for _, scores in scored], sum((loss for loss, _ in scored), module.zero()))


def item_scores(logits: Tensor, score: Tensor, references: Tensor) -> Tensor:
    """Each item's score (its class's logit or its objective's value), and the probability, rank
    (1: the top class) and top-1 (0 or 1) of its reference class (-1: the classifier's top class),
    ``[K, 4]``."""
    classes = torch.where(references >= 0, references, logits.argmax(1))
    _, probability, rank = target_scores(logits, classes)
    rank = rank.to(probability.dtype)
    return torch.stack([score, probability, rank, (rank == 1).to(rank.dtype)], 1)


class ScoreLogger(Callback):
    """Writes the scores of the images every ``trainer.log_every_n_steps`` steps and of the final
    images at the end; their mean probability to the progress bar; the hyperparameters once.

    Per class: ``score/``, ``prob/``, ``rank/<index>_<name>`` (runs of up to ``MAX_CLASS_TAGS``
    classes); for all images: ``histograms/prob`` and ``histograms/rank`` (runs of two images or
    more), ``summary/prob_min``, ``summary/top1_fraction``, ``hp_metric`` (the mean probability),
    ``loss`` and ``image/mean``, ``std``, ``min``, ``max``. A logging step costs one
    device-to-host copy and a small all-reduce (four numbers per image); ``latest`` keeps the
    ``PROGRESS_BAR`` values for ``progress.ProgressBar``, which Lightning's ``self.log`` would
    cost milliseconds a logging step to carry.
    """

    def __init__(self) -> None:
        self.latest: dict[str, float] = {}

    @override
    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        for logger in trainer.loggers:
            logger.log_hyperparams(run_summary(trainer, pl_module))

    @override
    def on_before_optimizer_step(self, trainer: Trainer, pl_module: LightningModule, optimizer) -> None:
        scores, pl_module.step_scores = pl_module.step_scores, None
        if scores is not None:
            self.log_scores(trainer, pl_module, scores)
            from maxclass_lightning.progress import ProgressBar  # here: progress imports this module

            if not isinstance(trainer.progress_bar_callback, ProgressBar):  # the user's own bar: through Lightning
                progress = {key: torch.tensor(self.latest[key]) for key in PROGRESS_BAR}  # CPU: no sync
                pl_module.log_dict(progress, prog_bar=True, logger=False, batch_size=1)

    @override
    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Score the final images, after the last step, so the scalars end where the images do,
        and write them as ``<run>/scores.json`` (global rank 0) for the gallery and scripts."""
        per_image = self.log_scores(trainer, pl_module, current_scores(pl_module))
        if trainer.is_global_zero:
            write_scores(run_directory(trainer) / SCORES_FILE, pl_module, per_image)

    def log_scores(self, trainer: Trainer, pl_module: LightningModule, scores: StepScores) -> Tensor:
        """Sum ``scores`` over processes, write them at ``global_step`` and return every image's
        ``COLUMNS`` (``[images, 4]``, float64, on the host)."""
        names, views = pl_module.image_names, pl_module.views
        per_image = scores.items.new_zeros(len(names), len(COLUMNS))
        per_image.index_add_(0, scores.work[:, 0] + pl_module.owned_rows.start, scores.items / views)
        strategy = trainer.strategy
        per_image = strategy.reduce(per_image, reduce_op="sum")
        loss = strategy.reduce(scores.loss, reduce_op="sum")
        statistics = image_statistics(trainer, pl_module)
        # One device-to-host copy for everything written (each ``.item()`` would be a sync).
        values = [per_image.double().flatten(), loss.double().view(1), torch.stack(list(statistics.values())).double()]
        host = torch.cat(values).cpu().split([len(part) for part in values])
        per_image_host, loss_value, image_values = host[0].view_as(per_image), host[1], host[2]
        probability = per_image_host[:, 1]
        metrics = {
            "loss": loss_value.item(),
            "prob": probability.mean().item(),
            "hp_metric": probability.mean().item(),
            "summary/prob_min": probability.min().item(),
            "summary/top1_fraction": (per_image_host[:, 3] == 1).double().mean().item(),
        }
        classes, tags = pl_module.classes, pl_module.tags
        if len(classes) <= MAX_CLASS_TAGS:
            per_class = per_image_host.view(len(classes), pl_module.samples_per_class, len(COLUMNS)).mean(1)
            for column, values in zip(COLUMNS[:3], per_class.T.tolist()):
                metrics.update({f"{column}/{tag}": value for tag, value in zip(tags, values)})
        metrics.update({f"image/{key}": value for key, value in zip(statistics, image_values.tolist())})
        self.latest = {key: metrics[key] for key in PROGRESS_BAR}
        step = trainer.global_step
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=step)
            if isinstance(logger, TensorBoardLogger) and len(probability) > 1:  # one image: a histogram of one value
                logger.experiment.add_histogram("histograms/prob", probability.float(), step)
                logger.experiment.add_histogram("histograms/rank", per_image_host[:, 2].float(), step)
        return per_image_host


def write_scores(path: Path, pl_module: LightningModule, per_image: Tensor) -> None:
    """Each image's final score, probability and rank as JSON, written atomically."""
    k = pl_module.samples_per_class
    records = [
        {
            "name": name,
            "class": pl_module.references[row // k],
            "label": pl_module.labels[row // k],
            "score": score,
            "probability": probability,
            "rank": int(rank),
        }
        for row, (name, (score, probability, rank, _)) in enumerate(zip(pl_module.image_names, per_image.tolist()))
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(records, indent=1))
    partial.replace(path)


@torch.no_grad()
def image_statistics(trainer: Trainer, pl_module: LightningModule) -> dict[str, Tensor]:
    """Mean, std, min and max over all images of the run, rendered a forward pass's worth at a
    time and combined over processes: a saturating score or an exploding image shows here."""
    count, chunk = len(pl_module.owned_rows), pl_module.pass_size()
    device = pl_module.device
    moments = torch.zeros(3, dtype=torch.float64, device=device)  # count, sum, sum of squares
    low = torch.tensor(torch.inf, dtype=torch.float64, device=device)
    high = -low
    for start in range(0, count, chunk):
        part = pl_module.render(range(start, min(start + chunk, count))).double()
        moments += torch.stack([part.new_tensor(part.numel()), part.sum(), part.square().sum()])
        low, high = torch.minimum(low, part.min()), torch.maximum(high, part.max())
    if trainer.world_size > 1:
        strategy = trainer.strategy
        moments = strategy.reduce(moments, reduce_op="sum")
        low, high = strategy.reduce(low, reduce_op=ReduceOp.MIN), strategy.reduce(high, reduce_op=ReduceOp.MAX)
    total_count, total, squares = moments
    mean = total / total_count
    return {
        "mean": mean.float(),
        "std": (squares / total_count - mean**2).clamp_min(0).sqrt().float(),
        "min": low.float(),
        "max": high.float(),
    }


def run_summary(trainer: Trainer, pl_module: LightningModule) -> dict[str, int | float | str | bool | None]:
    """What defines the run, for TensorBoard's hyperparameter view and hparams.yaml."""
    hparams, tags = pl_module.hparams, pl_module.tags
    optimizer = trainer.optimizers[0]
    group = optimizer.param_groups[0]
    scheduler = pl_module.lr_schedulers()
    shown = tags if len(tags) <= SUMMARY_CLASSES else [*tags[:SUMMARY_CLASSES], f"... {len(tags)} classes"]
    return {
        "classes": ", ".join(shown),
        "num_classes": len(pl_module.classes),
        "image_size": hparams.image_size,
        "classifier": describe(hparams.classifier),
        "weights": str(hparams.weights),
        "normalize": hparams.normalize,
        "image": type(pl_module.image).__name__,
        "optimizer": type(optimizer).__name__,
        "lr": group["lr"],
        "weight_decay": group.get("weight_decay", 0.0),
        "lr_scheduler": type(scheduler).__name__ if scheduler is not None else "none",
        "views": pl_module.views,
        "average_steps": hparams.average_steps,
        "transforms": type(pl_module.transforms).__name__,
        "batch_size": hparams.batch_size,
        "samples_per_class": pl_module.samples_per_class,
        "diversity_weight": pl_module.objective.diversity_weight if pl_module.objective.uses_diversity else 0.0,
        "max_steps": trainer.max_steps,
        "devices": trainer.world_size,
        "precision": str(trainer.precision),
        "seed": pl_module.seed,
    }
