"""The config parser's errors as one line that names the option, the value and what to give.

jsonargparse reports a bad value as a nested, multi-line report (a union type lists every subtype
it tried, a class's option sits inside its parent's report), and a broken YAML file as
``"<unicode string>", line 2`` without the file. These turn both into what a user can act on.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from maxclass_lightning.errors import ConfigError

_KEY = re.compile(r'Parser key "([^"]+)"')
_GIVEN = re.compile(r"(?:Given value|Got value): (.*?)(?:\. Got value:.*)?$")
_CLASS = re.compile(r"<class '(?:[\w]+\.)*(\w+)'>")
_LITERAL = re.compile(r"Literal\[(.*?)\]")


def _type_words(text: str) -> list[str]:
    """``<class 'int'>``, ``typing.Literal['a', 'b']``, ``list[...]`` as a user would say them."""
    if "Literal[" in text:
        return [f"one of {', '.join(match.strip() for match in _LITERAL.findall(text))}"]
    if text.startswith("list[") or text.startswith("collections.abc.Iterable["):
        return ["a list"]
    words = []
    for name in _CLASS.findall(text):
        if name == "NoneType":
            words.append("null")
        elif name in ("int", "float", "bool", "str", "dict", "list"):
            words.append(
                {
                    "int": "a whole number",
                    "float": "a finite number",
                    "bool": "true or false",
                    "str": "text",
                    "dict": "a mapping",
                    "list": "a list",
                }[name]
            )
        else:
            words.append(f"a {name} class path")
    return words


def _either(words: list[str]) -> str:
    words = list(dict.fromkeys(word for word in words if word))
    literals = [word for word in words if word.startswith("one of ")]
    if literals:  # a choice among named values says it all
        return "one of " + ", ".join(word.removeprefix("one of ") for word in literals)
    return ", ".join(words[:-1]) + f" or {words[-1]}" if len(words) > 1 else (words or ["a valid value"])[0]


def one_line(message: str) -> str:
    """``<option> is <value>; give <expected>`` from a jsonargparse error report; reports of other
    kinds (unknown options) keep their first lines."""
    keys: list[str] = []
    for key in _KEY.findall(message):
        if not keys or keys[-1] != key:
            keys.append(key)
    lines = [line.strip(" -") for line in message.splitlines() if line.strip(" -")]
    if not keys:
        return " ".join(lines[:2])
    option = ".".join(keys)
    given = next((m.group(1) for line in lines if (m := _GIVEN.search(line))), None)
    refused = re.search(r"Option '(\w+)' is not accepted", message)
    if refused:
        return (
            f"{option}.{refused.group(1)} is not an option of {option}'s class (some are set by the app); check "
            f"the spelling, or name the class first (--{option}.help CLASS_PATH lists its options)"
        )
    for line in lines:
        if "expects a function or a callable class:" in line and "Parser key" not in line:
            reason = line.split("expects a function or a callable class:", 1)[1].strip()
            required = re.search(r"arguments are required: ([\w, ]+)", reason)
            if required:  # the class imports; a constructor argument without a default is missing
                name = re.search(r"class_path='([\w.]+)'", given or "")
                named = f"{option} {name.group(1)}" if name else option
                first = required.group(1).split(",")[0].strip()
                return f"{named} needs {required.group(1)}; give it, e.g. --{option}.init_args.{first}=..."
            return f"{option} is {given}, which cannot be imported ({reason}); give an importable class path"
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
    if given is None or given.startswith("NestedArg("):
        reason = next((line for line in lines if line.startswith(("Expected", "Import path", "Problem"))), lines[-1])
        return f"{option}: {reason}"
    return f"{option} is {given}; give {_either(expected)}"


def check_config_files(argv: list[str]) -> None:
    """Each ``--config FILE`` exists and is valid YAML; otherwise a ``ConfigError`` naming the file,
    line and column, before the parser reads it (its own message names neither)."""
    for index, argument in enumerate(argv):
        if argument == "--config" and index + 1 < len(argv):
            path = argv[index + 1]
        elif argument.startswith("--config="):
            path = argument.removeprefix("--config=")
        else:
            continue
        file = Path(path)
        if not file.is_file():
            if not file.suffix:  # inline YAML, or a recipe's name
                continue
            raise ConfigError(f"--config {path}: no such file; give a YAML file such as configs/quick.yaml")
        try:
            text = file.read_text()
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"--config {path} cannot be read ({error}); give a readable YAML text file") from None
        try:
            loaded = yaml.safe_load(text)
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
    """The existing files given as ``--config``, in order (later ones win)."""
    files = []
    for index, argument in enumerate(argv):
        if argument == "--config" and index + 1 < len(argv):
            files.append(Path(argv[index + 1]))
        elif argument.startswith("--config="):
            files.append(Path(argument.removeprefix("--config=")))
    return [file for file in files if file.is_file()]


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
