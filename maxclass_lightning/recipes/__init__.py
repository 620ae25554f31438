"""The shipped recipes: YAML configs inside the package, so that a wheel install can run them by name.

``configs/<name>.yaml`` in a clone are symbolic links to these files (one source of truth);
``configs/pomeranian.yaml`` is the ``seed`` recipe.
"""

from __future__ import annotations

from pathlib import Path

from maxclass_lightning.errors import ConfigError

FOLDER = Path(__file__).resolve().parent

#: Other names a recipe answers to: the clone's file name of the seed recipe.
ALIASES = {"pomeranian": "seed"}


def names() -> list[str]:
    """The recipes' names, sorted (the file stems)."""
    return sorted(path.stem for path in FOLDER.glob("*.yaml"))


def path(name: str) -> Path:
    """The YAML file of the recipe ``name`` (``quality``, ``seed``, ...)."""
    file = FOLDER / f"{ALIASES.get(name, name)}.yaml"
    if not file.is_file():
        raise ConfigError(f"unknown recipe {name!r}; use one of {', '.join(names())} or a YAML file path")
    return file


def is_name(value: str) -> bool:
    """Whether ``value`` names a shipped recipe rather than a file or inline YAML."""
    return ALIASES.get(value, value) in names()


def resolve_arguments(argv: list[str]) -> list[str]:
    """The command line with ``--config NAME`` and ``--recipe NAME`` turned into ``--config FILE``.

    A file that exists under the given name wins over a recipe of the same name.
    """
    resolved: list[str] = []
    arguments = iter(argv)
    for argument in arguments:
        option, equals, value = argument.partition("=")
        if option not in ("--config", "--recipe"):
            resolved.append(argument)
            continue
        if not equals:
            value = next(arguments, None)
            if value is None:
                if option == "--recipe":
                    raise ConfigError(f"--recipe needs a name; use one of {', '.join(names())}")
                resolved.append(argument)
                continue
        # A bare word that is no file (no path separator, no suffix, no inline YAML) is meant as a
        # recipe name: an unknown one is told which names exist, not that no such file exists.
        if option == "--recipe" or (value.isidentifier() and not Path(value).exists()):
            resolved += ["--config", str(path(value))]
        else:
            resolved += [option, value]
    return resolved
