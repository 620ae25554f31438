"""Objective strings: what an image maximizes, in Lucent's notation, parsed and checked against the
network before a run starts.

- ``"<module>:<channel>"``: the mean activation of that channel of the module's output
  (``_blocks.12:5``, ``features.28:17``; modules named as in ``named_modules()``);
- ``"<module>:<channel>@center"``: that channel's centre neuron;
- ``"<module>"``: the whole layer, DeepDream style (the mean square of its output);
- ``"logit:<class>"``: a class logit (an index or a name, as ``model.classes`` takes);
- a weighted sum of these, terms separated by `` + `` or `` - `` with spaces around them:
  ``"logit:259 - logit:151"``, ``"_blocks.12:5 + 0.5 * _blocks.12:9"``.

Written by hand because the grammar is four atoms and a sum: a parser dependency would be larger
than the parser.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor

from maxclass_lightning.errors import ConfigError

LOGIT = "logit"
CENTER = "@center"

#: `` + `` or `` - `` between terms (spaces around, so class names such as
#: ``black-and-tan coonhound`` keep their hyphens), or a sign at the start.
_SPLIT = re.compile(r"(?:^|\s+)([+-])\s+|^([+-])")
_WEIGHTED = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*\*\s*(.+?)\s*$")


@dataclass(frozen=True)
class Term:
    """One atom of an objective: ``kind`` is ``logit`` (``index`` a class), ``channel``,
    ``neuron`` (``index`` a channel of ``module``) or ``layer``."""

    kind: str
    module: str | None
    index: int | None

    def label(self) -> str:
        if self.kind == LOGIT:
            return f"{LOGIT}:{self.index}"
        if self.kind == "layer":
            return str(self.module)
        return f"{self.module}:{self.index}{CENTER if self.kind == 'neuron' else ''}"


@dataclass(frozen=True)
class Objective:
    """A parsed objective string: its weighted terms."""

    text: str
    terms: tuple[tuple[float, Term], ...]

    def key(self) -> int:
        """A stable number for the objective's random streams (its initial image and views),
        from its text alone: the same picture whatever else is in the run."""
        return int.from_bytes(hashlib.sha256(self.text.encode()).digest()[:6], "big")

    def reference(self) -> int:
        """The class whose probability and rank a run reports for this objective: its first
        positively weighted logit, or -1 (the classifier's top class)."""
        return next((term.index for weight, term in self.terms if term.kind == LOGIT and weight > 0), -1)

    def file_name(self) -> str:
        """A file-safe form of the objective: ``logit_259-logit_151``, ``_blocks.12_5``."""
        text = re.sub(r"\s*\+\s*", "+", self.text.strip())
        text = re.sub(r"\s+-\s+", "-", text)
        text = re.sub(r"\s*\*\s*", "x", text)
        return re.sub(r"[^A-Za-z0-9_.+\-@]+", "_", text).replace("@", "_")[:80]


def split_terms(text: str) -> list[tuple[float, str]]:
    """``text`` as (sign, term text) pairs."""
    parts, sign, position = [], 1.0, 0
    for match in _SPLIT.finditer(text):
        if match.start() > position or (match.start() == position and position > 0):
            parts.append((sign, text[position : match.start()]))
        sign = -1.0 if (match.group(1) or match.group(2)) == "-" else 1.0
        position = match.end()
    parts.append((sign, text[position:]))
    return [(sign, part.strip()) for sign, part in parts if part.strip() or sign < 0]


def parse(text: str, class_names: Sequence[str], channels: dict[str, int | None]) -> Objective:
    """The objective ``text``, checked against the network: ``class_names`` (index i names logit i)
    and ``channels`` (each module's name and its output's channel count, None if unknown)."""
    from maxclass_lightning.classifiers import resolve_classes  # classifiers imports nothing of this

    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"model.objectives has {text!r}; give an objective such as 'logit:259' or 'features.28:17'")
    terms = []
    for sign, part in split_terms(text):
        if not part:
            raise ConfigError(f"objective {text!r} has an empty term; write terms as 'a - b' or 'a + 0.5 * b'")
        weighted = _WEIGHTED.match(part)
        weight, atom = (float(weighted.group(1)), weighted.group(2)) if weighted else (1.0, part)
        terms.append((sign * weight, _atom(atom, text, class_names, channels, resolve_classes)))
    return Objective(text, tuple(terms))


