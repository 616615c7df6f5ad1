"""Learning checks: what a searcher observes (failures, late callbacks, evaluations added
from outside, a ``Repeater``'s means) is what it learns from."""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
from ray.tune.search import Repeater

from raynas.space import Arch, Space
from raynas.strategies import NASSearcher, StrategyError
from raynas.testing.strategies._common import (
    METRIC,
    Objective,
    _fail,
    _ids,
    hash_objective,
    make_searcher,
    small_space,
)
from raynas.testing.strategies.driver import HandDriver


def failing_first(objective: Objective, first: int = 3, every: int = 4) -> Objective:
    """``objective`` whose first ``first`` results and every ``every``-th one after fail
    (``None`` and ``"error"`` in turn), by call count."""
    calls = [0]

    def wrapped(arch: Arch) -> Any:
        calls[0] += 1
        i = calls[0]
        if i <= first or i % every == 0:
            return None if i % 2 else "error"
        return objective(arch)

    return wrapped


def check_failures_rank_last(name: str, n: int = 30, **kwargs: Any) -> None:
    """Failures rank below every valid result whatever the metric's sign and mode, also when
    they come before any valid result: ``mode="min"`` on a loss ``3 - f`` (scores ``f - 3``,
    all negative) searches exactly like ``mode="max"`` on ``f`` in [0, 1), with the same
    failures (the first three trials and every fourth). A failure scored 0 (v0.1) would be
    the best result of the first search and the worst of the second."""
    space = small_space()

    def loss(arch: Arch) -> float:
        return 3.0 - hash_objective(arch)

    maxed = HandDriver(
        make_searcher(name, space, mode="max", **kwargs), failing_first(hash_objective)
    )
    mined = HandDriver(make_searcher(name, space, mode="min", **kwargs), failing_first(loss))
    seq_max, seq_min = _ids(space, maxed.run(n)), _ids(space, mined.run(n))
    if seq_max != seq_min:
        first = next(i for i, (x, y) in enumerate(zip(seq_max, seq_min)) if x != y)
        raise _fail(
            name,
            f"with failures, mode='min' on 3 - f (negative scores) and mode='max' on f "
            f"diverge at proposal {first} of {n}: failures do not rank below every valid result",
        )
    searcher = mined.searcher
    assert isinstance(searcher, NASSearcher)
    worst, valid = searcher.worst_score(), searcher.observed_scores
    if worst is None or not valid or not worst < min(valid):
        raise _fail(name, f"worst_score() {worst} is not below every valid score {valid}")


def _observed_state(searcher: NASSearcher) -> Any:
    """A copy of what a searcher observed: history, held-back results, curves, last results."""
    return copy.deepcopy(
        (searcher.history, searcher.batch_done, searcher.curves, searcher.last_results)
    )


def check_late_callbacks(name: str, **kwargs: Any) -> None:
    """``on_trial_result`` after ``on_trial_complete``, and a second ``on_trial_complete``
    (with another result, with ``None``, with ``error=True``) for the same trial neither
    raise nor change what was observed; also while a synchronous batch holds it back."""
    for batch in (None, 2):
        space = small_space()
        searcher = make_searcher(name, space, **kwargs)
        searcher.set_sync_batch(batch)
        ids = [t for t in ("t0", "t1") if isinstance(searcher.suggest(t), dict)]
        if not ids:
            raise _fail(name, "no proposal to complete (test setup)")
        searcher.on_trial_result("t0", {METRIC: 0.5})
        searcher.on_trial_complete("t0", {METRIC: 0.5})

        before = _observed_state(searcher)
        searcher.on_trial_result("t0", {METRIC: 0.9, "epoch": 1})
        searcher.on_trial_complete("t0", {METRIC: 0.9})
        searcher.on_trial_complete("t0", None)
        searcher.on_trial_complete("t0", None, error=True)
        if _observed_state(searcher) != before:
            raise _fail(name, f"late callbacks for a completed trial changed it ({batch=})")
        for trial_id in ids[1:]:
            searcher.on_trial_complete(trial_id, {METRIC: 0.25})
        searcher.on_trial_complete("t0", {METRIC: 0.9})
        scores = [score for _, score in searcher.history]
        if batch is not None and len(ids) < batch and not searcher.history:
            continue  # the batch is still open: nothing observed yet, nothing to compare
        if not scores or scores[0] != 0.5 or len(scores) != len(ids):
            raise _fail(name, f"observed {scores} for completions [0.5, 0.25][:{len(ids)}]")
        if searcher.suggest("t2") is None and not searcher.live:
            raise _fail(name, "suggest() waits with nothing in flight after late callbacks")


def flat_config(arch: Arch, prefix: str = "config/arch") -> dict[str, Any]:
    """``{"config/arch/<path>": value}``: an arch as Tune's results table flattens it
    (nested dicts joined with ``/``; lists kept whole)."""
    out: dict[str, Any] = {}
    for key, value in arch.items():
        if isinstance(value, dict):
            out.update(flat_config(value, f"{prefix}/{key}"))
        else:
            out[f"{prefix}/{key}"] = value
    return out


def _distinct(space: Space, n: int, seed: int) -> list[Arch]:
    rng = np.random.default_rng(seed)
    out: dict[str, Arch] = {}
    while len(out) < n:
        arch = space.canonical(space.sample(rng))
        out.setdefault(space.arch_id(arch), arch)
    return list(out.values())


