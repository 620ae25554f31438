"""``python -m maxclass_lightning gallery``: a run's pictures as a static web page to browse.

``build`` writes ``<run>/gallery/index.html``: a grid of thumbnails, one tile per class, with the
run's scores where the run has them (``scores.json``, else the last TensorBoard point of
``prob/<tag>`` and ``rank/<tag>``) and ``evaluate --json`` judges found in the run folder; a search
box (also read from ``index.html?q=...``), three sort orders, and a class page with every sample,
the score history and the command that reproduces the class. It opens from ``file://``: no server,
no network, everything it needs is copied from the package beside it.

Written by hand because the page is static and has no build step: the per-class data is one JSON
blob in the page, filled into a ``string.Template``; a template engine or a front-end framework
would add a dependency and gain nothing at this size. It needs no torch, so the command starts fast.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
import shlex
import string
import struct
import urllib.parse
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from PIL import Image

from maxclass_lightning.errors import ConfigError

#: Where ``build`` writes the page in the run folder.
GALLERY_FOLDER = "gallery"

#: The run folder's subfolder of PNGs (``callbacks.IMAGES_FOLDER``, not imported: that needs torch).
IMAGES_FOLDER = "images"

#: Runs of up to this many classes have per-class TensorBoard scalars (``metrics.MAX_CLASS_TAGS``,
#: not imported for the same reason); beyond, the event files are not read at all.
MAX_CLASS_TAGS = 32

#: The final scores a run writes beside its images: ``[{"name", "class", "probability", "rank"}]``.
SCORES_FILE = "scores.json"

#: The keys that make a JSON file ``evaluate --json`` output (a list of such records).
EVALUATION_KEYS = frozenset({"path", "target", "probability", "rank"})

#: Longest side of a grid thumbnail, pixels: a tile is shown at 128 CSS px.
THUMBNAIL_SIDE = 128

#: JPEG quality of the thumbnails: about 5 KB each, 5 MB for 1000 classes.
THUMBNAIL_QUALITY = 85

#: The package's folder of the page's template and assets.
ASSETS_FOLDER = "gallery"

#: Files copied from ``ASSETS_FOLDER`` next to ``index.html``.
ASSETS = ("gallery.css", "gallery.js")

#: The page template in ``ASSETS_FOLDER``.
TEMPLATE = "index.html"

#: A TFRecord's length and its CRC before the record; the record's CRC after it (bytes).
_RECORD_HEADER = struct.Struct("<Q4x")
_RECORD_FOOTER = 4

_CLASS_PICTURE = re.compile(r"^(\d+)_(.+)$")
_SAMPLE = re.compile(r"^(.+)_(\d+)$")


@dataclass(frozen=True, order=True)
class Picture:
    """One exported picture: class ``index``, its ``tag`` (``259_pomeranian``), which ``sample``
    of the class (0 when the run made one per class), and the file."""

    index: int
    tag: str
    sample: int
    path: Path


@dataclass
class Score:
    """A picture's or a class's target probability and rank (1: the top class; a class's mean
    rank over its samples may be fractional)."""

    probability: float
    rank: float | None


def locate(folder: Path) -> tuple[Path, Path]:
    """(run folder, folder of PNGs) for a run folder, its ``images/`` folder, or a bare folder of PNGs."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"gallery folder is {str(folder)!r}, not a folder; give a run folder or a folder of PNGs")
    if (folder / IMAGES_FOLDER).is_dir() and any((folder / IMAGES_FOLDER).glob("*.png")):
        return folder, folder / IMAGES_FOLDER
    if folder.name == IMAGES_FOLDER and (folder.parent / "hparams.yaml").exists():
        return folder.parent, folder
    return folder, folder


def find_pictures(images: Path) -> list[Picture]:
    """The class pictures in ``images`` (``<index>_<name>.png``, ``<index>_<name>_<sample>.png``;
    not the grid or contact sheet), by class index and sample."""
    by_class: dict[int, list[Path]] = defaultdict(list)
    for path in images.glob("*.png"):
        match = _CLASS_PICTURE.match(path.stem)
        if match:
            by_class[int(match.group(1))].append(path)
    pictures = []
    for index, paths in sorted(by_class.items()):
        samples = [_SAMPLE.match(path.stem) for path in paths]
        # Several pictures of a class are its samples, numbered after the tag (as the run names them).
        if len(paths) > 1 and all(samples) and len({match.group(1) for match in samples}) == 1:
            pictures += sorted(
                Picture(index, match.group(1), int(match.group(2)), p) for p, match in zip(paths, samples)
            )
        else:
            pictures += [Picture(index, path.stem, number, path) for number, path in enumerate(sorted(paths))]
    return pictures


