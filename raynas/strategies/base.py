"""``NASSearcher``: the plumbing every NAS strategy needs, over Ray Tune's ``Searcher``.

A strategy implements two methods, and may implement a third:

- ``propose() -> arch | None``: the next architecture to evaluate, or None to wait for results;
- ``observe(arch, score, result)``: a finished evaluation. ``score`` is the objective turned
  to "higher is better" (the sign of ``mode`` is handled here, once) at the fidelity the trial
  reached, or None when the trial gave no usable value (error, NaN/inf, metric missing,
  ``status: constraint_violated`` or ``diverged``). The observation is ``self.history[-1]``;
- ``on_infeasible(arch, violations)``: a proposal the constraint check refused (see below).

Scores the strategies learn from (:mod:`raynas.strategies.scores`): a strategy that compares
or fits observations uses :meth:`NASSearcher.values` (or :meth:`value`), resolved *at use
time* from everything observed so far, never a number it stored when the result came:

- a failure is None there and ranks below every valid result; :meth:`worst_score` gives a
  number below every valid value seen so far (None before any), for strategies that need one;
- an early-stopped trial (ASHA, HyperBand, median stopping) is compared within its rung: its
  score at epoch ``f`` is read on the full-budget scale through the full-budget trials' own
  scores at epoch ``f`` (recorded from ``on_trial_result``). ``result`` carries ``fidelity``
  (epochs trained) and ``censored: True``.

A trial whose architecture a scheduler changed (PBT-evolution) is observed under the
architecture it ended with.

The base owns the rest: trial-to-arch bookkeeping, no duplicate trials in discrete spaces
(a duplicate proposal is re-proposed; after ``MAX_REPROPOSE`` tries an unseen member is
drawn), ``FINISHED`` when the space is exhausted, metric and mode, a per-instance seeded RNG,
driver-side constraints (:meth:`set_constraint_check`), synchronous batches
(:meth:`set_sync_batch`), a concurrency limit (:meth:`set_max_concurrency`, which Tune's
``ConcurrencyLimiter`` hands over), evaluations made elsewhere (:meth:`add_evaluated_point`,
:meth:`add_evaluated_trials`, :meth:`warm_start`: observed exactly like finished trials), and
``save``/``restore`` of the complete state, RNGs included, metric and mode too, so a restored
searcher proposes exactly what an uninterrupted one would.

Kept as one module (over 450 lines): NASSearcher is one class, the searcher contract every
strategy inherits (proposals, de-duplication, constraints, failures, concurrency, batches,
state); split, one state machine would be read across files.
"""

from __future__ import annotations

import copy
import math
import pickle
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from ray.tune.search import Searcher

from raynas.space import Arch, Space
from raynas.strategies.evaluated import (
    Evaluation,
    as_results,
    config_arch,
    point_results,
    records_from,
    renamed_metric,
)
from raynas.strategies.scores import resolve_values, worst_below

#: Result statuses that mean "no usable objective value".
FAILED_STATUSES = frozenset({"constraint_violated", "diverged", "error", "oom"})
MAX_REPROPOSE = 50
ENUMERATE_UNSEEN_LIMIT = 200_000
#: Refused candidates in a row before ``suggest`` gives up (``set_constraint_check``).
MAX_REFUSALS = 200
#: Refused candidates kept, with their violations, in ``refused_examples``.
REFUSED_EXAMPLES = 5

#: Trial ids of evaluations fed from outside (``add_evaluated_point``, ``warm_start``).
EVALUATED_ID = "__evaluated_{}__"
UNDEFINED_METRIC_MODE = (
    "strategy {name!r}: suggest() needs the metric and mode, got (metric={metric!r}, "
    "mode={mode!r}); pass metric= and mode= to the strategy (Tune calls "
    "set_search_properties only when the Tuner has a non-empty param_space)"
)
NO_METRIC_TO_SCORE = (
    "strategy {name!r}: {where} needs the searcher's metric and mode to score evaluations, got "
    "(metric={metric!r}, mode={mode!r}); pass metric= and mode= to the strategy first"
)

