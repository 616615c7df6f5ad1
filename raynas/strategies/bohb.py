"""``bohb``: model-based multi-fidelity search, BOHB-style (Falkner et al., ICML 2018).

BOHB replaces HyperBand's random sampling with a density model, and fits that model on the
results of the *largest budget that has enough of them*. Here a budget is the epochs a trial
had trained when it reported (``epoch``), so a trial that ASHA or HyperBand stopped after 1
epoch still teaches the model at budget 1, and one trained to the end teaches it at every
epoch it reported on the way (``on_trial_result``: the per-epoch curve the base records),
while it still runs, not only when it completes.

One proposal:

1. with probability ``random_fraction`` (BOHB's default 1/3) a random architecture, which
   keeps exploring whatever the model says;
2. otherwise the model budget is the largest budget ``b`` with at least
   ``min_points_in_model`` valid observations (BOHB's rule; default ``d + 1``, where ``d`` is
   the number of genes of the space, :attr:`Space.genes`); before any budget has that many,
   the proposal is random (the warm-up);
3. the observations at ``b`` (finished trials, and the trials still running that reported at
   ``b``; failures count as bad at every budget from the epochs they reached) are ranked
   by their score at ``b``: the best ``ceil(top_n_percent% of n)`` (at least 1) are "good",
   the rest "bad" (BOHB's split, ``top_n_percent = 15``);
4. per gene, a good and a bad density as :mod:`raynas.strategies.tpe` builds them (a
   categorical one with a pseudo-count of 1 per option for a discrete gene; tpe's truncated
   Gaussian :class:`~raynas.strategies.tpe.Parzen` mixture on the unit interval, in log
   space for ``log`` genes, for a continuous one), the observations weighing the same;
5. ``n_candidates`` genomes are drawn gene by gene from the good densities and the one with
   the largest ``log l(x) - log g(x)`` summed over its active genes is proposed (BOHB's
   acquisition on a product density); an already seen candidate gives way to the next best,
   then to an unseen single-decision mutant of the best, then to a random unseen member.

State (``save``/``restore``): the per-budget observations of finished trials and the failures,
beside the base's (history, live curves, RNGs); genomes are a cache, rebuilt on use.

Schedulers: any that reports ``epoch`` works. Under raynas' ``asha`` every trial reaches the
first rung, so the model starts on the lowest budget and moves up as promoted trials come in;
under ``hyperband`` a paused trial is still live and its rung result is observed when it
arrives. Tune's ``HyperBandForBOHB`` calls ``on_pause`` / ``on_unpause`` on its searcher: both
exist here (nothing to do: a paused trial's results are already observed).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from raynas.space import Arch, Space
from raynas.strategies import register_strategy
from raynas.strategies.base import NASSearcher, check_int, check_range
from raynas.strategies.tpe import Parzen, categorical, from_unit, to_unit

#: Budget of a result that says no ``epoch`` (a full evaluation of unknown length).
UNKNOWN_BUDGET = math.inf
#: BOHB's defaults (Falkner et al. 2018, and HpBandSter).
TOP_N_PERCENT = 15.0
RANDOM_FRACTION = 1.0 / 3.0
N_CANDIDATES = 64


@register_strategy(
    "bohb", description="BOHB: TPE densities on the largest budget with enough results"
)
class BOHB(NASSearcher):
    """BOHB's model-based sampling over the space's genome, fed at every budget reached.

    Pair it with an early-stopping scheduler (``scheduler: {name: asha}`` or ``hyperband``);
    under FIFO every trial reaches the full budget and it is a TPE with BOHB's split and
    random fraction. Works on continuous spaces.

    Args:
        space: The search space.
        min_points_in_model: Valid observations a budget needs before the model is fitted
            on it (the warm-up); None: ``d + 1``, ``d`` the number of genes (BOHB's default).
        top_n_percent: Percentage of a budget's observations that are "good", in (0, 100).
        random_fraction: Share of proposals drawn at random, in [0, 1].
        n_candidates: Genomes drawn from the good densities per proposal (BOHB's
            ``num_samples``).
        **kwargs: ``metric``, ``mode``, ``seed``, ``allow_repeats`` (see
            :class:`~raynas.strategies.base.NASSearcher`).

    Raises:
        StrategyError: An argument out of range.

    Example:
        >>> searcher = BOHB(raynas.get_space("nb201"), metric="val_acc", mode="max", seed=0)
        >>> searcher.suggest("trial_1")
        {'arch': {...}}
    """

    def __init__(
        self,
        space: Space,
        *,
        min_points_in_model: int | None = None,
        top_n_percent: float = TOP_N_PERCENT,
        random_fraction: float = RANDOM_FRACTION,
        n_candidates: int = N_CANDIDATES,
        **kwargs: Any,
    ) -> None:
        if min_points_in_model is not None:
            check_int("min_points_in_model", min_points_in_model, 1)
        check_int("n_candidates", n_candidates, 1)
        good_percent = check_range("top_n_percent", top_n_percent, 0.0, 100.0, closed=False)
        random_share = check_range("random_fraction", random_fraction, 0.0, 1.0)
        super().__init__(space, **kwargs)
        genes = len(space.genes)
        self.min_points_in_model = (
            genes + 1 if min_points_in_model is None else int(min_points_in_model)
        )
        self.top_n_percent = good_percent
        self.random_fraction = random_share
        self.n_candidates = n_candidates
        #: Per budget (epochs): ``(arch, score at that budget)`` of each finished trial that
        #: reported there, in the order they finished (higher is better).
        self.observations: dict[float, list[tuple[Arch, float]]] = {}
        #: ``(arch, epochs reached)`` of each failed trial: bad at every budget from there.
        self.failures: list[tuple[Arch, float]] = []
        #: Proposals by kind: ``random`` (the random fraction), ``warmup``, ``model``.
        self.proposal_kinds = {"random": 0, "warmup": 0, "model": 0}
        self._closing: dict[float, float] = {}
        self._genome_cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    # --- Tune hooks ---------------------------------------------------------------------
    def set_search_properties(
        self, metric: str | None, mode: str | None, config: dict[str, Any], **spec: Any
    ) -> bool:
        """The base's, and a warning when Tune's ``num_samples`` (in ``spec``) leaves no
        trial to the model: the warm-up needs ``min_points_in_model`` results at a budget.
        (``raynas run`` warns before the run instead, through the runner's warm-up check.)"""
        trials = spec.get("num_samples")
        if isinstance(trials, int) and 0 < trials <= self.min_points_in_model:
            warnings.warn(
                f"strategy {self.name!r}: min_points_in_model={self.min_points_in_model} is "
                f"not below num_samples={trials}, so every trial is drawn at random and the "
                "model is never used; raise num_samples or lower min_points_in_model",
                stacklevel=2,
            )
        return super().set_search_properties(metric, mode, config, **spec)

    def on_pause(self, trial_id: str) -> None:
        """Tune's ``HyperBandForBOHB`` paused the trial: nothing to do (it stays live, its
        rung results are observed as they came)."""

    def on_unpause(self, trial_id: str) -> None:
        """Tune's ``HyperBandForBOHB`` resumed the trial: nothing to do."""

    # --- observations -------------------------------------------------------------------
    def _observe_trial(self, trial_id: str, result: dict[str, Any] | None, error: bool) -> None:
        # The base drops the trial's per-epoch curve as it observes it: keep it for observe.
        self._closing = dict(self.curves.get(trial_id, {}))
        try:
            super()._observe_trial(trial_id, result, error)
        finally:
            self._closing = {}

    def observe(self, arch: Arch, score: float | None, result: Mapping[str, Any] | None) -> None:
        curve = self._closing
        budget = _result_budget(result, curve)
        if score is None:
            self.failures.append((arch, 0.0 if budget == UNKNOWN_BUDGET else budget))
            points = {b: s for b, s in curve.items() if b < budget}
        else:
            points = {**curve, budget: score}
        for b in sorted(points):
            self.observations.setdefault(b, []).append((arch, points[b]))

    def budget_points(self, budget: float) -> list[tuple[Arch, float]]:
        """Every observation at ``budget``: finished trials, then live ones that reported
        there (not those a synchronous batch holds back), then failures that ended at or
        before it (scored ``-inf``). Higher is better."""
        out = list(self.observations.get(budget, []))
        held = set(self.batch) if self.sync_batch is not None else set()
        for trial_id, curve in self.curves.items():
            if trial_id in self.live and trial_id not in held and budget in curve:
                out.append((self.live[trial_id], curve[budget]))
        out += [(arch, -math.inf) for arch, reached in self.failures if reached <= budget]
        return out

    def budget_counts(self) -> dict[float, int]:
        """Valid observations per budget (what the ``min_points_in_model`` rule counts)."""
        held = set(self.batch) if self.sync_batch is not None else set()
        counts = {b: len(points) for b, points in self.observations.items()}
        for trial_id, curve in self.curves.items():
            if trial_id in self.live and trial_id not in held:
                for b in curve:
                    counts[b] = counts.get(b, 0) + 1
        return dict(sorted(counts.items()))

    def model_budget(self) -> float | None:
        """The largest budget with at least ``min_points_in_model`` valid observations (the
        one the model is fitted on), None during the warm-up."""
        enough = [b for b, n in self.budget_counts().items() if n >= self.min_points_in_model]
        return max(enough) if enough else None

    # --- proposals ----------------------------------------------------------------------
    def propose(self) -> Arch | None:
        if self.rng.random() < self.random_fraction:
            self.proposal_kinds["random"] += 1
            return self._random()
        budget = self.model_budget()
        if budget is None:
            self.proposal_kinds["warmup"] += 1
            return self._random()
        self.proposal_kinds["model"] += 1
        return self._model_proposal(self.budget_points(budget))

    def _random(self) -> Arch | None:
        arch = self.space.sample(self.rng)
        if self.allow_repeats or not self.is_seen(arch):
            return arch
        return self.random_unseen()

    def split(self, points: Sequence[tuple[Arch, float]]) -> tuple[list[int], list[int]]:
        """Indices of the good and the bad ``points`` (BOHB's ``top_n_percent`` split; ties
        keep observation order)."""
        scores = np.asarray([s for _, s in points], dtype=np.float64)
        n_good = max(1, math.ceil(self.top_n_percent / 100.0 * len(points)))
        order = np.argsort(-scores, kind="stable")
        return sorted(order[:n_good].tolist()), sorted(order[n_good:].tolist())

    def _model_proposal(self, points: Sequence[tuple[Arch, float]]) -> Arch | None:
        good, bad = self.split(points)
        rows = [self._genome(arch) for arch, _ in points]
        genomes = np.stack([g for g, _ in rows])
        masks = np.stack([m for _, m in rows])
        n = self.n_candidates
        cands = np.zeros((n, genomes.shape[1]))
        ratio = np.zeros((n, genomes.shape[1]))
        for j, gene in enumerate(self.space.genes):
            g_obs = genomes[good, j][masks[good, j]]
            b_obs = genomes[bad, j][masks[bad, j]]
            if gene.size is not None:
                p_good = categorical(g_obs.astype(np.int64), gene.size)
                p_bad = categorical(b_obs.astype(np.int64), gene.size)
                picks = self.rng.choice(gene.size, size=n, p=p_good)
                cands[:, j] = picks
                ratio[:, j] = np.log(p_good[picks]) - np.log(p_bad[picks])
            elif gene.high > gene.low:
                low, high, log = float(gene.low), float(gene.high), gene.log
                l_good = Parzen(to_unit(g_obs, low, high, log), np.ones(len(g_obs)))
                l_bad = Parzen(to_unit(b_obs, low, high, log), np.ones(len(b_obs)))
                u = l_good.sample(self.rng, n)
                cands[:, j] = from_unit(u, low, high, log)
                ratio[:, j] = l_good.log_pdf(u) - l_bad.log_pdf(u)
            else:
                cands[:, j] = gene.low
        archs = [self.space.decode(c) for c in cands]
        acq = np.asarray(
            [
                float(ratio[i][np.asarray(self.space.active_mask(a), bool)].sum())
                for i, a in enumerate(archs)
            ]
        )
        ranked = np.argsort(-acq, kind="stable")
        if self.allow_repeats:
            return archs[int(ranked[0])]
        for i in ranked:
            if not self.is_seen(archs[int(i)]):
                return archs[int(i)]
        return self.unseen_mutant(archs[int(ranked[0])])

    def _genome(self, arch: Arch) -> tuple[np.ndarray, np.ndarray]:
        key = self.space.arch_id(arch)
        cached = self._genome_cache.get(key)
        if cached is None:
            cached = (
                np.asarray(self.space.encode(arch), dtype=np.float64),
                np.asarray(self.space.active_mask(arch), dtype=bool),
            )
            self._genome_cache[key] = cached
        return cached

    # --- state --------------------------------------------------------------------------
    def _transient(self) -> tuple[str, ...]:
        return (*super()._transient(), "_closing", "_genome_cache")


def _result_budget(result: Mapping[str, Any] | None, curve: Mapping[float, float]) -> float:
    """The epochs a trial had trained at its last result (its curve's end when the result
    says none; :data:`UNKNOWN_BUDGET` without either)."""
    if result:
        if result.get("censored") is True:
            marked = _number(result.get("fidelity"))
            if marked is not None:
                return marked
        epoch = _number(result.get("epoch"))
        if epoch is not None:
            return epoch
    return max(curve) if curve else UNKNOWN_BUDGET


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        return None
    return float(value) if math.isfinite(value) else None