def read_scores_file(path: Path) -> dict[str, Score]:
    """A run's ``scores.json``, by picture or class name."""
    records = json.loads(path.read_text())
    return {
        str(r["name"]): Score(float(r["probability"]), None if r.get("rank") is None else float(r["rank"]))
        for r in records
    }


def is_evaluation(records: object) -> bool:
    """Whether parsed JSON is ``evaluate --json`` output."""
    return (
        isinstance(records, list)
        and bool(records)
        and all(isinstance(r, dict) and r.keys() >= EVALUATION_KEYS for r in records)
    )


def find_evaluations(run: Path, output: Path, given: Sequence[Path] = ()) -> dict[str, dict[str, Score]]:
    """Each judge's scores by picture file name: the ``evaluate --json`` files ``given`` and those
    in the run folder (not the gallery's own), the judge named after the file (``lite1.json``: lite1)."""
    given = [Path(p).absolute() for p in given]
    output = output.absolute()
    found = [p.absolute() for p in sorted(run.rglob("*.json"))]
    found = [p for p in found if p.name != SCORES_FILE and output not in p.parents]
    judges: dict[str, dict[str, Score]] = {}
    for path in given + [p for p in found if p not in given]:
        try:
            records = json.loads(path.read_text())
        except (OSError, ValueError):
            records = None
        if not is_evaluation(records):
            if path in given:
                raise ConfigError(
                    f"evaluation is {str(path)!r}, not evaluate --json output; give evaluate's --json files"
                )
            continue
        judges[path.stem] = {Path(r["path"]).name: Score(float(r["probability"]), float(r["rank"])) for r in records}
    return judges


def scalar_events(path: Path) -> Iterator[tuple[str, int, float]]:
    """(tag, step, value) of every scalar in a TensorBoard event file.

    Written by hand (a TFRecord is a length, its CRC, the bytes and their CRC) because
    tensorboard's EventAccumulator checks each record's CRC in pure Python without TensorFlow:
    23 s for the 21 MB of image snapshots of a 6-class run (on 2 busy cores), for a few KB of
    scalars; this reads the same run in 0.05 s (``test_history_is_what_tensorboard_reads``).
    The records are parsed with tensorboard's own ``Event`` message; a truncated last record (a
    run still writing) ends the file.
    """
    from tensorboard.compat.proto.event_pb2 import Event

    with open(path, "rb") as file:
        while len(header := file.read(_RECORD_HEADER.size)) == _RECORD_HEADER.size:
            (length,) = _RECORD_HEADER.unpack_from(header)
            record = file.read(length)
            if len(record) < length or len(file.read(_RECORD_FOOTER)) < _RECORD_FOOTER:
                return
            event = Event.FromString(record)
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    yield value.tag, event.step, value.simple_value
                elif value.HasField("tensor") and len(value.tensor.float_val) == 1:  # new-style scalars
                    yield value.tag, event.step, value.tensor.float_val[0]


def read_tensorboard(run: Path, tags: Iterable[str]) -> dict[str, dict]:
    """Per class tag: the ``prob/<tag>`` points ``[[step, value], ...]`` and the last ``rank/<tag>``,
    from the run's TensorBoard event files in the order they were created (their names start with
    the time: a resumed run's later file wins at a step both have). Empty without event files."""
    wanted = {f"{column}/{tag}" for tag in tags for column in ("prob", "rank")}
    series: dict[str, dict[int, float]] = defaultdict(dict)
    for path in sorted(run.glob("events.out.tfevents.*")):
        for tag, step, value in scalar_events(path):
            if tag in wanted:
                series[tag][step] = value
    history = {}
    for tag in tags:
        points = sorted(series.get(f"prob/{tag}", {}).items())
        if points:
            ranks = sorted(series.get(f"rank/{tag}", {}).items())
            history[tag] = {"prob": [list(point) for point in points], "rank": ranks[-1][1] if ranks else None}
    return history


