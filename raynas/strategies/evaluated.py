"""Evaluations made outside a searcher's own trials, read into :class:`Evaluation` records.

:class:`~raynas.strategies.base.NASSearcher` observes them exactly like its own finished
trials (``add_evaluated_point``, ``add_evaluated_trials``, ``warm_start``); this module only
reads the inputs Ray Tune and pandas hand over:

- a ``ResultGrid`` (``Tuner.fit()``), an ``ExperimentAnalysis``, a ``Trial`` or a list of
  them; unfinished trials (pending, running, paused) are left out, errored ones are failures;
- a pandas ``DataFrame`` with one row per evaluation: Tune's results table
  (``ResultGrid.get_dataframe()``, config columns ``config/<key>/...``) or a table with a
  column per config key (``arch``, or ``arch/<decision>/...`` flattened with ``/``), plus the
  metric column and any other result columns.

Pure functions: no searcher state, no Ray runtime.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from raynas.space import Arch, Space

CONFIG_PREFIX = "config/"
#: The config key that holds the architecture in every config a raynas searcher suggests.
ARCH_KEY = "arch"
#: Trial statuses of a finished trial (``ray.tune.experiment.Trial``).
TERMINATED, ERROR = "TERMINATED", "ERROR"


class Evaluation(NamedTuple):
    """One evaluation to observe: the config, its results in order (the last one final;
    empty: no result), and whether it failed with an error."""

    config: Mapping[str, Any]
    results: list[dict[str, Any]]
    error: bool = False


def config_arch(space: Space, config: Any, where: str) -> Arch:
    """The canonical arch of a config as a raynas searcher suggests it (``{"arch": arch}``;
    numpy scalars and float-valued integers, as tables hold them, are mapped back).

    Raises:
        StrategyError: not a mapping, no ``arch`` key, or an arch outside ``space`` (the
            message gives the path of the bad value, e.g. ``arch.cell.edge_0_1``).
    """
    from raynas.strategies.base import StrategyError

    if not isinstance(config, Mapping):
        raise StrategyError(
            f"{where}: a config must be a dict {{{ARCH_KEY!r}: arch}} as suggest() returns, "
            f"got {type(config).__name__}: {config!r}"
        )
    if ARCH_KEY not in config:
        raise StrategyError(
            f"{where}: the config has no {ARCH_KEY!r} key (the architecture, as suggest() "
            f"returns it); got keys {sorted(map(str, config))}"
        )
    try:
        return space.from_tune(config[ARCH_KEY])
    except (TypeError, ValueError) as err:
        raise StrategyError(
            f"{where}: config[{ARCH_KEY!r}] is not a member of space {space.name!r}: {err}"
        ) from err


def renamed_metric(result: dict[str, Any], metric: str, own: str) -> dict[str, Any]:
    """``result`` with ``metric``'s value under the name ``own`` (absent when it has none)."""
    if metric == own:
        return result
    out = {k: v for k, v in result.items() if k != own}
    if metric in result:
        out[own] = result[metric]
    return out


def as_results(
    result: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None,
) -> list[dict[str, Any]]:
    """``None`` (no result), one result dict, or the results of a trial in order, as a list.

    Raises:
        TypeError: anything else.
    """
    if result is None:
        return []
    if isinstance(result, Mapping):
        return [dict(result)]
    if isinstance(result, Sequence) and not isinstance(result, str | bytes):
        out = []
        for i, item in enumerate(result):
            if not isinstance(item, Mapping):
                raise TypeError(f"result[{i}] must be a result dict, got {type(item).__name__}")
            out.append(dict(item))
        return out
    raise TypeError(
        "a result must be None, a result dict or a list of result dicts in reporting order, "
        f"got {type(result).__name__}"
    )


def point_results(
    metric: str,
    value: Any,
    *,
    pruned: bool = False,
    intermediate_values: Sequence[Any] | None = None,
) -> list[dict[str, Any]]:
    """The results of ``Searcher.add_evaluated_point``'s arguments, as a trial reports them.

    ``intermediate_values[i]`` is the metric after epoch ``i + 1`` (``epoch`` and
    ``training_iteration`` set, so full-budget points link the rungs, see
    :mod:`raynas.strategies.scores`). The final result holds ``value`` (no metric when it is
    None); a ``pruned`` point ends at the epoch of its last intermediate value (0 without
    any) and is marked ``censored``: it is compared within that rung, below the trials that
    went further.
    """
    steps = list(intermediate_values or [])
    out = [{metric: v, "epoch": i + 1, "training_iteration": i + 1} for i, v in enumerate(steps)]
    final: dict[str, Any] = {} if value is None else {metric: value}
    if pruned:
        n = len(steps)
        final.update(epoch=n, training_iteration=n, fidelity=n, censored=True)
    return [*out, final]


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``{"a/b": 1, "a/c": 2}`` -> ``{"a": {"b": 1, "c": 2}}`` (Tune's ``flatten_dict``
    inverse); NaN cells (a key a row does not have) are dropped."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        if isinstance(value, float) and math.isnan(value):
            continue
        *parents, leaf = str(key).split("/")
        node = out
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ValueError(f"config column {key!r} clashes with column {part!r}")
            node = child
        node[leaf] = value
    return out


