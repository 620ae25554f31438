"""Step time as a user reads it: the wall times TensorBoard recorded with a run's logged scalars."""

from __future__ import annotations

from pathlib import Path


def step_seconds(run: Path) -> tuple[float, int] | None:
    """Seconds per step between the first and the last in-training ``loss`` scalar of a run under
    ``run``, and the steps between them; None when fewer than two such points were logged."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # slow import

    events = [path.parent for path in run.rglob("events.out.tfevents.*")]
    if not events:
        return None
    accumulator = EventAccumulator(str(events[0]))
    accumulator.Reload()
    if "loss" not in accumulator.Tags().get("scalars", []):
        return None
    # The last point is logged after the run's end hooks (the export among them): left out.
    points = accumulator.Scalars("loss")[:-1]
    if len(points) < 2:
        return None
    first, last = points[0], points[-1]
    return (last.wall_time - first.wall_time) / (last.step - first.step), last.step - first.step