def thumbnail(source: Path, target: Path) -> None:
    """A JPEG of ``source`` at most ``THUMBNAIL_SIDE`` px, unless ``target`` is already newer."""
    if target.exists() and target.stat().st_mtime >= source.stat().st_mtime:
        return
    try:
        picture = Image.open(source)
    except OSError:
        raise ConfigError(f"{source} is not a picture Pillow can read; give PNG files") from None
    with picture:
        picture.draft("RGB", (THUMBNAIL_SIDE, THUMBNAIL_SIDE))  # JPEG sources decode at a reduced size
        picture = picture.convert("RGB")
        picture.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
        partial = target.with_name(target.name + ".partial")
        picture.save(partial, format="JPEG", quality=THUMBNAIL_QUALITY)
    os.replace(partial, target)


def url(path: Path, start: Path) -> str:
    """``path`` as a relative URL from the folder ``start``."""
    return urllib.parse.quote(Path(os.path.relpath(path, start)).as_posix())


def run_classifier(run: Path) -> str | None:
    """The classifier that made the run, from its ``hparams.yaml`` (``classifier: vgg16``)."""
    path = run / "hparams.yaml"
    if not path.exists():
        return None
    match = re.search(r"^classifier:\s*(\S.*)$", path.read_text(), re.MULTILINE)
    return match.group(1).strip().strip("'\"") if match else None


def reproduce_command(run: Path) -> str | None:
    """The command that makes a class again, with ``{index}`` for the class: the run's saved config
    with only that class (a class's pictures do not depend on the other classes of the run)."""
    config = run / "config.yaml"
    if not config.exists():
        return None
    return (
        f"python -m maxclass_lightning fit --config {shlex.quote(str(config.absolute()))} --model.classes='[{{index}}]'"
    )


def mean_score(scores: list[Score]) -> Score | None:
    """A class's score: the mean over its samples' (None without any)."""
    if not scores:
        return None
    ranks = [s.rank for s in scores]
    rank = None if None in ranks else sum(ranks) / len(ranks)
    return Score(sum(s.probability for s in scores) / len(scores), rank)


def as_pair(score: Score | None) -> list[float | None] | None:
    """``[probability, rank]`` for the page, rounded (it shows three decimals); a diverged run's
    NaN is an unknown score (JSON has no NaN)."""
    if score is None or not math.isfinite(score.probability):
        return None
    rank = score.rank if score.rank is not None and math.isfinite(score.rank) else None
    return [round(score.probability, 6), None if rank is None else round(rank, 3)]


def page_data(
    run: Path,
    output: Path,
    pictures: list[Picture],
    scores: dict[str, Score],
    judges: dict[str, dict[str, Score]],
    history: dict[str, dict[str, list]],
) -> dict:
    """Everything the page shows, as one JSON-ready dict: per class its index, name, pictures
    (thumbnail of the first, every sample's file), scores and history."""
    by_class: dict[int, list[Picture]] = defaultdict(list)
    for picture in pictures:
        by_class[picture.index].append(picture)
    classes = []
    for index, samples in by_class.items():
        tag = samples[0].tag
        own = [scores.get(p.path.stem) for p in samples]
        known = [s for s in own if s is not None]
        logged = history.get(tag, {})
        final = scores.get(tag) or mean_score(known)
        if final is None and logged.get("prob"):
            final = Score(logged["prob"][-1][1], logged["rank"])
        judged = {
            name: mean_score([s for p in samples if (s := found.get(p.path.name))]) for name, found in judges.items()
        }
        classes.append(
            {
                "index": index,
                "tag": tag,
                "name": tag[len(str(index)) + 1 :].replace("_", " "),
                "thumbnail": url(output / "thumbnails" / f"{samples[0].path.stem}.jpg", output),
                "samples": [
                    {
                        "sample": p.sample,
                        "file": url(p.path, output),
                        "score": as_pair(s),
                        "judges": {name: as_pair(found.get(p.path.name)) for name, found in judges.items()},
                    }
                    for p, s in zip(samples, own)
                ],
                "score": as_pair(final),
                "judges": {name: as_pair(score) for name, score in judged.items()},
                "history": [[step, round(value, 6)] for step, value in logged.get("prob", []) if math.isfinite(value)],
            }
        )
    return {
        "title": f"{run.parent.name}/{run.name}" if run.parent.name else run.name,
        "classifier": run_classifier(run),
        "command": reproduce_command(run),
        "judges": sorted(judges),
        "classes": classes,
    }


