"""The terminal progress bar: redrawn by time, not every step, with the latest scores."""

from __future__ import annotations

from lightning.pytorch.callbacks import TQDMProgressBar

from maxclass_lightning.metrics import ScoreLogger
from maxclass_lightning.progress import ProgressBar
from tests.conftest import fit_in_process, tiny_args

STEPS = 12


class CountingBar(ProgressBar):
    """Counts the redraws of the training bar (each formats the metrics once)."""

    def __init__(self, redraw_seconds: float) -> None:
        super().__init__(redraw_seconds=redraw_seconds)
        self.redraws = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        before = self.train_progress_bar.n
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        self.redraws += self.train_progress_bar.n != before


def fit(tmp_path, *extra: str):
    args = tiny_args(tmp_path, f"--trainer.max_steps={STEPS}", "--trainer.log_every_n_steps=3", *extra)
    return fit_in_process(args).trainer


def test_the_default_bar_is_replaced_and_shows_the_logged_scores_without_self_log(tmp_path):
    trainer = fit(tmp_path, "--trainer.enable_progress_bar=true")
    bar = trainer.progress_bar_callback
    assert type(bar) is ProgressBar
    assert sum(isinstance(callback, TQDMProgressBar) for callback in trainer.callbacks) == 1
    assert bar.train_progress_bar.n == STEPS  # the last step is always drawn
    scores = next(callback for callback in trainer.callbacks if isinstance(callback, ScoreLogger))
    shown = bar.get_metrics(trainer, trainer.lightning_module)
    assert shown["prob"] == scores.latest["prob"] and shown["loss"] == scores.latest["loss"]
    assert 0 < shown["prob"] < 1
    assert "prob" not in trainer.progress_bar_metrics  # not carried through LightningModule.log


def test_redraws_are_gated_by_time_and_the_last_step_is_drawn(tmp_path):
    bar_option = "--trainer.enable_progress_bar=true", "--trainer.callbacks+=tests.test_progress.CountingBar"
    seldom = fit(tmp_path / "seldom", *bar_option, "--trainer.callbacks.redraw_seconds=3600").progress_bar_callback
    always = fit(tmp_path / "always", *bar_option, "--trainer.callbacks.redraw_seconds=0").progress_bar_callback
    assert isinstance(seldom, CountingBar) and isinstance(always, CountingBar)  # the user's own bar is kept
    assert always.redraws == STEPS
    assert 1 <= seldom.redraws <= 2  # the first step, and the last
    assert seldom.train_progress_bar.n == STEPS


def test_no_bar_when_the_user_turns_it_off(tmp_path):
    trainer = fit(tmp_path, "--trainer.enable_progress_bar=false")
    assert trainer.progress_bar_callback is None
    assert not any(isinstance(callback, TQDMProgressBar) for callback in trainer.callbacks)


class UsersBar(TQDMProgressBar):
    """A bar of the user's own, not the app's."""


def test_a_users_own_bar_is_kept_and_gets_the_scores_through_lightning(tmp_path):
    bar_option = "--trainer.callbacks+=tests.test_progress.UsersBar"
    trainer = fit(tmp_path, "--trainer.enable_progress_bar=true", bar_option)
    assert type(trainer.progress_bar_callback) is UsersBar
    assert 0 < trainer.progress_bar_metrics["prob"] < 1