#: ``arch -> violated constraints`` (empty: feasible), computed on the driver.
ConstraintCheck = Callable[[Arch], Sequence[str]]
#: A result as :meth:`NASSearcher.warm_start` takes it: None (no result), the final result
#: dict, or every result the trial reported, in order.
WarmResult = Mapping[str, Any] | Sequence[Mapping[str, Any]] | None


class StrategyError(ValueError):
    """A strategy that cannot work on the given space or with the given arguments."""


class InfeasibleSpaceError(StrategyError):
    """The constraint check refused so many candidates in a row that the constraints seem to
    exclude the space (or every member of a finite space)."""


def check_int(name: str, value: Any, minimum: int) -> int:
    """``value`` if it is an integer (not a bool) ``>= minimum``, else a StrategyError
    naming the argument, e.g. ``population_size must be an integer >= 2, got ...``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise StrategyError(f"{name} must be an integer >= {minimum}, got {name}={value!r}")
    return value


def check_range(name: str, value: Any, low: float, high: float, *, closed: bool = True) -> float:
    """``value`` as a float if it is a number (not a bool) in ``[low, high]`` (``closed``) or
    ``(low, high)``, else a StrategyError naming the argument, e.g.
    ``crossover_prob must be in [0, 1], got 2``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        inside = False
    else:
        inside = low <= value <= high if closed else low < value < high
    if not inside:
        bounds = f"[{low:g}, {high:g}]" if closed else f"({low:g}, {high:g})"
        raise StrategyError(f"{name} must be in {bounds}, got {value!r}")
    return float(value)


def result_score(
    result: Mapping[str, Any] | None, metric: str, mode: str, *, error: bool = False
) -> float | None:
    """The objective of a result as "higher is better", or None when it is unusable."""
    if error or not result:
        return None
    if str(result.get("status", "ok")) in FAILED_STATUSES:
        return None
    value = result.get(metric)
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        return None
    value = float(value)
    if not math.isfinite(value):
        return None
    return value if mode == "max" else -value


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        return None
    return float(value) if math.isfinite(value) else None