def write_page(output: Path, data: dict) -> Path:
    """``index.html`` with ``data`` embedded, and the package's CSS and JS beside it."""
    assets = resources.files("maxclass_lightning") / ASSETS_FOLDER
    for name in ASSETS:
        (output / name).write_bytes((assets / name).read_bytes())
    blob = json.dumps(data, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    page = string.Template((assets / TEMPLATE).read_text(encoding="utf-8")).substitute(
        title=html.escape(data["title"]), data=blob
    )
    index = output / "index.html"
    partial = output / "index.html.partial"
    partial.write_text(page, encoding="utf-8")
    os.replace(partial, index)
    return index


def build(
    folder: Path,
    output: Path | None = None,
    evaluations: Sequence[Path] = (),
    history: bool = True,
    workers: int | None = None,
) -> Path:
    """Write the gallery of ``folder`` (a run folder, its ``images/``, or a folder of PNGs) into
    ``output`` (default ``<run>/gallery``) and return its ``index.html``.

    ``evaluations``: ``evaluate --json`` files besides those in the run folder. ``history``: read
    the scores over steps from the TensorBoard event files (runs of up to ``MAX_CLASS_TAGS``
    classes have them). ``workers``: thumbnail threads (default: one per CPU core).
    """
    run, images = locate(Path(folder))
    pictures = find_pictures(images)
    if not pictures:
        raise ConfigError(
            f"gallery folder is {str(folder)!r}, which has no class PNGs; "
            "give a run folder or a folder of <index>_<name>.png"
        )
    output = Path(output) if output is not None else run / GALLERY_FOLDER
    scores = read_scores_file(run / SCORES_FILE) if (run / SCORES_FILE).exists() else {}
    judges = find_evaluations(run, output, evaluations)
    (output / "thumbnails").mkdir(parents=True, exist_ok=True)
    firsts = {picture.index: picture for picture in reversed(pictures)}.values()  # each class's first sample
    with ThreadPoolExecutor(workers or os.cpu_count()) as pool:
        jobs = [pool.submit(thumbnail, p.path, output / "thumbnails" / f"{p.path.stem}.jpg") for p in firsts]
        tags = sorted({picture.tag for picture in pictures})
        logged = read_tensorboard(run, tags) if history and len(tags) <= MAX_CLASS_TAGS else {}
        for job in jobs:
            job.result()
    return write_page(output, page_data(run, output, pictures, scores, judges, logged))


def parser():
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(
        prog="python -m maxclass_lightning gallery",
        description="Write a run's pictures as a web page to browse: <run>/gallery/index.html.",
        exit_on_error=False,
    )
    parser.add_argument("folder", help="a run folder (runs/<name>/version_<n>) or a folder of <index>_<name>.png")
    parser.add_argument("--output", type=str | None, default=None, help="the gallery's folder (default: <run>/gallery)")
    parser.add_argument(
        "--evaluations", nargs="+", default=[], help="evaluate --json files to show (those in the run folder are found)"
    )
    return parser


def command(argv: list[str]) -> int:
    """``python -m maxclass_lightning gallery ...`` as ``main``, any bad input ending in one line
    (``parse_errors.fail``) as for the other subcommands."""
    from jsonargparse import ArgumentError

    from maxclass_lightning.parse_errors import fail

    try:
        return main(argv)
    except (ConfigError, ArgumentError) as error:
        fail(["gallery", *argv], error)


def main(argv: list[str]) -> int:
    """``gallery FOLDER [--output DIR] [--evaluations [FILE, ...]]``: build and print the page's path."""
    config = parser().parse_args(argv)
    index = build(
        Path(config.folder), Path(config.output) if config.output else None, [Path(p) for p in config.evaluations]
    )
    print(f"Gallery: {index.absolute().as_uri()}")
    return 0
