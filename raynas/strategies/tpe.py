"""``tpe``: Tree-structured Parzen Estimators (Bergstra et al. 2011) through Ray Tune's
``HyperOptSearch``, run on the space's compiled hyperopt space.

Composition, not inheritance: this searcher owns an inner ``HyperOptSearch`` built on
``space.to_hyperopt()`` with its own objective key (``loss`` = minus the score, so the user's
metric and mode never reach it) and maps each hyperopt sample back with
``space.from_hyperopt``. The inner searcher sees every evaluation exactly once, with a number:

- its loss is minus the base's :meth:`~raynas.strategies.base.NASSearcher.value`, resolved
  again before every TPE step (an early-stopped trial ranks below the trials that went
  further, which changes as results arrive); TPE uses losses only through their order;
- a failed trial has loss ``+inf`` (hyperopt's own loss for failed and running jobs): it
  ranks below every valid result, whatever the metric's sign and mode, never NaN;
- a proposal the constraint check refused is not an evaluation: its hyperopt trial ends as
  an error, which TPE leaves out of its model;
- a suggestion that duplicates an evaluated architecture is completed at once with that
  architecture's known score; one that duplicates an architecture in flight is completed
  when that trial finishes. Instead of the duplicate, an unseen mutant of it (one decision
  changed: TPE's preferred region) is proposed, or a random unseen member if none is
  found, and its result is written into hyperopt's trials as a finished point, so TPE
  learns from it too; so is every other evaluation hyperopt did not suggest (the base's
  random fallback, an architecture a scheduler changed, ``add_evaluated_point`` and
  ``warm_start``). Hyperopt is asked once per proposal: asking again costs a full TPE
  step (tens of milliseconds at 1,000 results) and a converged TPE repeats itself.

Save / restore includes hyperopt's trials and random state, so a restored searcher continues
the same sequence.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

from raynas.space import Arch, Cell, Choice, Float, Int, Repeat, Space
from raynas.space.primitives import Const, DictNode, ListNode, Node
from raynas.strategies import register_strategy
from raynas.strategies.base import NASSearcher, StrategyError, check_int

logger = logging.getLogger(__name__)

#: Mutations of a duplicate suggestion tried before a random unseen architecture.
MUTATION_TRIES = 10
INNER_KEY = "loss"


def hyperopt_values(node: Node, value: Any, label: str, out: dict[str, Any]) -> None:
    """Hyperopt's label -> value assignment for ``value`` (the labels of ``to_hyperopt``)."""
    if isinstance(node, Const):
        return
    if isinstance(node, Cell):
        hyperopt_values(node.tree, node.canonical(value), label, out)
    elif isinstance(node, DictNode):
        for k, child in node.children:
            hyperopt_values(child, value[k], f"{label}.{k}", out)
    elif isinstance(node, ListNode):
        for i, child in node.children:
            hyperopt_values(child, value[i], f"{label}[{i}]", out)
    elif isinstance(node, Choice):
        idx = node.index_of(value)
        out[label] = idx
        hyperopt_values(node.options[idx], value, f"{label}<{idx}>", out)
    elif isinstance(node, Int):
        out[label] = int(value) if node.step == 1 else (int(value) - node.low) // node.step
    elif isinstance(node, Float):
        if node.step is None:
            out[label] = float(value)
        else:
            out[label] = int(round((float(value) - node.low) / node.step))
    elif isinstance(node, Repeat):
        n = len(value)
        out[f"{label}.len"] = n - node.min
        for i, item in enumerate(value):
            hyperopt_values(node.node, item, f"{label}@{n}[{i}]", out)
    else:
        raise TypeError(f"no hyperopt labels for {type(node).__name__}")