def _plain(value: Any) -> Any:
    """numpy / pandas scalars as Python ones (``item()``); anything else unchanged."""
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "ndim", None) == 0:
        return item()
    return value


def frame_records(frame: Any, metric: str) -> Iterator[Evaluation]:
    """One :class:`Evaluation` per row of a pandas ``DataFrame``.

    Config columns are ``config/<key>/...`` (Tune's results table) when there are any, else
    ``arch`` and ``arch/...``; the other columns are the row's result.

    Raises:
        ValueError: no config column, or no ``metric`` column.
    """
    columns = [str(c) for c in frame.columns]
    tune_style = [c for c in columns if c.startswith(CONFIG_PREFIX)]
    if tune_style:
        config_cols = {c: c[len(CONFIG_PREFIX) :] for c in tune_style}
    else:
        own = [c for c in columns if c == ARCH_KEY or c.startswith(ARCH_KEY + "/")]
        config_cols = {c: c for c in own}
    if not config_cols:
        raise ValueError(
            f"add_evaluated_trials: the DataFrame has no config column; give "
            f"'{CONFIG_PREFIX}{ARCH_KEY}/...' columns (Tune's results table) or an "
            f"{ARCH_KEY!r} column, got columns {columns}"
        )
    if metric not in columns:
        raise ValueError(
            f"add_evaluated_trials: the DataFrame has no metric column {metric!r}; "
            f"got columns {columns}"
        )
    for row in frame.to_dict("records"):
        flat = {config_cols[c]: _plain(v) for c, v in row.items() if str(c) in config_cols}
        result = {str(c): _plain(v) for c, v in row.items() if str(c) not in config_cols}
        yield Evaluation(unflatten(flat), [result])


def _trial_records(trials: Iterable[Any]) -> Iterator[Evaluation]:
    for trial in trials:
        status = str(getattr(trial, "status", ""))
        if status not in (TERMINATED, ERROR):
            continue  # not finished: its last result is not final
        last = getattr(trial, "last_result", None) or {}
        yield Evaluation(dict(trial.config), [dict(last)] if last else [], status == ERROR)


def _grid_records(grid: Iterable[Any]) -> Iterator[Evaluation]:
    for result in grid:
        metrics = dict(result.metrics or {})
        config = metrics.get("config")
        if not isinstance(config, Mapping):
            continue  # an errored trial that reported nothing: its config is unknown
        steps: list[dict[str, Any]] = []
        frame = result.metrics_dataframe
        if frame is not None and len(frame) > 1:
            steps = [
                {str(k): _plain(v) for k, v in row.items() if not str(k).startswith("config/")}
                for row in frame.to_dict("records")[:-1]
            ]
        yield Evaluation(dict(config), [*steps, metrics], result.error is not None)


def records_from(trials_or_analysis: Any, metric: str) -> Iterator[Evaluation]:
    """:class:`Evaluation` records from what ``Searcher.add_evaluated_trials`` accepts (and a
    ``ResultGrid`` and a pandas ``DataFrame``).

    Raises:
        TypeError: an unsupported input.
        ValueError: a DataFrame without config or metric columns.
    """
    from ray.tune import ExperimentAnalysis, ResultGrid
    from ray.tune.experiment import Trial

    obj = trials_or_analysis
    if isinstance(obj, Trial):
        return _trial_records([obj])
    if isinstance(obj, list | tuple) and all(isinstance(t, Trial) for t in obj):
        return _trial_records(obj)
    if isinstance(obj, ExperimentAnalysis):
        return _trial_records(obj.trials)
    if isinstance(obj, ResultGrid):
        return _grid_records(obj[i] for i in range(len(obj)))
    if hasattr(obj, "columns") and hasattr(obj, "to_dict"):
        return frame_records(obj, metric)
    raise TypeError(
        "add_evaluated_trials expects a Trial, a list of Trials, an ExperimentAnalysis, a "
        f"ResultGrid or a pandas DataFrame, got {type(obj).__name__}"
    )
