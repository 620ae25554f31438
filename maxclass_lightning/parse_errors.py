"""The config parser's errors as one line that names the option, the value and what to give.

jsonargparse reports a bad value as a nested, multi-line report (a union type lists every subtype
it tried, a class's option sits inside its parent's report), and a broken YAML file as
``"<unicode string>", line 2`` without the file. These turn both into what a user can act on.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import NoReturn

import yaml
from jsonargparse import ArgumentError
from jsonargparse.typing import import_object

from maxclass_lightning.errors import ConfigError, RunError

#: How the app is started, in ``--help`` and in the errors that point to it.
PROGRAM = "python -m maxclass_lightning"

#: What the command line accepts as its first word.
SUBCOMMANDS = ("fit", "evaluate", "gallery")

_KEY = re.compile(r'Parser key "([^"]+)"')
_GIVEN = re.compile(r"(?:Given value|Got value): (.*?)(?:\. Got value:.*)?$")
_CLASS = re.compile(r"<class '(?:\w+\.)*(\w+)'>|\[(?:\w+\.)*(\w+)\]")
_LITERAL = re.compile(r"Literal\[(.*?)\]")
_CLASS_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$")
_NON_FINITE = {"nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"}

#: What a class option takes, in a user's words (``give ...``).
KINDS = {
    "model.optimizer": "an optimizer class such as torch.optim.AdamW",
    "model.lr_scheduler": "a learning-rate scheduler class such as torch.optim.lr_scheduler.StepLR, or null",
    "model.image": "an image class such as maxclass_lightning.images.FourierImage",
    "model.transforms": "a views class such as maxclass_lightning.transforms.RandomViews, or null",
    "trainer.callbacks": "a Callback class such as maxclass_lightning.callbacks.ImageExport",
    "trainer.logger": "a logger class such as lightning.pytorch.loggers.TensorBoardLogger, or false",
    "trainer.plugins": "a Lightning plugin class",
    "trainer.strategy": "a strategy name such as ddp, or a Strategy class",
    "trainer.accelerator": "an accelerator name such as cpu, gpu or auto",
    "data": "a LightningDataModule class, or null",
}

#: Types the parser names, as a user would say them; other classes are what ``KINDS`` says.
_TYPE_WORDS = {
    "int": "a whole number",
    "float": "a finite number",
    "bool": "true or false",
    "str": "text",
    "dict": "a mapping",
    "list": "a list",
    "tuple": "a list",
    "NoneType": "null",
}


def _type_words(text: str) -> list[str]:
    """``<class 'int'>``, ``typing.Literal['a', 'b']``, ``list[...]`` as a user would say them."""
    if "Literal[" in text:
        return [f"one of {', '.join(match.strip() for match in _LITERAL.findall(text))}"]
    if text.startswith(("list[", "collections.abc.Iterable[")):
        return ["a list"]
    return [_TYPE_WORDS[name] for pair in _CLASS.findall(text) for name in pair if name in _TYPE_WORDS]


def _either(words: list[str]) -> str:
    words = list(dict.fromkeys(word for word in words if word))
    literals = [word for word in words if word.startswith("one of ")]
    if literals:  # a choice among named values says it all
        return "one of " + ", ".join(word.removeprefix("one of ") for word in literals)
    return ", ".join(words[:-1]) + f" or {words[-1]}" if len(words) > 1 else (words or ["a valid value"])[0]


def _class_path_problem(option: str, given: str) -> str:
    """Why a class path given to a class option was refused: it does not import, or it imports
    something of another kind."""
    kind = KINDS.get(option, "a class of the kind this option takes")
    try:
        import_object(given)
    except Exception as error:  # ImportError, AttributeError, ValueError: all mean "not there"
        reason = " ".join(str(error).split()) or type(error).__name__
        return f"{option} is {given}, which cannot be imported ({reason}); give {kind}"
    return f"{option} is {given}, which is not the right kind of class; give {kind}"


def one_line(message: str) -> str:
    """``<option> is <value>; give <expected>`` from a jsonargparse error report; reports of other
    kinds (unknown options) keep their first lines. Parser internals (``Namespace(...)``, type
    reprs) never reach the user."""
    keys: list[str] = []
    for key in _KEY.findall(message):
        if not keys or keys[-1] != key:
            keys.append(key)
    lines = [line.strip(" -") for line in message.splitlines() if line.strip(" -")]
    if not keys:
        return " ".join(lines[:2])
    option = ".".join(keys)
    # The innermost option's value comes first in the report, the option's own last.
    values = [m.group(1) for line in lines if (m := _GIVEN.search(line))]
    given = (values[0] if len(keys) > 1 else values[-1]) if values else None
    refused = re.search(r"Option '(\w+)' is not accepted", message)
    if refused:
        return (
            f"{option}.{refused.group(1)} is not an option of {option}'s class (some are set by the app); check "
            f"the spelling, or name the class first (--{option}.help CLASS_PATH lists its options)"
        )
    required = re.search(r"arguments are required: ([\w, ]+)", message)
    if required:  # the class imports; a constructor argument without a default is missing
        name = re.search(r"class_path='([\w.]+)'", given or "")
        named = f"{option} {name.group(1)}" if name else option
        first = required.group(1).split(",")[0].strip()
        return f"{named} needs {required.group(1)}; give it, e.g. --{option}.init_args.{first}=..."
    if given is not None and given.strip().lower() in _NON_FINITE:
        return f"{option} is {given}; give a finite number"
    if len(keys) == 1 and option in KINDS and given is not None and _CLASS_PATH.match(given):
        return _class_path_problem(option, given)
    if len(keys) > 1:  # what the innermost option expects, not its parent class option
        inner = message[message.rindex(f'Parser key "{keys[-1]}"') :]
        lines = [line.strip(" -") for line in inner.splitlines() if line.strip(" -")]
    expected: list[str] = []
    for line in lines:
        if line.startswith("Expected a") and "path but" not in line and "dot import path" not in line:
            expected += _type_words(line.split(". Got value")[0].removeprefix("Expected a").strip())
        elif line.startswith("Subtypes:") and not expected:
            for part in re.split(
                r", (?=<class|list\[|collections|typing)", line.removeprefix("Subtypes:").strip("[] ")
            ):
                expected += _type_words(part)
    if len(keys) == 1 and option in KINDS:
        expected = [KINDS[option]]
    if given is None or given.startswith(("NestedArg(", "Namespace(")):
        return f"{option} is not valid; give {_either(expected)}"
    return f"{option} is {given}; give {_either(expected)}"


def _config_arguments(argv: list[str]) -> list[str]:
    """The values given to ``--config``, in order (later ones win)."""
    pairs = zip(argv, [*argv[1:], None])
    return [
        value if argument == "--config" else argument[9:]
        for argument, value in pairs
        if (argument == "--config" and value is not None) or argument.startswith("--config=")
    ]


def check_config_files(argv: list[str]) -> None:
    """Each ``--config FILE`` exists and is valid YAML; otherwise a ``ConfigError`` naming the file,
    line and column, before the parser reads it (its own message names neither)."""
    for path in _config_arguments(argv):
        file = Path(path)
        if not file.is_file():
            if not file.suffix:  # inline YAML, or a recipe's name
                continue
            raise ConfigError(f"--config {path}: no such file; give a YAML file such as configs/quick.yaml")
        try:
            loaded = yaml.safe_load(file.read_text())
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"--config {path} cannot be read ({error}); give a readable YAML text file") from None
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else path
            problem = getattr(error, "problem", None) or str(error).splitlines()[0]
            raise ConfigError(f"{where}: invalid YAML ({problem}); fix the file at that line") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(
                f"{path}: expected a mapping of options (model:, trainer:, ...), got {type(loaded).__name__}"
            )


def config_files(argv: list[str]) -> list[Path]:
    """The existing files given as ``--config``."""
    return [Path(path) for path in _config_arguments(argv) if Path(path).is_file()]


def _option_in(message: str) -> str | None:
    """The dotted option a one-line message is about: its first word, or a quoted option."""
    quoted = re.search(r"option '([\w.]+)'", message)
    if quoted:
        return quoted.group(1)
    first = message.split(" ", 1)[0].rstrip(":;,")
    return first if "." in first or first == "seed_everything" else None


def locate(message: str, argv: list[str]) -> str | None:
    """``file:line`` of the option ``message`` is about, in the last ``--config`` file that sets it
    (``init_args`` levels may be written or left out, as the parser allows)."""
    option = _option_in(message)
    if option is None:
        return None
    wanted = [part for part in option.split(".") if part != "init_args"]
    spelled = {argument.split("=", 1)[0].removeprefix("--").replace(".init_args", "") for argument in argv}
    if ".".join(wanted) in spelled:  # given on the command line, which wins over the files
        return None
    found = None
    for file in config_files(argv):
        try:
            node = yaml.compose(file.read_text())
        except (OSError, yaml.YAMLError):
            continue
        line = _find(node, wanted)
        if line is not None:
            found = f"{file}:{line}"
    return found


def _find(node, parts: list[str]) -> int | None:
    """1-based line of the key ``parts`` in a composed YAML mapping, looking through ``init_args``."""
    if not parts or not isinstance(node, yaml.MappingNode):
        return None
    for key, value in node.value:
        if key.value == parts[0]:
            if len(parts) == 1:
                return key.start_mark.line + 1
            return _find(value, parts[1:])
        if key.value == "init_args":
            inner = _find(value, parts)
            if inner is not None:
                return inner
    return None


def fail(argv: list[str], error: Exception) -> NoReturn:
    """Print ``error`` as one line and exit: 1 for a run that could not finish, 2 for bad input."""
    unknown = re.match(r"argument subcommand: invalid choice: '([^']*)'", str(error))
    missing = str(error).startswith('expected "subcommand"')
    if unknown or missing:
        given = f"{unknown.group(1)} is not a subcommand" if unknown else "no subcommand given"
        message = f"{given}; give {' or '.join(SUBCOMMANDS)}, e.g. {PROGRAM} fit --help"
    elif isinstance(error, ArgumentError):
        command = " ".join([PROGRAM, *argv[:1], "--help"])
        message = f"{one_line(str(error))} (options: {command})"
    else:
        message = str(error)
    where = locate(message, argv)
    print(f"error: {where + ': ' if where else ''}{message}", file=sys.stderr)
    sys.exit(1 if isinstance(error, RunError) else 2)