def _atom(atom: str, text: str, class_names, channels, resolve_classes) -> Term:
    if atom.startswith(f"{LOGIT}:"):
        try:
            (index,) = resolve_classes([atom.removeprefix(f"{LOGIT}:").strip()], class_names)
        except ConfigError as error:
            raise ConfigError(f"objective {text!r}: {error}") from None
        return Term(LOGIT, None, index)
    module, _, rest = atom.partition(":")
    if module not in channels:
        close = difflib.get_close_matches(module, list(channels), n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else f"e.g. {', '.join(list(channels)[1:4])}"
        raise ConfigError(f"objective {text!r}: {module!r} is not a module of the classifier; {hint}")
    if not rest:
        return Term("layer", module, None)
    neuron = rest.endswith(CENTER)
    channel = rest.removesuffix(CENTER)
    count = channels[module]
    if not channel.isdigit() or (count is not None and int(channel) >= count):
        limit = f"0 to {count - 1}" if count else "a whole number"
        raise ConfigError(f"objective {text!r}: channel {channel!r} of {module!r}; it has channels {limit}")
    return Term("neuron" if neuron else "channel", module, int(channel))


def channels(network: torch.nn.Module, size: int) -> dict[str, int | None]:
    """Every module of ``network`` by name, with its output's channel count (dimension 1) on one
    ``size``-px image, None where the output is not a tensor of at least two dimensions."""
    counts: dict[str, int | None] = {name: None for name, _ in network.named_modules()}

    def recorder(name: str):
        def record(module, args, output) -> None:
            if isinstance(output, torch.Tensor) and output.dim() >= 2:
                counts[name] = output.shape[1]

        return record

    handles = [module.register_forward_hook(recorder(name)) for name, module in network.named_modules()]
    try:
        with torch.no_grad():
            parameter = next(network.parameters(), torch.zeros(()))
            network(torch.zeros(1, 3, size, size, dtype=parameter.dtype, device=parameter.device))
    finally:
        for handle in handles:
            handle.remove()
    return counts


class ObjectiveValues:
    """The values of a run's objectives on a forward pass: each objective's weighted sum of its
    terms, from the logits and the outputs of the modules it names (read by forward hooks).

    Args:
        objectives: one per image slot of the run (a class position).
        network: the classifier whose modules' outputs are read.
    """

    def __init__(self, objectives: Sequence[Objective], network: torch.nn.Module) -> None:
        self.objectives = list(objectives)
        terms = list(dict.fromkeys(term for objective in objectives for _, term in objective.terms))
        self.terms = terms
        weights = torch.zeros(len(objectives), len(terms), dtype=torch.float64)
        for row, objective in enumerate(objectives):
            for weight, term in objective.terms:
                weights[row, terms.index(term)] += weight
        #: ``[objectives, terms]``: each objective's weight of each term
        self.weights = weights
        modules = dict(network.named_modules())
        self.modules = {name: modules[name] for name in dict.fromkeys(t.module for t in terms if t.module is not None)}

    @contextmanager
    def capture(self) -> Iterator[dict[str, Tensor]]:
        """Collects the named modules' outputs of the forward pass run inside."""
        captured: dict[str, Tensor] = {}

        def recorder(name: str):
            return lambda module, args, output: captured.__setitem__(name, output)

        handles = [module.register_forward_hook(recorder(name)) for name, module in self.modules.items()]
        try:
            yield captured
        finally:
            for handle in handles:
                handle.remove()

    def values(self, logits: Tensor, captured: dict[str, Tensor], positions: Tensor) -> Tensor:
        """Each item's objective value, ``[K]`` (``positions``: each item's objective)."""
        columns = [self.term_value(term, logits, captured) for term in self.terms]
        values = torch.stack(columns, 1).to(logits.dtype)
        return (self.weights.to(device=logits.device, dtype=logits.dtype)[positions] * values).sum(1)

    @staticmethod
    def term_value(term: Term, logits: Tensor, captured: dict[str, Tensor]) -> Tensor:
        """One term for every item of the pass, ``[K]``."""
        if term.kind == LOGIT:
            return logits[:, term.index]
        output = captured[term.module]
        output = output.to(torch.promote_types(output.dtype, torch.float32))
        if term.kind == "layer":
            return output.square().flatten(1).mean(1)
        channel = output[:, term.index]
        if channel.dim() == 1:
            return channel
        if term.kind == "neuron":
            return channel[:, channel.shape[1] // 2, channel.shape[2] // 2]
        return channel.flatten(1).mean(1)
