"""PBT evolution (``scheduler.name: pbt_evolution``): Tune's ``PopulationBasedTraining`` with
:class:`ArchExplorer` as its explore function, and the resume rules that keep its lineage.

A trial that exploits a better one takes its checkpoint *and* a mutated copy of its
architecture (and a perturbed learning rate); the trainable then inherits every weight, and the
optimizer state of every weight, whose name and shape still fit (``trainables.inherit``) and
reports the lineage. Two rules give a mutated child a fair chance before it is ranked against
members that kept training undisturbed:

* ``mutation_grace`` (default 1): a child whose architecture changed trains that many epochs
  more than ``perturbation_interval`` before it can be truncated again;
* no exploit in the last ``perturbation_interval + mutation_grace`` epochs: a child made
  there would train at a learning rate near the end of its cosine decay and be scored
  before it could recover.

``synch: true`` is Tune's synchronous PBT: the population is ranked together at each
interval, so who clones whom does not depend on which trial reports first. A child in its
grace waits at each barrier like the others but is left out of the ranking there.

A mutation that breaks a constraint the driver can check (``params``, ``flops``) is drawn
again (up to :data:`MUTATION_TRIES` times, then the child keeps its donor's architecture).
:mod:`raynas.experiment.schedulers` builds it from the experiment's ``scheduler`` section.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from ray.tune.schedulers import PopulationBasedTraining, TrialScheduler

#: Draws of a mutation that must satisfy the driver-checked constraints before giving up.
MUTATION_TRIES = 20


class ArchExplorer:
    """PBT explore function: mutate one architecture decision and perturb the lr.

    Seeded, and picklable (Tune saves schedulers with the experiment state).

    Args:
        space_name: Space of the experiment (built-in name or YAML path).
        space_args: Its arguments.
        seed: Seed of the mutation RNG.
        mutate_arch: Whether to mutate the architecture (else only the lr moves).
        lr_factors: The lr is multiplied by one of these, chosen at random.
        check: ``arch -> violated constraints`` (picklable), evaluated on the driver; a
            mutation that violates one is drawn again.
    """

    def __init__(
        self,
        space_name: str,
        space_args: dict[str, Any],
        seed: int,
        mutate_arch: bool = True,
        lr_factors: Sequence[float] = (0.8, 1.2),
        check: Callable[[Any], list[str]] | None = None,
    ) -> None:
        self.space_name, self.space_args = space_name, dict(space_args)
        self.rng = np.random.default_rng(seed)
        self.mutate_arch = mutate_arch
        self.lr_factors = [float(f) for f in lr_factors]
        self.check = check
        #: Mutations drawn again because they broke a constraint.
        self.refused = 0
        self._space: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_space": None}

    def __call__(self, config: dict[str, Any]) -> dict[str, Any]:
        from raynas.registry import resolve_space

        if self._space is None:
            self._space = resolve_space(self.space_name, self.space_args)
        config = copy.deepcopy(config)
        notes = []
        if self.mutate_arch:
            old = self._space.canonical(config["arch"])
            new = self._feasible_mutation(old)
            if new is None:
                notes.append("no mutation satisfies the constraints; architecture kept")
            else:
                notes.append(_describe_change(old, new))
                config["arch"] = new
        if self.lr_factors:
            factor = self.lr_factors[int(self.rng.integers(len(self.lr_factors)))]
            config["train"] = {**config["train"], "lr": config["train"]["lr"] * factor}
            notes.append(f"lr x{factor}")
        config["lineage"] = {"mutation": "; ".join(notes)}
        return config

    def _feasible_mutation(self, arch: Any) -> Any:
        """A mutation of ``arch`` that passes ``check`` (None after MUTATION_TRIES)."""
        for _ in range(MUTATION_TRIES):
            new = self._space.mutate(arch, self.rng)
            if self.check is None or not self.check(new):
                return new
            self.refused += 1
        return None


class ArchPBT(PopulationBasedTraining):
    """Tune's PBT with the two fairness rules of this module's docstring, whose state survives
    a resume.

    Tune does not save a scheduler with the experiment. This one is saved by the experiment
    journal (``raynas.experiment.journal.Journal``, which sets :attr:`journal`) after every result:
    the population's per-trial state (last score, last checkpoint, the time of its last
    perturbation, the synchronous barrier ``_next_perturbation_sync``), the explorer with its
    RNG, and the state of Python's ``random``, from which Tune's PBT picks the trial to clone.
    A checkpoint still being saved when the state is written (a Ray future) is saved as the
    trial's latest registered checkpoint.

    Args:
        epochs: A trial's planned length (``train.epochs``).
        mutation_grace: Extra epochs a child with a changed architecture trains before it is
            ranked again.
        seed: Seeds Python's ``random`` in the driver (Tune's PBT draws whom to clone from it),
            so the same seed gives the same lineage; None leaves it alone.
        **kwargs: ``PopulationBasedTraining``'s arguments.
    """

    #: The experiment journal that saves this scheduler (set by it; None: not saved).
    journal: Any = None
    #: Saved with Tune's snapshot of each step, not after each result (see the journal).
    save_with_snapshot = True

    def __init__(
        self, *, epochs: int, mutation_grace: int = 1, seed: int | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.epochs, self.mutation_grace = int(epochs), int(mutation_grace)
        #: The last epoch at which a trial may exploit another.
        self.last_exploit_epoch = self.epochs - self._perturbation_interval - self.mutation_grace
        if seed is not None:
            random.seed(seed)
        #: Under ``synch``: a changed child's time before which it is not ranked (its grace).
        self._grace_until: dict[Any, float] = {}
        #: An exploited trial's donor checkpoint until it has trained from it (see _exploit).
        self._clones: dict[Any, Any] = {}

    def __getstate__(self) -> dict[str, Any]:
        from ray.train._internal.session import _FutureTrainingResult

        state = dict(self.__dict__)
        state.pop("_controller", None)  # this session's Tune controller (not state)
        trial_state = {}
        for trial, entry in self._trial_state.items():
            if isinstance(entry.last_checkpoint, _FutureTrainingResult):  # a pending save
                entry = copy.copy(entry)
                entry.last_checkpoint = trial.checkpoint
            trial_state[trial] = entry
        state["_trial_state"] = trial_state
        state["python_random"] = random.getstate()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        python_random = state.pop("python_random", None)
        state.setdefault("_grace_until", {})
        state.setdefault("_clones", {})
        self.__dict__.update(state)
        if python_random is not None:
            random.setstate(python_random)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        self._clones.pop(trial, None)  # it trains from the checkpoint it was given
        epoch = result.get(self._time_attr)
        if isinstance(epoch, int | float) and epoch > self.last_exploit_epoch:
            return str(TrialScheduler.CONTINUE)  # too late for a child to recover
        return str(super().on_trial_result(tune_controller, trial, result))

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        # Kept for after_restore, which must pause the trials that wait at the barrier (Tune
        # calls this for every trial of a resumed run before its first step).
        self._controller = tune_controller
        super().on_trial_add(tune_controller, trial)

    def choose_trial_to_run(self, tune_controller: Any) -> Any:
        trial = super().choose_trial_to_run(tune_controller)
        if trial is not None:
            _drop_stale_stop(tune_controller, trial)
            self._give_clone_checkpoint(trial)
        return trial

    def _quantiles(self) -> tuple[list, list]:
        # A child in its grace is not ranked: hidden as a trial with no score is.
        hidden = {
            trial: state.last_score
            for trial, state in self._trial_state.items()
            if state.last_train_time < self._grace_until.get(trial, 0)
        }
        for trial in hidden:
            self._trial_state[trial].last_score = None
        try:
            return super()._quantiles()  # type: ignore[no-any-return]
        finally:
            for trial, score in hidden.items():
                self._trial_state[trial].last_score = score

    def after_restore(self) -> None:
        """Called by the journal once this state is bound to the trials of a resumed run.

        A trial whose last result was recorded here after the checkpoint Tune kept (the kill
        came between the result and its save) goes back to that checkpoint's result: it trains
        to the barrier again (deterministically, from that checkpoint) instead of waiting
        there with older weights that a lower-quantile trial would clone. A trial with no
        checkpoint at all restarts from scratch, so its state goes back to a new trial's: left
        at the barrier, it would be ranked (and chosen to be cloned) with no checkpoint to
        clone, and the exploit would be skipped.

        Under ``synch``, a trial that waited at the barrier goes back to PAUSED: Tune requeues
        every unfinished trial as PENDING, and it starts PENDING trials without asking the
        scheduler, so a waiting trial would train past the barrier (and, past the last
        exploit epoch, to its end) while the others were still to reach it.
        """
        for trial in self._clones:
            self._give_clone_checkpoint(trial)
        for trial, state in self._trial_state.items():
            if trial.status in ("TERMINATED", "ERROR"):
                continue  # nothing trains again (and the barrier must not wait for it)
            manager: Any = trial.run_metadata.checkpoint_manager
            kept = getattr(manager, "latest_checkpoint_result", None)
            metrics = dict(getattr(kept, "metrics", None) or {})
            at = metrics.get(self._time_attr, 0 if kept is None else None)
            if not isinstance(at, int | float) or state.last_train_time <= at:
                continue
            state.last_train_time = int(at)
            state.last_result = metrics or None
            state.last_score = (
                self._metric_op * metrics[self._metric] if self._metric in metrics else None
            )
            state.last_checkpoint = None
        controller = getattr(self, "_controller", None)
        if not self._synch or controller is None:
            return
        for trial, state in self._trial_state.items():
            waiting = state.last_train_time >= self._next_perturbation_sync
            if trial.status == "PENDING" and waiting and trial.checkpoint is not None:
                controller._set_trial_status(trial, "PAUSED")
                _resnapshot(controller, trial)

    def _checkpoint_or_exploit(
        self, trial: Any, tune_controller: Any, upper_quantile: list, lower_quantile: list
    ) -> None:
        if trial in upper_quantile and trial.status == "PENDING" and trial.checkpoint:
            # After `raynas resume`, Tune requeues a trial that waited at the synchronous
            # barrier as PENDING, with no actor to ask for a save (Tune's PBT would record no
            # checkpoint, and nobody could clone it): its latest checkpoint is its state at the
            # barrier, as a paused trial's is.
            self._trial_state[trial].last_checkpoint = trial.checkpoint
            self._num_checkpoints += 1
            return
        super()._checkpoint_or_exploit(trial, tune_controller, upper_quantile, lower_quantile)

    def _exploit(self, tune_controller: Any, trial: Any, trial_to_clone: Any) -> None:
        """Tune's exploit, the donor's checkpoint kept until ``trial`` trains from it, and a
        changed child's grace.

        Tune gives ``trial`` the donor's checkpoint by setting its checkpoint manager's latest
        result; a save of ``trial``'s own still in flight registers when it resolves and
        replaces it, and the clone would train on from its own weights (seen in the kill
        loop). The donor's checkpoint is given again when the trial is chosen to run (and
        after a resume) until its first result.

        Grace: asynchronous PBT postpones the child's next perturbation; under ``synch`` the
        child still waits at each barrier (a trial that skipped one would leave the others
        paused there for good when it is the last to arrive) but is not ranked there.
        """
        super()._exploit(tune_controller, trial, trial_to_clone)
        manager: Any = trial.run_metadata.checkpoint_manager
        self._clones[trial] = manager._latest_checkpoint_result
        _resnapshot(tune_controller, trial)
        if trial.config.get("arch") == trial_to_clone.config.get("arch"):
            return
        state = self._trial_state[trial]
        if self._synch:
            until = state.last_train_time + self.mutation_grace + self._perturbation_interval
            self._grace_until[trial] = until
        else:
            state.last_perturbation_time += self.mutation_grace

    def _give_clone_checkpoint(self, trial: Any) -> None:
        """An exploited trial that has not trained yet: the donor's checkpoint is its latest
        (see :meth:`_exploit`)."""
        given = self._clones.get(trial)
        if given is not None:
            trial.run_metadata.checkpoint_manager._latest_checkpoint_result = given
            _resnapshot(getattr(self, "_controller", None), trial)


def _resnapshot(tune_controller: Any, trial: Any) -> None:
    """Make Tune's next experiment snapshot write ``trial`` again after PBT changed it.

    Tune's snapshot keeps each trial's JSON from the last time the trial was marked (a status
    change, a result), and caches its run metadata (the checkpoint manager) as JSON too. An
    exploit changes a trial's config and checkpoint behind both: a synchronous exploit of a
    PAUSED trial (no status change) stayed out of the snapshot until the trial ran again, and a
    kill in between resumed it with its old config but its donor's weights (the kill loop's
    last lineage difference: a clone that trained its old architecture from its donor).
    """
    trial.run_metadata.invalidate_cache()
    controller = getattr(tune_controller, "_tune_controller", tune_controller)
    mark = getattr(controller, "_mark_trial_to_checkpoint", None)
    if callable(mark):
        mark(trial)


def _drop_stale_stop(tune_controller: Any, trial: Any) -> None:
    """Forget a STOP that Tune cached for a paused ``trial`` that is about to run again.

    Exploiting a trial whose own save is still in flight makes Tune's ``pause_trial`` stop its
    actor through a STOP decision cached "until the save resolves". The trial is then paused,
    and when it runs again (its actor reused) that stale STOP is still cached: Tune executes it
    at the next saved result and ends the trial epochs early (seen in 1 of 2 runs of
    ``tests/test_pbt.py``'s synchronous quickstart, Ray 2.60). A trial chosen to run is
    paused, so a STOP cached for it can only be that one.
    """
    controller = getattr(tune_controller, "_tune_controller", tune_controller)
    cached = getattr(controller, "_cached_trial_decisions", None)
    if isinstance(cached, dict) and cached.get(trial.trial_id) == TrialScheduler.STOP:
        del cached[trial.trial_id]


def _describe_change(old: Any, new: Any, path: str = "arch") -> str:
    """``arch.cell.edge_0_1: none -> nor_conv_3x3`` for the first difference."""
    if isinstance(old, dict) and isinstance(new, dict) and old.keys() == new.keys():
        for k in old:
            if old[k] != new[k]:
                return _describe_change(old[k], new[k], f"{path}.{k}")
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new)):
            if a != b:
                return _describe_change(a, b, f"{path}[{i}]")
    return f"{path}: {old!r} -> {new!r}"
