"""Draws the README's side-by-side picture: one row per recipe, one column per class, each row
from a folder of exported ``<index>_<name>.png`` pictures, labelled on the left, saved as a small JPEG.

    python docs/side_by_side.py docs/side-by-side-lite0.jpg "seed=runs/seed/images" "new=runs/quality/version_0/images"
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from PIL import Image, ImageDraw

TILE = 128  # pixels per picture in the sheet
LABEL = 130  # width of the label column


def pictures(folder: Path) -> list[Path]:
    """A folder's class pictures in class-index order, as ``evaluate`` reads them."""
    named = [p for p in folder.glob("*.png") if re.match(r"^\d+_", p.name)]
    return sorted(named, key=lambda p: int(p.name.split("_", 1)[0]))


def draw(rows: list[tuple[str, Path]], output: Path, classes: list[int] | None = None, quality: int = 75) -> None:
    """The sheet; with ``classes``, only those classes' pictures, in that order."""

    def chosen(folder: Path) -> list[Path]:
        found = {int(p.name.split("_", 1)[0]): p for p in pictures(folder)}
        return list(found.values()) if classes is None else [found[index] for index in classes]

    columns = max(len(chosen(folder)) for _, folder in rows)
    sheet = Image.new("RGB", (LABEL + columns * TILE, len(rows) * TILE), "white")
    pen = ImageDraw.Draw(sheet)
    for row, (label, folder) in enumerate(rows):
        for line, text in enumerate(label.split("|")):
            pen.text((6, row * TILE + TILE // 2 - 14 + 14 * line), text, fill="black")
        for column, path in enumerate(chosen(folder)):
            with Image.open(path) as picture:
                tile = picture.convert("RGB").resize((TILE, TILE), Image.LANCZOS)
            sheet.paste(tile, (LABEL + column * TILE, row * TILE))
    sheet.save(output, quality=quality, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path, help="JPEG to write")
    parser.add_argument("rows", nargs="+", help="LABEL=FOLDER per row ('|' in a label breaks the line)")
    parser.add_argument("--classes", type=int, nargs="+", default=None, help="only these classes, in this order")
    arguments = parser.parse_args()
    rows = [(row.split("=", 1)[0], Path(row.split("=", 1)[1])) for row in arguments.rows]
    draw(rows, arguments.output, arguments.classes)


if __name__ == "__main__":
    main()
