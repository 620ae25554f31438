"""Property-based fuzzing of the command line: whatever a user types, a run ends with exit code 0
(it ran), 2 (one line saying what to give instead) or 1 (a run that could not finish, one line),
never a traceback, and a refused run leaves no files behind.

Options are read from the real ``fit --help``; values come from each option's type (as the help
states it), from its type's neighbours (wrong type, out of range, non-finite, empty, huge, nested,
long and non-ASCII text) and from arbitrary text. Runs are in-process, on the tiny network, one
step. CI runs a fixed, derandomized set of examples; a longer search, run by hand, keeps what it
finds in Hypothesis's example database (``.hypothesis/``), which later runs replay first:

    MAXCLASS_FUZZ_EXAMPLES=2000 python -m pytest -n 0 tests/test_fuzz.py
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import tempfile
from functools import cache
from pathlib import Path

from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from maxclass_lightning.cli import main
from tests.conftest import tiny_args

#: Examples per CI run (about 0.5 s each here); the variable asks for a longer search.
EXAMPLES = int(os.environ.get("MAXCLASS_FUZZ_EXAMPLES", "0"))
CI_EXAMPLES = 50

settings.register_profile(
    "ci",
    max_examples=CI_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "search",
    max_examples=max(EXAMPLES, 1),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

#: The base run: the tiny network, one step, nothing printed but errors.
BASE = ["--model.classifier=tests.networks:tiny_imagenet_classifier", "--trainer.max_steps=1"]

#: Options not drawn: they start other processes (several devices, nodes, a strategy), compile for
#: minutes, or only print help.
NOT_DRAWN = {"help", "print_config", "trainer.devices", "trainer.num_nodes", "trainer.strategy", "model.compile"}

#: Options where a large valid value is a long run or a large picture: their whole numbers stay
#: small, or are so large that they are refused.
AMOUNTS = {
    "trainer.max_steps",
    "trainer.fast_dev_run",
    "trainer.min_steps",
    "model.views",
    "model.samples_per_class",
    "model.image_size",
}

#: Class paths for class options: the app's, the wrong kind, and ones that do not import.
CLASS_PATHS = [
    "maxclass_lightning.images.FourierImage",
    "maxclass_lightning.transforms.RandomViews",
    "maxclass_lightning.callbacks.ImageExport",
    "torch.optim.SGD",
    "torch.optim.lr_scheduler.StepLR",
    "lightning.pytorch.loggers.CSVLogger",
    "torch.nn.Linear",
    "maxclass_lightning.NoSuchThing",
    "no_such_module.Thing",
    "os.system",
]

#: Values of any type's neighbourhood: empty, nested, long, non-ASCII, YAML punctuation.
ODD = [
    "",
    " ",
    "null",
    "[]",
    "{}",
    "[1, [2, [3, [4]]]]",
    "{a: {b: [1, {c: 2}]}}",
    "x" * 5000,
    "ñandú 日本語 🙂",
    "- -",
    ":",
    "'",
    '"',
    "!!python/object:os.system",
    "&a [*a]",
]

NON_FINITE = ["nan", "inf", "-inf", "NaN", "1e400", "-1e400"]
HUGE = ["100000000000000000000", str(2**63), str(-(2**63) - 1)]

_OPTION = re.compile(r"^  (?:-\w, )?--([\w.]+)")
_TYPE = re.compile(r"\(type: (.*), default: (.*)\)$", re.DOTALL)


@cache
def help_options() -> dict[str, str]:
    """Every option of ``fit --help`` and its type as the help states it ('' where none)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        main(["fit", "--help"])
    options: dict[str, str] = {}
    name, text = None, []
    for line in [*out.getvalue().splitlines(), "  --end"]:
        match = _OPTION.match(line)
        if match:
            if name:
                kind = _TYPE.search(" ".join(" ".join(text).split()))
                options[name] = kind.group(1) if kind else ""
            name, text = match.group(1), [line[match.end() :]]
        elif name:
            text.append(line)
    return {
        option: kind for option, kind in options.items() if option not in NOT_DRAWN and not option.endswith(".help")
    }


def values_for(option: str, kind: str) -> st.SearchStrategy[str]:
    """Values of the option's type and of its neighbours, as command-line text."""
    small = st.integers(-2, 4).map(str)
    choices = [st.sampled_from(ODD + NON_FINITE), st.text(max_size=40), small]
    if option not in AMOUNTS or option in ("trainer.max_steps", "model.image_size"):  # huge ones are refused
        choices.append(st.sampled_from(HUGE))
    if "float" in kind:
        choices.append(st.floats(allow_nan=True, allow_infinity=True).map(repr))
        choices.append(st.floats(0, 1).map(repr))
    if "bool" in kind:
        choices.append(st.sampled_from(["true", "false", "maybe", "yes", "1", "0"]))
    if "Literal" in kind:
        choices.append(st.sampled_from(re.findall(r"'([^']*)'", kind) or ["x"]))
    if any(word in kind for word in ("Callable", "Optimizer", "Module", "Callback", "Logger", "class", "Images")):
        choices.append(st.sampled_from(CLASS_PATHS))
    if "list" in kind or "Iterable" in kind:
        choices.append(st.lists(st.integers(-5, 1005), max_size=4).map(str))
    return st.one_of(*choices)


@st.composite
def command_lines(draw) -> list[str]:
    """One to three options of ``fit --help``, each with a drawn value."""
    options = help_options()
    names = draw(st.lists(st.sampled_from(sorted(options)), min_size=1, max_size=3, unique=True))
    arguments = []
    for name in names:
        value = draw(values_for(name, options[name]))
        arguments.append(f"--{name}={value}")
    return arguments


def run(arguments: list[str], folder: Path) -> tuple[int, str]:
    """``fit`` with the base run and ``arguments``, from ``folder``; (exit code, stderr)."""
    err = io.StringIO()
    cwd = Path.cwd()
    os.chdir(folder)  # a relative path among the values lands here, not in the clone
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            main(tiny_args(folder / "runs", *BASE, *arguments))
        code = 0
    except SystemExit as exit:
        code = exit.code if isinstance(exit.code, int) else 1
    finally:
        os.chdir(cwd)
    return code, err.getvalue()


@settings(settings.get_profile("search" if EXAMPLES else "ci"))
@given(arguments=command_lines())
def test_any_command_line_ends_in_a_run_or_one_line(arguments):
    note(f"fit {' '.join(arguments)}")
    with tempfile.TemporaryDirectory() as folder:
        code, stderr = run(arguments, Path(folder))
        assert code in (0, 1, 2), (code, stderr[-2000:])
        assert "Traceback" not in stderr, stderr[-4000:]
        if code:
            errors = [line for line in stderr.splitlines() if line.startswith("error:")]
            assert len(errors) == 1, stderr[-2000:]
            typed = " ".join(arguments)  # a message may echo what the user typed, whatever it is
            internals = ("Namespace(", "NestedArg(", "<class")
            assert not any(word in errors[0] and word not in typed for word in internals), errors[0]
        written = [path for path in Path(folder).rglob("*") if path.is_file()]
        if code == 2:
            assert not written, f"a refused run wrote {written}"
        assert not [path for path in written if path.suffix == ".partial"], written


def test_the_fuzzed_options_are_the_help_options():
    """The fuzz reads the options of ``fit --help``, with their types."""
    options = help_options()
    assert {"model.classes", "model.optimizer", "trainer.max_steps", "seed_everything", "ckpt_path"} <= set(options)
    assert "int" in options["trainer.max_steps"] and "float" in options["model.average_decay"]