def check_add_evaluated(name: str, **kwargs: Any) -> None:
    """Tune's ``add_evaluated_point`` (plain, with intermediate values, pruned, failed, NaN)
    and ``add_evaluated_trials`` (DataFrames in Tune's ``config/arch/...`` form and with an
    ``arch`` column), and ``warm_start``: each is one observation through ``observe``, in the
    user's mode, marked seen and never proposed afterwards; ``suggest`` goes on; configs
    outside the space are refused with a ValueError naming the key, observing nothing; the
    searcher still deep-copies (Ray's own tests copy searchers)."""
    import pandas as pd

    space = small_space()
    archs = _distinct(space, 8, seed=11)
    searcher = make_searcher(name, space, **kwargs)
    calls: list[float | None] = []
    observe = type(searcher).observe

    def spy(self: NASSearcher, arch: Arch, score: float | None, result: Any) -> None:
        calls.append(score)
        observe(self, arch, score, result)

    searcher.observe = spy.__get__(searcher)  # type: ignore[method-assign]
    try:
        searcher.add_evaluated_point({"arch": archs[0]}, 0.7)
        searcher.add_evaluated_point({"arch": archs[1]}, 0.2, intermediate_values=[0.1, 0.15])
        searcher.add_evaluated_point(
            {"arch": archs[2]}, 0.9, pruned=True, intermediate_values=[0.3]
        )
        searcher.add_evaluated_point({"arch": archs[3]}, 0.5, error=True)
        searcher.add_evaluated_point({"arch": archs[4]}, math.nan)
        searcher.add_evaluated_trials(
            pd.DataFrame([{METRIC: 0.4, **flat_config(archs[5])}]), METRIC
        )
        searcher.add_evaluated_trials(pd.DataFrame([{"arch": archs[6], "other": 0.6}]), "other")
        fed = searcher.warm_start(
            [({"arch": archs[7]}, [{METRIC: 0.1, "epoch": 1}, {METRIC: 0.3}])]
        )
    finally:
        del searcher.observe
    scores = [score for _, score in searcher.history]
    expected = [0.7, 0.2, 0.9, None, None, 0.4, 0.6, 0.3]
    if fed != 1 or scores != expected or calls != expected:
        raise _fail(name, f"evaluations added from outside observed as {scores}, not {expected}")
    if _ids(space, [a for a, _ in searcher.history]) != _ids(space, archs):
        raise _fail(name, "evaluations added from outside are observed under other archs")
    if not all(searcher.is_seen(a) for a in archs) or searcher.live:
        raise _fail(name, "added evaluations are not marked seen, or left a trial in flight")
    if searcher.fidelities[2] != 1.0 or searcher.fidelities[0] is not None:
        raise _fail(name, f"a pruned point is not compared within its rung: {searcher.fidelities}")
    for bad, key in (
        ({"x": 1}, "'arch'"),
        ({"arch": {"cell": "conv"}}, "arch.cell"),
        ("a", "arch"),
    ):
        try:
            searcher.add_evaluated_point(bad, 0.5)  # type: ignore[arg-type]
        except ValueError as err:
            if key not in str(err):
                raise _fail(
                    name, f"the error for config {bad!r} does not name {key}: {err}"
                ) from err
        else:
            raise _fail(name, f"add_evaluated_point accepted the config {bad!r}")
    if len(searcher.history) != len(archs):
        raise _fail(name, "a refused config was observed")
    mined = make_searcher(name, space, mode="min", **kwargs)
    mined.add_evaluated_point({"arch": archs[0]}, 0.7)
    if mined.history[-1][1] != -0.7:
        raise _fail(name, f"mode='min': a value 0.7 was scored {mined.history[-1][1]}, not -0.7")
    more = HandDriver(copy.deepcopy(searcher), hash_objective, concurrency=2).run(30)
    if len(more) < 30 or set(_ids(space, more)) & set(_ids(space, archs)):
        raise _fail(name, f"after added evaluations: {len(more)} proposals, or one repeats them")


def check_repeater(name: str, repeat: int = 2, n: int = 5, **kwargs: Any) -> None:
    """Tune's ``Repeater`` hands the inner searcher only the mean of one metric: a strategy
    with one objective (a scalarised objective is one metric) runs under it and observes
    each group's mean once; a strategy with several objectives (``moea``) refuses it with a
    StrategyError naming the Repeater (its other objectives would be lost), and runs under
    it once given a single objective."""
    space = small_space()
    searcher = make_searcher(name, space, **kwargs)
    objectives = getattr(searcher, "active_objectives", None)
    if callable(objectives) and len(objectives()) > 1:
        try:
            Repeater(searcher, repeat=repeat).suggest("r0")
        except StrategyError as err:
            if "Repeater" not in str(err):
                raise _fail(name, f"the refusal does not name the Repeater: {err}") from err
        else:
            raise _fail(name, "a multi-objective searcher ran inside a Repeater")
        searcher = make_searcher(name, space, **{**kwargs, "objectives": [(METRIC, "max")]})
    repeater = Repeater(searcher, repeat=repeat)
    means = []
    for group in range(n):
        values = []
        for k in range(repeat):
            trial_id = f"r{group}_{k}"
            out = repeater.suggest(trial_id)
            if not isinstance(out, dict) or "arch" not in out:
                raise _fail(name, f"under a Repeater, suggest() returned {out!r}")
            values.append(hash_objective(out["arch"]) + 0.1 * k)
            repeater.on_trial_complete(trial_id, {METRIC: values[-1]})
        means.append(float(np.mean(values)))
    got = [score for _, score in searcher.history]
    if len(got) != n or not np.allclose(np.asarray(got, dtype=float), means):
        raise _fail(name, f"under a Repeater observed {got}, not the group means {means}")
