"""``optuna``: Optuna's samplers (TPE, GP, CMA-ES, NSGA-II, QMC, random) on the space's genome.

Optuna is driven directly (``optuna.create_study`` plus ask/tell) inside a
:class:`~raynas.strategies.base.NASSearcher`, not through Tune's ``OptunaSearch``. Tune's
searcher is a separate ``Searcher``: it would bypass the base's driver-side constraint checks
and refusals, de-duplication, failure scoring, synchronous batches, concurrency limit, outside
evaluations and the RNG-complete ``save``/``restore``, and it keeps its study in an object that
is not part of a searcher state the base can save. Here Optuna only samples; raynas keeps its
semantics exactly as for every other strategy.

The space becomes one fixed Optuna search space, one distribution per gene of
:attr:`Space.genes` (named by the gene's path): a discrete gene is a categorical over its
option indices (an integer in ``[0, size)`` with ``ordinal``: what CMA-ES needs, as it samples
categoricals at random), a continuous one a float (log where the gene is log). Every gene is
sampled at each ask; :meth:`Space.decode` ignores the genes a branch does not use. One ask is
one proposal:

- a proposal already evaluated, in flight or refused is told ``FAIL`` (not an observation:
  every sampler ignores it) and replaced by an unseen single-decision mutant (else a random
  unseen member), enqueued into the study so that it is an Optuna trial of its own;
- a proposal the constraint check refuses is told ``FAIL`` (:meth:`on_infeasible`): refused
  candidates never enter the model, as in every strategy;
- a finished trial is told once, with the values as "higher is better" (every direction is
  ``maximize``, so ``mode`` changes nothing but the sign): a valid full-budget result
  ``COMPLETE``; a failure (error, NaN/inf, metric missing, failed status) ``PRUNED`` without
  intermediate values, which Optuna's TPE ranks below every complete and every early-stopped
  trial (raynas' "failures rank last") and GP, CMA-ES and NSGA-II leave out, as they do any
  pruned trial; an early-stopped trial (ASHA...) a ``PRUNED`` trial whose one intermediate
  value is its score at the epoch it reached, which TPE ranks within its rung (below the
  trials that went further);
- evaluations made elsewhere (``add_evaluated_point``, ``warm_start``) and fallbacks are added
  with ``study.add_trial``.

Optuna reads the values it was told; it does not re-read :meth:`NASSearcher.values` at each
ask as the built-in strategies do (an early-stopped trial keeps Optuna's own within-rung
ranking). Several objectives (``objectives``, from ``objective.metric`` plus
``objective.also``) make a multi-objective study, NSGA-II by default; a result lacking one of
them is a failure there. The state is the base's plus the study's in-memory storage and the
sampler (its RNG included; a lock it holds is made afresh on load), pickled, so a restored
search asks what an uninterrupted one would.

Example:
    >>> searcher = get_strategy("optuna", space, metric="val_acc", mode="max", seed=0,
    ...                         sampler="tpe", sampler_args={"n_startup_trials": 10})

Kept as one module (over 450 lines): one strategy: the mapping of a space onto Optuna
distributions and the ask/tell searcher that uses it.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import importlib.util
import inspect
import threading
import warnings
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from raynas.space import Arch, Space
from raynas.strategies import register_strategy
from raynas.strategies.base import StrategyError, result_score
from raynas.strategies.moea import MultiObjectiveSearcher, _parse_objectives

#: Sampler names and Optuna's sampler classes.
SAMPLERS = {
    "tpe": "TPESampler",
    "gp": "GPSampler",
    "cmaes": "CmaEsSampler",
    "nsga2": "NSGAIISampler",
    "qmc": "QMCSampler",
    "random": "RandomSampler",
}
#: Packages a sampler needs beyond optuna itself.
SAMPLER_PACKAGES = {"cmaes": ("cmaes",), "gp": ("torch", "scipy")}
#: Samplers that optimise one objective only.
SINGLE_OBJECTIVE = frozenset({"cmaes"})
#: Sampler arguments the strategy sets itself, and where they come from.
OWN_SAMPLER_ARGUMENTS = {"seed": "the experiment's seed"}
STUDY_NAME = "raynas"
MISSING_OPTUNA = (
    "strategy 'optuna' needs the optuna package (>= 4), which is not installed; "
    "pip install 'raynas[optuna]'"
)
MISSING_PACKAGE = (
    "strategy 'optuna': sampler {sampler!r} needs the package {package!r}, which is not "
    "installed; pip install {package}"
)
REPEATER_UNSUPPORTED = (
    "strategy 'optuna' with several objectives cannot run inside ray.tune.search.Repeater: "
    "the Repeater passes only the mean of {metric!r}, so the other objectives {others} would "
    "be lost; average the repeats inside the trainable, or optimise one objective"
)
#: Attributes rebuilt on load, never saved: the study handle and the distributions.
_DERIVED = ("_study", "_distributions", "_observing")
#: The lock types a sampler may hold (Optuna 5's genetic samplers guard a cache with one).
_LOCK_TYPES = (type(threading.Lock()), type(threading.RLock()))


def _picklable_sampler(sampler: Any) -> Any:
    """``sampler``, or a shallow copy without its locks (not picklable, and not state).

    The names of the dropped locks are kept in ``_raynas_locks``; :func:`_relocked_sampler`
    makes fresh ones on load.
    """
    locks = [k for k, v in vars(sampler).items() if isinstance(v, _LOCK_TYPES)]
    if not locks:
        return sampler
    out = copy.copy(sampler)
    for name in locks:
        delattr(out, name)
    out._raynas_locks = locks
    return out


def _relocked_sampler(sampler: Any) -> Any:
    """``sampler`` with fresh locks where :func:`_picklable_sampler` dropped them."""
    for name in vars(sampler).pop("_raynas_locks", ()):
        setattr(sampler, name, threading.Lock())
    return sampler


def _import_optuna() -> Any:
    """The optuna module, or a StrategyError saying how to install it."""
    try:
        return importlib.import_module("optuna")
    except ModuleNotFoundError as err:
        if err.name != "optuna":
            raise
        raise StrategyError(MISSING_OPTUNA) from err


@contextlib.contextmanager
def _quiet(optuna: Any) -> Iterator[None]:
    """Optuna without its per-trial INFO lines and experimental-feature warnings."""
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            yield
    finally:
        optuna.logging.set_verbosity(level)


def build_sampler(name: str, args: Mapping[str, Any], seed: int) -> Any:
    """Optuna's sampler ``name`` with ``args`` and ``seed``.

    Raises:
        StrategyError: an unknown sampler, an argument the sampler does not take (naming
            ``sampler_args.<key>`` and listing the valid ones), a missing package, or a value
            the sampler refuses.
    """
    optuna = _import_optuna()
    if name not in SAMPLERS:
        raise StrategyError(
            f"strategy 'optuna': sampler must be one of {sorted(SAMPLERS)}, got sampler={name!r}"
        )
    cls = getattr(optuna.samplers, SAMPLERS[name])
    valid = sorted(
        p
        for p, spec in inspect.signature(cls.__init__).parameters.items()
        if p != "self"
        and p not in OWN_SAMPLER_ARGUMENTS
        and spec.kind not in (spec.VAR_KEYWORD, spec.VAR_POSITIONAL)
    )
    for key in args:
        if key in OWN_SAMPLER_ARGUMENTS:
            raise StrategyError(
                f"strategy 'optuna': sampler_args.{key} is set from "
                f"{OWN_SAMPLER_ARGUMENTS[key]}; remove it from sampler_args"
            )
        if key not in valid:
            raise StrategyError(
                f"strategy 'optuna': sampler_args.{key} is not an argument of sampler "
                f"{name!r} (optuna's {cls.__name__}); its arguments are {valid}"
            )
    for package in SAMPLER_PACKAGES.get(name, ()):
        if importlib.util.find_spec(package) is None:
            raise StrategyError(MISSING_PACKAGE.format(sampler=name, package=package))
    try:
        with _quiet(optuna):
            return cls(seed=seed, **args)
    except (TypeError, ValueError) as err:
        raise StrategyError(
            f"strategy 'optuna': sampler_args {dict(args)!r} for sampler {name!r}: {err}"
        ) from err


@register_strategy(
    "optuna", description="Optuna's samplers (tpe, gp, cmaes, nsga2, qmc, random) by ask/tell"
)
class OptunaSearch(MultiObjectiveSearcher):
    """Optuna's samplers over the space's genome, one ask per proposal, one tell per result.

    Args:
        space: The search space.
        sampler: ``tpe``, ``gp`` (Gaussian process; needs torch and scipy; about a second
            per proposal at 100 results on nb201 on one CPU, tens of seconds on spaces with
            many genes such as mobilenet's 66), ``cmaes`` (needs the ``cmaes`` package; one
            objective), ``nsga2``, ``qmc`` or ``random``. None: ``tpe`` with one objective,
            ``nsga2`` with several.
        sampler_args: Keyword arguments of Optuna's sampler class (e.g. ``n_startup_trials``
            for tpe and gp, ``population_size`` for nsga2, ``qmc_type`` for qmc); ``seed`` is
            the experiment's. An unknown key is refused with the valid ones listed.
        objectives: ``[(metric, mode), ...]``; None: the searcher's metric and mode alone.
            The runner passes the experiment's ``objective.metric`` and ``objective.also``;
            with two or more the study is multi-objective (Pareto).
        ordinal: Give Optuna each discrete decision as an integer index rather than a
            categorical (an order the options may not have, but one CMA-ES and GP can
            search). None: only for ``cmaes``, which samples categoricals at random.
        **kwargs: ``metric``, ``mode``, ``seed``, ``allow_repeats`` (see
            :class:`~raynas.strategies.base.NASSearcher`).

    Raises:
        StrategyError: optuna (or a package the sampler needs) is not installed, an unknown
            sampler or sampler argument, malformed objectives, or several objectives with a
            single-objective sampler.

    Example:
        >>> searcher = OptunaSearch(raynas.get_space("nb201"), sampler="tpe",
        ...                         metric="val_acc", mode="max", seed=0)
        >>> searcher.suggest("trial_1")
        {'arch': {...}}
    """

    REPEATER_UNSUPPORTED: ClassVar[str] = REPEATER_UNSUPPORTED

    def __init__(
        self,
        space: Space,
        *,
        sampler: str | None = None,
        sampler_args: dict[str, Any] | None = None,
        objectives: list[tuple[str, str]] | None = None,
        ordinal: bool | None = None,
        **kwargs: Any,
    ) -> None:
        parsed = _parse_objectives(objectives)
        n_objectives = len(parsed) if parsed else 1
        if sampler is None:
            sampler = "nsga2" if n_objectives > 1 else "tpe"
        if not isinstance(sampler, str):
            raise StrategyError(f"strategy 'optuna': sampler must be a string, got {sampler!r}")
        if sampler_args is None:
            sampler_args = {}
        if not isinstance(sampler_args, Mapping):
            raise StrategyError(
                f"strategy 'optuna': sampler_args must be a mapping of sampler arguments, got "
                f"sampler_args={sampler_args!r}"
            )
        if ordinal is not None and not isinstance(ordinal, bool):
            raise StrategyError(f"strategy 'optuna': ordinal must be a bool, got {ordinal!r}")
        if n_objectives > 1 and sampler in SINGLE_OBJECTIVE:
            raise StrategyError(
                f"strategy 'optuna': sampler {sampler!r} optimises one objective, got "
                f"{n_objectives} ({[m for m, _ in parsed or []]}); use 'nsga2', 'tpe', 'gp', "
                "'qmc' or 'random'"
            )
        super().__init__(space, **kwargs)
        optuna = _import_optuna()
        self.sampler_name = sampler
        self.sampler_args = dict(sampler_args)
        self.objectives = parsed
        self.ordinal = sampler == "cmaes" if ordinal is None else ordinal
        self._sampler = build_sampler(sampler, self.sampler_args, self.seed)
        self._storage = optuna.storages.InMemoryStorage()
        with _quiet(optuna):
            optuna.create_study(
                storage=self._storage,
                sampler=self._sampler,
                study_name=STUDY_NAME,
                directions=["maximize"] * n_objectives,
            )
        #: Per proposed arch id: the numbers of its Optuna trials not yet told, oldest first.
        self.asked: dict[str, list[int]] = {}
        self._study: Any = None
        self._distributions: dict[str, Any] = self._make_distributions()
        self._observing: Arch | None = None

    # --- the Optuna study ---------------------------------------------------------------
    @property
    def study(self) -> Any:
        """The ``optuna.Study`` over this searcher's storage and sampler."""
        if self._study is None:
            optuna = _import_optuna()
            with _quiet(optuna):
                self._study = optuna.load_study(
                    study_name=STUDY_NAME, storage=self._storage, sampler=self._sampler
                )
        return self._study

    def _make_distributions(self) -> dict[str, Any]:
        """One Optuna distribution per gene, keyed by the gene's path (made unique)."""
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        out: dict[str, Any] = {}
        for j, gene in enumerate(self.space.genes):
            key = gene.path if gene.path not in out else f"{gene.path}#{j}"
            if gene.size is None:
                out[key] = FloatDistribution(gene.low, gene.high, log=gene.log)
            elif self.ordinal:
                out[key] = IntDistribution(0, max(gene.size - 1, 0))
            else:
                out[key] = CategoricalDistribution(list(range(gene.size)))
        return out

    def _arch(self, params: Mapping[str, Any]) -> Arch:
        """The architecture of an Optuna trial's parameters."""
        return self.space.canonical(
            self.space.decode([float(params[k]) for k in self._distributions])
        )

    def _params(self, arch: Arch) -> dict[str, Any]:
        """``arch`` as Optuna parameters (genes a branch does not use at their lowest value)."""
        genome = self.space.encode(arch)
        mask = self.space.active_mask(arch)
        out: dict[str, Any] = {}
        for key, gene, value, active in zip(self._distributions, self.space.genes, genome, mask):
            if gene.size is None:
                out[key] = min(max(float(value), gene.low), gene.high) if active else gene.low
            else:
                out[key] = int(round(value)) if active else 0
        return out

    def _ask(self, arch: Arch | None = None) -> Any:
        """A new Optuna trial: sampled, or holding ``arch`` (enqueued first)."""
        optuna = _import_optuna()
        with _quiet(optuna):
            if arch is not None:
                self.study.enqueue_trial(self._params(arch), skip_if_exists=False)
            return self.study.ask(self._distributions)

    def _tell(self, number: int, values: list[float] | None, state: str) -> None:
        optuna = _import_optuna()
        with _quiet(optuna):
            self.study.tell(number, values, state=getattr(optuna.trial.TrialState, state.upper()))

    def _add(self, arch: Arch, outcome: tuple[list[float] | None, str, dict[int, float]]) -> None:
        """An observation with no Optuna trial of its own, added to the study."""
        optuna = _import_optuna()
        values, state, intermediate = outcome
        trial = optuna.trial.create_trial(
            params=self._params(arch),
            distributions=self._distributions,
            values=values,
            state=getattr(optuna.trial.TrialState, state.upper()),
            intermediate_values=intermediate or None,
        )
        with _quiet(optuna):
            self.study.add_trial(trial)

    def _pop_asked(self, arch: Arch) -> int | None:
        numbers = self.asked.get(self.space.arch_id(arch))
        if not numbers:
            return None
        number = numbers.pop(0)
        if not numbers:
            del self.asked[self.space.arch_id(arch)]
        return number

    # --- objectives ---------------------------------------------------------------------
    def active_objectives(self) -> list[tuple[str, str]]:
        """The objectives in use: the given ones, or the searcher's metric and mode."""
        if self.objectives is not None:
            return list(self.objectives)
        return [(self.metric or "", self.mode or "max")]

    def _outcome(
        self, score: float | None, result: Mapping[str, Any] | None
    ) -> tuple[list[float] | None, str, dict[int, float]]:
        """What Optuna is told: (values, state, intermediate values), see the module doc."""
        objs = self.active_objectives()
        first_metric, first_mode = objs[0]
        own = first_metric == self.metric and first_mode == (self.mode or "max")
        primary = score if own or score is None else result_score(result, *objs[0])
        if primary is None:
            return None, "pruned", {}
        values = [primary] + [result_score(result, m, mode) for m, mode in objs[1:]]
        if any(v is None for v in values):
            return None, "pruned", {}
        if result is not None and result.get("censored") is True:
            if len(objs) > 1:
                return None, "pruned", {}
            return None, "pruned", {int(round(float(result["fidelity"]))): float(primary)}
        return [float(v) for v in values if v is not None], "complete", {}

    def _observe_trial(self, trial_id: str, result: dict[str, Any] | None, error: bool) -> None:
        # The arch the trial was proposed as owns the Optuna trial, also when a scheduler
        # (PBT-evolution) changed it; observe() tells that trial.
        self._observing = self.live.get(trial_id)
        try:
            super()._observe_trial(trial_id, result, error)
        finally:
            self._observing = None

    # --- the strategy API ---------------------------------------------------------------
    def propose(self) -> Arch | None:
        trial = self._ask()
        arch = self._arch(trial.params)
        if not self.allow_repeats and self.is_seen(arch):
            self._tell(trial.number, None, "fail")  # a duplicate: no observation
            replacement = self.unseen_mutant(arch)
            if replacement is None or self.is_seen(replacement):
                return arch  # the base draws an unseen member or finishes
            arch = self.space.canonical(replacement)
            trial = self._ask(arch)
        self.asked.setdefault(self.space.arch_id(arch), []).append(trial.number)
        return arch

    def on_infeasible(self, arch: Arch, violations: Any) -> None:
        number = self._pop_asked(arch)
        if number is not None:
            self._tell(number, None, "fail")  # refused: never an observation

    def observe(self, arch: Arch, score: float | None, result: Mapping[str, Any] | None) -> None:
        outcome = self._outcome(score, result)
        proposed = self._observing if self._observing is not None else arch
        number = self._pop_asked(proposed)
        values, state, intermediate = outcome
        if number is None:
            self._add(arch, outcome)
        elif intermediate or self.space.arch_id(proposed) != self.space.arch_id(arch):
            # An early-stopped or changed trial: its asked trial holds no observation; the
            # observation is added with its intermediate value, under the final arch.
            self._tell(number, None, "fail")
            self._add(arch, outcome)
        else:
            self._tell(number, values, state)

    # --- state ------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        state = super()._state()
        state["_sampler"] = _picklable_sampler(state["_sampler"])
        return state

    def _transient(self) -> tuple[str, ...]:
        return (*super()._transient(), *_DERIVED)

    def _load_state(self, state: dict[str, Any]) -> None:
        super()._load_state(state)
        self._sampler = _relocked_sampler(self._sampler)
        self._study = None
        self._observing = None
        self._distributions = self._make_distributions()

    def __getstate__(self) -> dict[str, Any]:
        """Pickling and ``copy.deepcopy``: everything but the study handle (rebuilt)."""
        state = dict(self.__dict__)
        state["_study"] = None
        state["_sampler"] = _picklable_sampler(state["_sampler"])
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._sampler = _relocked_sampler(self._sampler)