@register_strategy("tpe", description="TPE via Ray Tune's HyperOptSearch on the compiled space")
class TPE(NASSearcher):
    """TPE over the space's hyperopt compilation; works on continuous spaces.

    Args:
        space: The search space.
        n_initial_points: Random (hyperopt ``rand``) suggestions before TPE starts.
        gamma: TPE's quantile splitting good from bad observations.
        **kwargs: ``metric``, ``mode``, ``seed``, ``allow_repeats`` (see
            :class:`~raynas.strategies.base.NASSearcher`).

    Raises:
        StrategyError: An argument out of range.

    Example:
        >>> searcher = TPE(raynas.get_space("nb201"), n_initial_points=20,
        ...                metric="val_acc", mode="max", seed=0)
        >>> searcher.suggest("trial_1")
        {'arch': {...}}
    """

    def __init__(
        self,
        space: Space,
        *,
        n_initial_points: int = 20,
        gamma: float = 0.25,
        **kwargs: Any,
    ) -> None:
        check_int("n_initial_points", n_initial_points, 1)
        if isinstance(gamma, bool) or not isinstance(gamma, int | float) or not 0 < gamma < 1:
            raise StrategyError(f"gamma must be in (0, 1), got {gamma!r}")
        super().__init__(space, **kwargs)
        self.n_initial_points, self.gamma = n_initial_points, float(gamma)
        self.inner_seed = int(self.rng.integers(2**31 - 1))
        self._inner = self._make_inner()
        self.inner_count = 0
        #: Inner trial ids per arch id: the proposal's own, then duplicates waiting for it.
        self.inner_ids: dict[str, list[str]] = {}
        #: History index of each evaluated arch (its latest result).
        self.index: dict[str, int] = {}
        #: Hyperopt trial id -> the history index its loss is read from.
        self.tid_index: dict[int, int] = {}
        #: Arch ids proposed instead of a duplicate suggestion (hyperopt learns them later).
        self.outside: set[str] = set()

    def _make_inner(self) -> Any:
        from ray.tune.search.hyperopt import HyperOptSearch

        return HyperOptSearch(
            self.space.to_hyperopt(),
            metric=INNER_KEY,
            mode="min",
            n_initial_points=self.n_initial_points,
            random_state_seed=self.inner_seed,
            gamma=self.gamma,
        )

    # --- strategy ---------------------------------------------------------------------
    def propose(self) -> Arch | None:
        self._resolve_losses()
        inner_id = f"tpe_{self.inner_count}"
        self.inner_count += 1
        arch = self.space.from_hyperopt(self._inner.suggest(inner_id))
        key = self.space.arch_id(arch)
        if key in self.refused_ids:  # infeasible: not an observation
            self._inner.on_trial_complete(inner_id, error=True)
        elif self.allow_repeats or key not in self.seen:
            self.inner_ids.setdefault(key, []).append(inner_id)
            return arch
        elif key in self.index:  # a duplicate of an evaluated arch: answer with its result
            self._complete(inner_id, self.index[key])
        else:  # of an arch in flight: answered when that trial finishes
            self.inner_ids.setdefault(key, []).append(inner_id)
        fallback = self._unseen_mutant(arch)
        if fallback is not None:
            self.outside.add(self.space.arch_id(fallback))
        return fallback

    def _unseen_mutant(self, arch: Arch) -> Arch | None:
        """An unseen single-decision mutant of ``arch``, else a random unseen member."""
        if (self.space.cardinality or 2) > 1:
            for _ in range(MUTATION_TRIES):
                cand = self.space.mutate(arch, self.rng)
                if not self.is_seen(cand):
                    return cand
        return self.random_unseen()

    def observe(self, arch: Arch, score: float | None, result: Mapping[str, Any] | None) -> None:
        key = self.space.arch_id(arch)
        index = self.index[key] = len(self.history) - 1
        waiting = self.inner_ids.pop(key, [])
        if key in self.outside or not waiting:
            # Not suggested by hyperopt: proposed instead of a duplicate, the base's random
            # fallback, an arch a scheduler changed, or an evaluation fed from outside.
            self.outside.discard(key)
            self._inject(arch, index)
        elif self.allow_repeats and len(waiting) > 1:
            # Repeats of one architecture are separate trials: finish one inner trial each.
            self.inner_ids[key] = waiting[1:]
            waiting = waiting[:1]
        for inner_id in waiting:
            self._complete(inner_id, index)

    def on_infeasible(self, arch: Arch, violations: Sequence[str]) -> None:
        key = self.space.arch_id(arch)
        self.outside.discard(key)
        for inner_id in self.inner_ids.pop(key, []):
            self._inner.on_trial_complete(inner_id, error=True)

    # --- hyperopt plumbing --------------------------------------------------------------
    def _loss(self, index: int) -> float:
        """Minus the observation's value now; ``+inf`` for a failure."""
        value = self.value(index)
        return math.inf if value is None else -value

    def _complete(self, inner_id: str, index: int) -> None:
        tid = self._inner._live_trial_mapping[inner_id][0]
        self.tid_index[int(tid)] = index
        self._inner.on_trial_complete(inner_id, {INNER_KEY: self._loss(index)})

    def _resolve_losses(self) -> None:
        """Write every finished hyperopt trial's loss as resolved now (an early-stopped
        trial's value moves as results arrive at the rungs above it)."""
        if not any(f is not None for f in self.fidelities):
            return  # no early-stopped result: every loss is final when written
        changed = False
        for doc in self._inner._hpopt_trials.trials:
            index = self.tid_index.get(int(doc["tid"]))
            result = doc.get("result") or {}
            if index is None or "loss" not in result:
                continue
            loss = self._loss(index)
            if result["loss"] != loss:
                result["loss"] = loss
                changed = True
        if changed:
            self._inner._hpopt_trials.refresh()

    def _inject(self, arch: Arch, index: int) -> None:
        """Add a finished hyperopt trial for an architecture hyperopt did not suggest."""
        import hyperopt as hpo

        values: dict[str, Any] = {}
        try:
            hyperopt_values(self.space.root, arch, "arch", values)
            same = self.space.from_hyperopt(hpo.space_eval(self._inner._space, values))
        except (TypeError, ValueError, KeyError, IndexError) as err:
            logger.debug("tpe: cannot map %r to hyperopt labels: %s", arch, err)
            return
        if self.space.arch_id(same) != self.space.arch_id(arch):
            logger.debug("tpe: hyperopt labels of %r do not round-trip; not injected", arch)
            return
        domain, trials = self._inner.domain, self._inner._hpopt_trials
        tid = trials.new_trial_ids(1)[0]
        misc = {
            "tid": tid,
            "cmd": domain.cmd,
            "workdir": domain.workdir,
            "idxs": {k: ([tid] if k in values else []) for k in domain.params},
            "vals": {k: ([values[k]] if k in values else []) for k in domain.params},
        }
        self.tid_index[int(tid)] = index
        result = {"loss": self._loss(index), "status": hpo.STATUS_OK}
        (doc,) = trials.new_trial_docs([tid], [None], [result], [misc])
        doc["state"] = hpo.JOB_STATE_DONE
        trials.insert_trial_docs([doc])
        trials.refresh()

    # --- state ------------------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        inner = self.__dict__.pop("_inner")
        try:
            state = super().get_state()
        finally:
            self._inner = inner
        # HyperOptSearch.get_state() holds its trials and RNG, not its in-flight trials.
        state["_inner_state"] = copy.deepcopy(
            {"searcher": inner.get_state(), "live": inner._live_trial_mapping}
        )
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        state = dict(state)
        inner_state = copy.deepcopy(state.pop("_inner_state"))
        state.pop("_inner", None)
        super().set_state(state)
        self._inner = self._make_inner()
        self._inner.set_state(inner_state["searcher"])
        self._inner._live_trial_mapping = inner_state["live"]
