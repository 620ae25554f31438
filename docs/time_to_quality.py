"""Draws the time-to-quality plot of the README: the judge's mean probability against the
classifier passes spent per class, one line per recipe.

Input: a JSON file ``{"recipe name": [[passes, mean probability], ...], ...}`` (the README's
measurements are in ``docs/time-to-quality.json``). Needs matplotlib (``pip install -e ".[docs]"``).

    python docs/time_to_quality.py docs/time-to-quality.json docs/time-to-quality.png
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display needed
import matplotlib.pyplot as plt


def plot_curves(axes, curves: dict[str, list[list[float]]]) -> list:
    """One line per recipe on ``axes``, every one drawn (colours repeat past 20); the lines."""
    colours = plt.get_cmap("tab20").colors[::2] + plt.get_cmap("tab20").colors[1::2]  # more than 10 lines
    lines = []
    for index, ((name, points), colour) in enumerate(zip(curves.items(), itertools.cycle(colours))):
        passes, probability = zip(*sorted(points))
        # The first entry (the recipe as shipped) as a star on top of the others.
        style = {"marker": "*", "markersize": 14, "zorder": 5} if index == 0 else {"marker": "o"}
        lines += axes.plot(passes, probability, label=name, color=colour, **style)
    return lines


def draw(curves: dict[str, list[list[float]]], output: Path, judge: str = "EfficientNet-Lite1") -> None:
    """One line per recipe: classifier passes per class (steps x views, log scale) against the
    judge's mean probability of the target class, in [0, 1]."""
    # Tall enough for the legend's two-line entries beside the axes.
    figure, axes = plt.subplots(figsize=(6.4, max(4.0, 0.38 * len(curves))), dpi=100)
    plot_curves(axes, curves)
    axes.set_xscale("log", base=2)
    axes.set_xlabel("classifier passes per class (steps x views)")
    axes.set_ylabel(f"{judge}: mean target probability")
    axes.set_ylim(0, 1)
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figure.tight_layout()
    figure.savefig(output)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="JSON: recipe name -> [[passes, mean probability], ...]")
    parser.add_argument("output", type=Path, help="PNG to write")
    arguments = parser.parse_args()
    draw(json.loads(arguments.data.read_text()), arguments.output)


if __name__ == "__main__":
    main()