class NASSearcher(Searcher):
    """Base class of every raynas strategy (a Ray Tune ``Searcher``).

    Args:
        space: The search space.
        metric: The result key to optimise (may come later from ``set_search_properties``).
        mode: ``"max"`` or ``"min"``.
        seed: Seed of this searcher's RNG (``self.rng``); same seed, same search.
        allow_repeats: Propose architectures already evaluated or in flight.
    """

    #: Registry name, set by ``@register_strategy``.
    name: ClassVar[str] = "base"
    #: Whether the strategy needs a discrete space.
    needs_discrete: ClassVar[bool] = False
    #: Attributes left out of ``get_state`` and kept by ``set_state``: wiring, not search state.
    TRANSIENT_BASE: ClassVar[tuple[str, ...]] = (
        "_constraint_check",
        "_max_refusals",
        "_values_cache",
        "max_concurrent",
    )

    def __init__(
        self,
        space: Space,
        *,
        metric: str | None = None,
        mode: str | None = None,
        seed: int = 0,
        allow_repeats: bool = False,
    ) -> None:
        if mode is not None and mode not in ("max", "min"):
            raise StrategyError(f"mode must be 'max' or 'min', got {mode!r}")
        super().__init__(metric=metric, mode=mode)
        if not isinstance(space, Space):
            raise StrategyError(f"space must be a raynas Space, got {type(space).__name__}")
        if self.needs_discrete and not space.is_discrete:
            raise StrategyError(
                f"strategy {self.name!r} needs a discrete space; {space.name!r} has continuous "
                "decisions (give each Float a step, or use 'random', 'evolution' or 'tpe')"
            )
        self.space = space
        self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)
        self.allow_repeats = allow_repeats
        self.live: dict[str, Arch] = {}
        self.seen: set[str] = set()
        #: (arch, score at the fidelity reached; None = failed), in observation order.
        self.history: list[tuple[Arch, float | None]] = []
        #: Per history entry: epochs trained when a scheduler stopped it; None = full budget.
        self.fidelities: list[float | None] = []
        self.last_results: dict[str, dict[str, Any]] = {}
        self.max_fidelity: int | None = None
        #: Per live trial: its score at each epoch it reported (``on_trial_result``).
        self.curves: dict[str, dict[float, float]] = {}
        #: Per epoch: (score at that epoch, full-budget score) of every full-budget trial.
        self.rung_pairs: dict[float, list[tuple[float, float]]] = {}
        #: Candidates the constraint check refused (never trials), a few examples, the ids.
        self.refused = 0
        self.refused_examples: list[dict[str, Any]] = []
        self.refused_ids: set[str] = set()
        self.refusal_streak = 0
        self._constraint_check: ConstraintCheck | None = None
        self._max_refusals = MAX_REFUSALS
        #: Synchronous batches (``set_sync_batch``): size, the current batch's trial ids in
        #: suggestion order, whether it takes no more trials, and completions held back.
        self.sync_batch: int | None = None
        self.batch: list[str] = []
        self.batch_closed = False
        self.batch_done: dict[str, tuple[dict[str, Any] | None, bool]] = {}
        self.batches_done = 0
        self._values_cache: tuple[int, np.ndarray] | None = None
        #: Most trials in flight (``set_max_concurrency``); None: no limit here.
        self.max_concurrent: int | None = None
        #: Evaluations fed from outside so far (their trial ids are ``EVALUATED_ID``).
        self.evaluated = 0

    # --- the strategy API -----------------------------------------------------------
    def propose(self) -> Arch | None:
        """The next architecture to evaluate, or None to wait for running trials."""
        raise NotImplementedError

    def observe(self, arch: Arch, score: float | None, result: Mapping[str, Any] | None) -> None:
        """Learn from a finished evaluation (``score`` None: failed; see :meth:`values`)."""

    def on_infeasible(self, arch: Arch, violations: Sequence[str]) -> None:
        """A proposal the constraint check refused: it is never evaluated, is not an
        observation of the objective, and is marked seen (no strategy proposes it again).
        Strategies that track their own proposals (TPE's suggestions, REINFORCE's samples)
        forget it here."""

    # --- scores, resolved at use time -------------------------------------------------
    def values(self) -> np.ndarray:
        """The comparable value of every ``history`` entry now (NaN: failed), higher better.

        Full-budget scores as observed; early-stopped ones compared within their rung (see
        :mod:`raynas.strategies.scores`). Recomputed after each observation, so a strategy
        must read them when it compares, not keep them. Do not modify the array.
        """
        n = len(self.history)
        if self._values_cache is None or self._values_cache[0] != n:
            self._values_cache = (n, self._compute_values())
        return self._values_cache[1]

    def _compute_values(self) -> np.ndarray:
        return resolve_values([s for _, s in self.history], self.fidelities, self.rung_pairs)

    def value(self, index: int) -> float | None:
        """:meth:`values` of one history entry; None when it failed."""
        v = float(self.values()[index])
        return v if math.isfinite(v) else None

    def worst_score(self) -> float | None:
        """A number below every valid value seen so far, for failures; None before any.

        Only valid for the moment it is asked: later results may fall below it, so a
        strategy fills failures in when it uses them (:meth:`filled_values`).
        """
        return worst_below(self.values())

    def filled_values(self) -> np.ndarray:
        """:meth:`values` with failures at :meth:`worst_score` (all 0.0 if all failed)."""
        vals = self.values()
        worst = self.worst_score()
        return np.where(np.isfinite(vals), vals, 0.0 if worst is None else worst)

    @property
    def observed_scores(self) -> list[float]:
        """The valid raw scores (each at the fidelity its trial reached)."""
        return [s for _, s in self.history if s is not None]

    # --- helpers for strategies -----------------------------------------------------
    def is_seen(self, arch: Arch) -> bool:
        return self.space.arch_id(arch) in self.seen

    def unseen_mutant(self, arch: Arch, tries: int = 10) -> Arch | None:
        """An unseen single-decision mutant of ``arch`` (``tries`` draws), else a random
        unseen member (None: the space is exhausted)."""
        if (self.space.cardinality or 2) > 1:
            for _ in range(tries):
                cand = self.space.mutate(arch, self.rng)
                if not self.is_seen(cand):
                    return cand
        return self.random_unseen()

    def random_unseen(self) -> Arch | None:
        """A member not yet evaluated, in flight nor refused (None when none is left)."""
        for _ in range(MAX_REPROPOSE):
            arch = self.space.sample(self.rng)
            if self.space.arch_id(arch) not in self.seen:
                return arch
        card = self.space.cardinality
        if card is not None and card <= ENUMERATE_UNSEEN_LIMIT:
            unseen = [a for a in self.space.enumerate() if self.space.arch_id(a) not in self.seen]
            if not unseen:
                return None
            return unseen[int(self.rng.integers(len(unseen)))]
        return self.space.sample(self.rng)

    def exhausted(self) -> bool:
        card = self.space.cardinality
        return not self.allow_repeats and card is not None and len(self.seen) >= card

    # --- wiring: constraints and synchronous batches -----------------------------------
    def set_constraint_check(
        self, check: ConstraintCheck | None, *, max_tries: int = MAX_REFUSALS
    ) -> None:
        """Check each proposal on the driver; refuse violators before they become trials.

        ``suggest`` asks ``check(arch)`` for the violated constraints of each candidate; a
        candidate with any is refused: counted in ``refused``, kept in ``refused_examples``
        (the first :data:`REFUSED_EXAMPLES`, ``{"arch", "violations"}``), marked seen (never
        proposed again), reported to the strategy by :meth:`on_infeasible`, and the strategy
        is asked again. A refusal costs no trial of the budget. When ``max_tries`` candidates
        in a row are refused, or a finite space runs out before any candidate passed,
        ``suggest`` raises :class:`InfeasibleSpaceError` naming the constraints violated; a
        finite space that runs out after some passed ends with ``FINISHED`` as usual.

        The check is wiring, not state: ``save`` leaves it out and ``restore`` keeps the one
        set on the instance; set it again on a fresh searcher. Errors of ``check`` propagate.

        Args:
            check: ``arch -> violated constraints`` (empty when feasible); None removes it.
            max_tries: Refusals in a row before giving up (an integer >= 1).

        Example:
            >>> searcher.set_constraint_check(
            ...     lambda arch: ["params <= 1e6"] if count_params(arch) > 1e6 else [])
        """
        check_int("max_tries", max_tries, 1)
        if check is not None and not callable(check):
            raise StrategyError(f"check must be callable or None, got {check!r}")
        self._constraint_check = check
        self._max_refusals = max_tries

    def set_sync_batch(self, n: int | None) -> None:
        """Propose in synchronous batches of ``n``: the same trajectory at any concurrency.

        Batch ``i`` is proposed only once every trial of the batches before it completed,
        and their results are observed in suggestion order, not completion order;
        ``suggest`` returns None while it waits. A batch also closes early when the strategy
        itself waits (``propose`` returns None) or the space is exhausted. Trials beyond the
        batch's size are not started, so a concurrency above ``n`` leaves slots idle. Part of
        the saved state; call it before the first ``suggest``. None: asynchronous (default).

        Args:
            n: Batch size (an integer >= 1), or None.
        """
        if n is not None:
            check_int("n", n, 1)
        self.sync_batch = n

    # --- Tune's Searcher API ----------------------------------------------------------
    def set_search_properties(
        self, metric: str | None, mode: str | None, config: dict[str, Any], **spec: Any
    ) -> bool:
        if metric and not self._metric:
            self._metric = metric
        if mode and not self._mode:
            if mode not in ("max", "min"):
                raise StrategyError(f"mode must be 'max' or 'min', got {mode!r}")
            self._mode = mode
        train = config.get("train") if isinstance(config, dict) else None
        epochs = train.get("epochs") if isinstance(train, dict) else None
        if isinstance(epochs, int) and epochs > 0:
            self.max_fidelity = epochs
        return True

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        """Run at most ``max_concurrent`` trials at once: ``suggest`` returns None (before the
        strategy is asked, so the search is the same at any limit) while that many are in
        flight. Tune's ``ConcurrencyLimiter`` calls this and then leaves the limit to the
        searcher (which, unlike the limiter, also counts the trials a restored searcher had
        in flight: Tune runs them again on resume). ``ConcurrencyLimiter(batch=True)`` then
        batches nothing; :meth:`set_sync_batch` is the batch mode. Wiring, not state:
        ``restore`` keeps the limit set on the instance.

        Returns:
            True: the searcher enforces the limit itself.
        """
        self.max_concurrent = check_int("max_concurrent", max_concurrent, 1)
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:  # type: ignore[override]
        if not self._metric or not self._mode:
            raise StrategyError(
                UNDEFINED_METRIC_MODE.format(name=self.name, metric=self._metric, mode=self._mode)
            )
        running = len(self.live) - len(self.batch_done)  # held-back results are done trials
        if self.max_concurrent is not None and running >= self.max_concurrent:
            return None
        if self.sync_batch is None:
            return self._suggest_one(trial_id)
        while True:
            if self.batch_closed:
                if any(t not in self.batch_done for t in self.batch):
                    return None
                self._flush_batch()
            out = self._suggest_one(trial_id)
            if isinstance(out, dict):
                self.batch.append(trial_id)
                self.batch_closed = len(self.batch) >= self.sync_batch
                return out
            if not self.batch:
                return out
            self.batch_closed = True  # the strategy waits, or the space is exhausted
            if out == Searcher.FINISHED:
                if all(t in self.batch_done for t in self.batch):
                    self._flush_batch()
                return out

    def _suggest_one(self, trial_id: str) -> dict[str, Any] | str | None:
        while True:
            arch = self._finished() if self.exhausted() else self._candidate()
            if arch is None or isinstance(arch, str):
                return arch  # the strategy waits, or FINISHED
            violations = list(self._constraint_check(arch)) if self._constraint_check else []
            if not violations:
                break
            self._refuse(arch, violations)
        self.refusal_streak = 0
        self.seen.add(self.space.arch_id(arch))
        self.live[trial_id] = arch
        return {"arch": copy.deepcopy(arch)}

    def _finished(self) -> str:
        """``FINISHED``; an error when every candidate of the finite space was refused."""
        if self.refusal_streak and len(self.seen) <= len(self.refused_ids):
            raise self._infeasible("every member of the space violates them")
        return Searcher.FINISHED  # type: ignore[no-any-return]

    def _candidate(self) -> Arch | str | None:
        """A canonical unseen proposal (a random unseen member after ``MAX_REPROPOSE``
        duplicates), None when the strategy waits, ``FINISHED`` when none is left."""
        for _ in range(MAX_REPROPOSE):
            arch = self.propose()
            if arch is None:
                return None
            arch = self.space.canonical(arch)
            key = self.space.arch_id(arch)
            if key not in self.refused_ids and (self.allow_repeats or key not in self.seen):
                return arch
        fallback = self.random_unseen()
        if fallback is None:
            return self._finished()
        return self.space.canonical(fallback)

    def _refuse(self, arch: Arch, violations: list[str]) -> None:
        key = self.space.arch_id(arch)
        self.refused += 1
        self.refusal_streak += 1
        if len(self.refused_examples) < REFUSED_EXAMPLES:
            self.refused_examples.append({"arch": copy.deepcopy(arch), "violations": violations})
        self.refused_ids.add(key)
        self.seen.add(key)
        self.on_infeasible(arch, violations)
        if self.refusal_streak >= self._max_refusals:
            raise self._infeasible(f"{self.refusal_streak} candidates in a row violated them")

    def _infeasible(self, what: str) -> InfeasibleSpaceError:
        example = self.refused_examples[-1] if self.refused_examples else None
        shown = (
            f"; e.g. {self.space.to_string(example['arch'])} violates {example['violations']}"
            if example
            else ""
        )
        return InfeasibleSpaceError(
            f"strategy {self.name!r}: the constraints exclude space {self.space.name!r}: {what} "
            f"({self.refused} refused in all{shown}); relax the constraints, or raise "
            f"max_tries (now {self._max_refusals})"
        )

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        if trial_id not in self.live or trial_id in self.batch_done:
            return
        self.last_results[trial_id] = dict(result)
        score = result_score(result, self.metric or "", self.mode or "max")
        epoch = _number(result.get("epoch"))
        if score is not None and epoch is not None and self.metric is not None:
            self.curves.setdefault(trial_id, {})[epoch] = score

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        if trial_id not in self.live or trial_id in self.batch_done:
            return
        if self.sync_batch is not None and trial_id in self.batch:
            self.batch_done[trial_id] = (None if result is None else dict(result), error)
            if self.batch_closed and all(t in self.batch_done for t in self.batch):
                self._flush_batch()
            return
        self._observe_trial(trial_id, result, error)

    def _flush_batch(self) -> None:
        """Observe the finished batch in suggestion order and open the next one."""
        batch, done = self.batch, self.batch_done
        self.batch, self.batch_done, self.batch_closed = [], {}, False
        self.batches_done += 1
        for trial_id in batch:
            self._observe_trial(trial_id, *done[trial_id])

    def _observe_trial(self, trial_id: str, result: dict[str, Any] | None, error: bool) -> None:
        arch = self.live.pop(trial_id, None)
        last = self.last_results.pop(trial_id, None)
        curve = self.curves.pop(trial_id, {})
        if arch is None:
            return
        if result is None:
            result = last
        final_arch = (result.get("config") or {}).get("arch") if result else None
        if final_arch is not None and self.space.is_valid(final_arch):
            arch = self.space.canonical(final_arch)  # a scheduler may have mutated it (PBT)
        score = result_score(result, self.metric or "", self.mode or "max", error=error)
        if self.metric is None:
            score = None
        fidelity = self._fidelity(result)
        if fidelity is not None and result is not None:
            result = {**result, "fidelity": fidelity, "censored": True}
        elif score is not None and curve:  # a full-budget trial: its curve links the rungs
            end = _number((result or {}).get("epoch")) or max(curve)
            for epoch, at in curve.items():
                if epoch < end:
                    self.rung_pairs.setdefault(epoch, []).append((at, score))
        self.history.append((arch, score))
        self.fidelities.append(fidelity)
        self.observe(arch, score, result)

    def _fidelity(self, result: Mapping[str, Any] | None) -> float | None:
        """Epochs trained when the trial stopped before its full budget, else None (a result
        marked ``censored`` says its own ``fidelity``: a pruned ``add_evaluated_point``)."""
        if not result:
            return None
        if result.get("censored") is True:
            marked = _number(result.get("fidelity"))
            if marked is not None:
                return marked
        epoch = _number(result.get("epoch"))
        # A replayed run (tabular trainable) says its own length.
        full = _number(result.get("epochs_total") or self.max_fidelity)
        if epoch is None or full is None or epoch >= full:
            return None
        return epoch

    # --- evaluations made elsewhere -----------------------------------------------------
    def add_evaluated_point(
        self,
        parameters: dict[str, Any],
        value: float,
        error: bool = False,
        pruned: bool = False,
        intermediate_values: list[float] | None = None,
    ) -> None:
        """Observe an evaluation made outside this searcher, as if it were a finished trial.

        Tune's ``Searcher.add_evaluated_point``. The point joins ``history`` (and ``seen``:
        never proposed again) through the same path as a trial's ``on_trial_complete``, so
        every strategy learns from it as from its own trials (REINFORCE, on-policy, counts
        it as ``off_policy``).

        Args:
            parameters: A config as :meth:`suggest` returns it, ``{"arch": arch}``.
            value: The metric in the searcher's own mode (as a trial would report it); None,
                NaN or inf: a failed evaluation.
            error: The evaluation failed (its value is ignored).
            pruned: A scheduler stopped it early: compared within the rung it reached (the
                epoch of its last intermediate value; 0 without any), below trials that went
                further.
            intermediate_values: The metric after each epoch, in order.

        Raises:
            StrategyError: no metric or mode yet, or ``parameters`` is no config of this
                space (the message names the bad key).

        Example:
            >>> searcher.add_evaluated_point({"arch": arch}, 0.91)
        """
        where = "add_evaluated_point"
        self._require_metric(where)
        arch = config_arch(self.space, parameters, where)
        steps = point_results(
            str(self.metric), value, pruned=pruned, intermediate_values=intermediate_values
        )
        self._feed(arch, steps, error=error)

    def add_evaluated_trials(self, trials_or_analysis: Any, metric: str) -> None:
        """Observe the finished trials of another run (Tune's ``add_evaluated_trials``).

        Accepts a ``Trial``, a list of them, an ``ExperimentAnalysis``, a ``ResultGrid`` or a
        pandas ``DataFrame`` (one row per trial, config columns ``config/arch/...`` as in
        ``ResultGrid.get_dataframe()``, or an ``arch`` column); see
        :mod:`raynas.strategies.evaluated`. Each trial's whole result (its curve too, from a
        ``ResultGrid``) is observed as if it had finished here, with ``metric`` read as the
        searcher's metric in the searcher's mode. Unfinished trials are left out, errored
        ones are failures. Every config is checked before any is observed.

        Raises:
            StrategyError: no metric or mode yet, or a config that is not one of this space.
            TypeError: an input of another kind.
        """
        where = "add_evaluated_trials"
        self._require_metric(where)
        records = list(records_from(trials_or_analysis, metric))
        parsed = [
            (config_arch(self.space, r.config, f"{where}: trial {i}"), r)
            for i, r in enumerate(records)
        ]
        if not any(r.results and metric in r.results[-1] for _, r in parsed):
            warnings.warn(
                f"{where}: no trial reported the metric {metric!r}; every one is observed as "
                "a failure (is the metric name right?)",
                stacklevel=2,
            )
        for arch, record in parsed:
            results = [renamed_metric(r, metric, str(self.metric)) for r in record.results]
            self._feed(arch, results, error=record.error)

    def warm_start(self, records: Iterable[tuple[Mapping[str, Any], WarmResult]]) -> int:
        """Observe the trials of a previous experiment before this search starts.

        Each record goes through the path of a trial that finished here: every result is
        given to ``on_trial_result`` (the curve links the rungs of early-stopped trials),
        the last one to ``on_trial_complete``; ``epoch`` against the full budget decides
        whether it was early-stopped (:mod:`raynas.strategies.scores`). The archs are marked
        seen (never proposed again). Every record is checked before any is observed.

        Args:
            records: ``(config, result)`` pairs: ``config`` as :meth:`suggest` returns it
                (``{"arch": arch}``, other keys ignored); ``result`` None (the trial gave no
                result: a failure), its final result dict (the metric under the searcher's
                own metric name), or every result it reported, in order.

        Returns:
            How many records were observed.

        Raises:
            StrategyError: no metric or mode yet, a record that is no ``(config, result)``
                pair, or a config that is not one of this space (naming the bad key).

        Example:
            >>> fed = searcher.warm_start([({"arch": arch}, {"val_acc": 0.9, "epoch": 10})])
        """
        self._require_metric("warm_start")
        parsed: list[tuple[Arch, Evaluation]] = []
        for i, record in enumerate(records):
            where = f"warm_start: record {i}"
            if not (isinstance(record, Sequence) and len(record) == 2):
                raise StrategyError(f"{where} must be a (config, result) pair, got {record!r}")
            config, result = record
            try:
                results = as_results(result)
            except TypeError as err:
                raise StrategyError(f"{where}: {err}") from err
            parsed.append((config_arch(self.space, config, where), Evaluation(config, results)))
        for arch, evaluation in parsed:
            self._feed(arch, evaluation.results, error=False)
        return len(parsed)

    def _require_metric(self, where: str) -> None:
        if not self._metric or not self._mode:
            raise StrategyError(
                NO_METRIC_TO_SCORE.format(
                    name=self.name, where=where, metric=self._metric, mode=self._mode
                )
            )

    def _feed(self, arch: Arch, results: list[dict[str, Any]], *, error: bool) -> None:
        """Observe an outside evaluation through a trial's own path (a fresh trial id)."""
        trial_id = EVALUATED_ID.format(self.evaluated)
        self.evaluated += 1
        self.seen.add(self.space.arch_id(arch))
        self.live[trial_id] = arch
        for result in results:
            self.on_trial_result(trial_id, result)
        self._observe_trial(trial_id, results[-1] if results else None, error)

    # --- state ------------------------------------------------------------------------
    def _transient(self) -> tuple[str, ...]:
        return self.TRANSIENT_BASE

    def _state(self) -> dict[str, Any]:
        """The search state as references to the live objects (no copy; do not modify).

        :meth:`get_state` copies it, :meth:`save` pickles it as it is (Tune saves the searcher
        at every experiment snapshot). A strategy that keeps derived or large immutable data
        overrides this and :meth:`_load_state` to leave it out (rebuilt on load) or store it
        compactly; both paths, ``get_state``/``set_state`` and ``save``/``restore``, use them.
        """
        skip = set(self._transient())
        return {k: v for k, v in self.__dict__.items() if k not in skip}

    def get_state(self) -> dict[str, Any]:
        """Everything needed to continue the same search, RNGs included (no wiring).

        An independent copy (nothing in it is shared with the live searcher), made by one
        pickle round trip: what :meth:`save` writes, and faster than ``copy.deepcopy``.
        """
        state: dict[str, Any] = pickle.loads(
            pickle.dumps(self._state(), protocol=pickle.HIGHEST_PROTOCOL)
        )
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`get_state`'s ``state`` (copied: the caller keeps its own)."""
        skip = set(self._transient())
        kept = {k: v for k, v in state.items() if k not in skip}
        self._load_state(pickle.loads(pickle.dumps(kept, protocol=pickle.HIGHEST_PROTOCOL)))

    def _load_state(self, state: dict[str, Any]) -> None:
        """Take ``state`` (owned by this searcher from now on: not copied) as the search state."""
        skip = set(self._transient())
        self.__dict__.update({k: v for k, v in state.items() if k not in skip})
        self._values_cache = None
        if len(self.fidelities) != len(self.history):  # a checkpoint from before fidelities
            self.fidelities = [None] * len(self.history)

    def save(self, checkpoint_path: str) -> None:
        path = Path(checkpoint_path)
        tmp = path.with_name(path.name + ".tmp")
        # A subclass that overrides get_state (rather than _state) keeps its own state form.
        custom = type(self).get_state is not NASSearcher.get_state
        with open(tmp, "wb") as f:
            pickle.dump(
                self.get_state() if custom else self._state(), f, protocol=pickle.HIGHEST_PROTOCOL
            )
        tmp.replace(path)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            state = pickle.load(f)
        if type(self).set_state is not NASSearcher.set_state:
            self.set_state(state)
        else:
            self._load_state(state)  # freshly unpickled: nothing to copy
