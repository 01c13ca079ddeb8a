"""Hydra sweep overrides -> Optuna distributions, and a trial's parameters -> job overrides.

=============================================  ==================================================
override                                       Optuna distribution
=============================================  ==================================================
``a,b,c`` / ``choice(a, b, c)``                ``CategoricalDistribution`` (lists/dicts as override text)
``range(start, stop[, step])``                 ``IntDistribution`` / ``FloatDistribution`` with ``step``
                                               over the values the range yields (stop excluded)
``interval(low, high)``                        ``FloatDistribution(low, high)``
``tag(log, interval(low, high))``              ``FloatDistribution(low, high, log=True)``
``tag(int, interval(low, high))``              ``IntDistribution`` (``tag(int, log, ...)``: log too)
``shuffle(...)``                               ``CategoricalDistribution`` of its values
anything else (``key=value``, ``~key``)        passed to every trial unchanged
=============================================  ==================================================
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep, Transformer
from hydra.errors import HydraException
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from hydra_plugins.labkit_optuna.config import SweeperConfigError

INTERVAL_TAGS = ("log", "int")
_SCALARS = (str, int, float, bool)


@dataclass
class SearchSpace:
    """The parsed ``hydra.sweeper.params`` and command-line overrides of a sweep.

    Attributes:
        distributions: Optuna parameter name (the override key, e.g. ``optim.lr`` or ``model``)
            -> its distribution, in the order given.
        fixed: the overrides that are not sweeps, as written; every trial gets them.
        verbatim: names of categorical parameters whose choices are override text (lists, dicts).
    """

    distributions: dict[str, BaseDistribution] = field(default_factory=dict)
    fixed: list[str] = field(default_factory=list)
    verbatim: set[str] = field(default_factory=set)

    def format(self, name: str, value: Any) -> str:
        """The override text of ``value`` for parameter ``name`` (parsed back by Hydra to ``value``)."""
        return str(value) if name in self.verbatim else format_value(value)

    def overrides(self, params: Mapping[str, Any]) -> list[str]:
        """A trial's job overrides: the fixed ones, then ``name=value`` for each sampled parameter."""
        return [*self.fixed, *(f"{name}={self.format(name, value)}" for name, value in params.items())]


def format_value(value: Any) -> str:
    """``value`` as Hydra override text: ``true``, ``0.001``, ``adam``, ``'1e-3'`` (a string that looks like a number)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        text = Transformer.str(value)
        try:
            parsed = _PARSER.parse_override(f"k={text}").value()
        except HydraException:  # e.g. a lone quote
            parsed = None
        if isinstance(parsed, str) and parsed == value:
            return text
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return Transformer.str(value)


_PARSER = OverridesParser.create()


def parse_search_space(overrides: Sequence[str], parser: OverridesParser | None = None) -> SearchSpace:
    """The search space of ``key=value`` override strings; a later override of a key replaces an earlier one.

    Raises:
        ValueError: an override Hydra cannot parse, or a sweep Optuna cannot sample (the key is named).
    """
    parser = parser or _PARSER
    by_key: dict[str, Override] = {}
    for override in parser.parse_overrides(list(overrides)):
        by_key[override.get_key_element()] = override
    space = SearchSpace()
    for key, override in by_key.items():
        if not override.is_sweep_override():
            space.fixed.append(str(override.input_line))
            continue
        distribution, verbatim = to_distribution(override)
        space.distributions[key] = distribution
        if verbatim:
            space.verbatim.add(key)
    return space


def to_distribution(override: Override) -> tuple[BaseDistribution, bool]:
    """The distribution of one sweep override, and whether its choices are override text."""
    key, value = override.get_key_element(), override.value()
    if isinstance(value, ChoiceSweep) or (isinstance(value, RangeSweep) and value.shuffle):
        return _categorical(key, list(override.sweep_iterator()))
    if isinstance(value, RangeSweep):
        return _range(key, value, list(override.sweep_iterator())), False
    if isinstance(value, IntervalSweep):
        return _interval(key, value), False
    raise SweeperConfigError(
        f"hydra.sweeper.params.{key}: expected choice, range or interval sweep, got {override.input_line}"
    )


def _categorical(key: str, choices: list[Any]) -> tuple[CategoricalDistribution, bool]:
    if not choices:
        raise SweeperConfigError(f"hydra.sweeper.params.{key}: expected at least one choice, got none")
    verbatim = not all(isinstance(c, _SCALARS) for c in choices)
    values = [Transformer.str(c) for c in choices] if verbatim else choices
    unique = list(dict.fromkeys((type(v), v) for v in values))  # 1 and True are different choices
    return CategoricalDistribution([v for _, v in unique]), verbatim


def _range(key: str, sweep: RangeSweep, values: list[Any]) -> BaseDistribution:
    if not values:
        raise SweeperConfigError(
            f"hydra.sweeper.params.{key}: expected a range with at least one value, "
            f"got range({sweep.start}, {sweep.stop}, {sweep.step})"
        )
    low, high, step = min(values), max(values), abs(sweep.step)
    if all(isinstance(v, int) for v in (sweep.start, sweep.stop, sweep.step)):
        return IntDistribution(int(low), int(high), step=int(step))
    return FloatDistribution(float(low), float(high), step=float(step))


def _interval(key: str, sweep: IntervalSweep) -> BaseDistribution:
    unknown = sorted(set(sweep.tags) - set(INTERVAL_TAGS))
    if unknown:
        raise SweeperConfigError(
            f"hydra.sweeper.params.{key}: expected interval tags among {list(INTERVAL_TAGS)}, got {unknown}"
        )
    low, high = float(sweep.start), float(sweep.end)  # type: ignore[arg-type]
    log = "log" in sweep.tags
    if not low < high:
        raise SweeperConfigError(
            f"hydra.sweeper.params.{key}: expected interval(low, high) with low < high, got ({low}, {high})"
        )
    if log and low <= 0:
        raise SweeperConfigError(
            f"hydra.sweeper.params.{key}: expected a positive low end for a log interval, got {low}"
        )
    if "int" in sweep.tags:
        if low != math.floor(low) or high != math.floor(high):
            raise SweeperConfigError(
                f"hydra.sweeper.params.{key}: expected whole-number ends for tag(int, interval(...)), got ({low}, {high})"
            )
        return IntDistribution(int(low), int(high), log=log)
    return FloatDistribution(low, high, log=log)
