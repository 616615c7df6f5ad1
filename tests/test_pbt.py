"""PBT-evolution on the path users take: the quickstart with ``scheduler.name=pbt_evolution``.

Pins: exploited checkpoints survive (every checkpoint is kept under PBT), mutated children
inherit weights *and* optimizer state, no exploit lands where a child cannot recover, curves
have one row per epoch with the lineage marked, and ``budget.concurrent`` is honoured.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

import raynas
from raynas.experiment.config_load import load_config
from raynas.experiment.run_notes import run_notes
from raynas.experiment.tune_setup import checkpoints_to_keep, tune_config
from tests.conftest import QUICKSTART
from tests.test_trainable_classify import STRONG, make_config, make_trainable

PBT = ["scheduler.name=pbt_evolution", "budget.trials=4", "train.epochs=4"]


def test_pbt_keeps_every_checkpoint_and_says_so() -> None:
    exp = load_config(QUICKSTART, overrides=PBT)
    assert exp.checkpoint.keep == 1  # what the quickstart asks for
    assert checkpoints_to_keep(exp) is None
    notes = run_notes(exp)
    assert any(n.startswith("checkpoint.keep: 1 -> every checkpoint is kept") for n in notes)
    assert any("successive populations of 2" in n for n in notes)  # budget.concurrent: 2
    plain = load_config(QUICKSTART)
    assert checkpoints_to_keep(plain) == 1 and run_notes(plain) == []


def test_pbt_honours_budget_concurrent_through_the_variant_generator() -> None:
    config = tune_config(load_config(QUICKSTART, overrides=PBT))
    assert config.search_alg.max_concurrent == 2
    assert config.max_concurrent_trials is None  # Tune ignores it without a Searcher, and warns


def test_a_mutated_child_inherits_weights_and_optimizer_state(tmp_path: Path) -> None:
    parent_cfg = make_config(**{"train.epochs": 4})
    parent = make_trainable(parent_cfg, tmp_path / "parent")
    parent.train()
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    parent.save_checkpoint(str(ckpt))

    space = raynas.get_space("nb201", C=8, N=1)
    mutated = STRONG.replace("|+|skip_connect~0|", "|+|nor_conv_1x1~0|")  # edge 0->3 changes
    child_cfg: dict[str, Any] = {**parent_cfg, "arch": space.from_string(mutated)}
    child = make_trainable(child_cfg, tmp_path / "child")
    child.load_checkpoint(str(ckpt))

    parent_params = dict(parent.model.named_parameters())
    carried = new = 0
    for name, p in child.model.named_parameters():
        buf = child.optimizer.state.get(p, {}).get("momentum_buffer")
        src = parent_params.get(name)
        if src is not None and src.shape == p.shape:
            assert buf is not None, f"{name}: inherited tensor lost its momentum"
            assert torch.equal(buf, parent.optimizer.state[src]["momentum_buffer"])
            carried += 1
        else:
            assert buf is None
            new += 1
    assert carried > 0 and new > 0
    result = child.train()
    assert result["epoch"] == 2 and result["parent_arch"] == space.to_string(
        space.canonical(space.from_string(STRONG))
    )
    assert result["inherited_optimizer_tensors"] == carried
    assert 0 < result["inherited_fraction"] < 1
    history = json.loads(result["restored_history"])
    assert [(h["epoch"], h["trial"]) for h in history] == [(1, parent.trial_id)]
    assert "restored_history" not in child.train()  # only on the first result after the clone


@pytest.mark.slow
def test_the_quickstart_runs_under_pbt_evolution(tmp_path: Path, ray_session: None) -> None:
    """The issue's command, with ``synch: true`` so who clones whom is deterministic."""
    result = raynas.run(
        QUICKSTART,
        overrides=[*PBT, "scheduler.synch=true", f"storage={tmp_path}", "name=pbt"],
        verbose=False,
    )
    assert set(result.trials["status"]) == {"completed"}, result.trials[["status", "error"]]
    rows = []
    for tdir in result.trials["trial_dir"]:
        rows += [json.loads(x) for x in (Path(tdir) / "result.json").read_text().splitlines()]
    clones = [r for r in rows if r.get("parent")]
    assert clones, "PBT made no exploit step"
    assert any(r.get("inherited_params", 0) > 0 for r in clones), "no weight was inherited"
    # No exploit in the last perturbation_interval + mutation_grace (1 + 1) epochs of 4.
    assert max(r["lineage_step"] for r in clones) <= 2
    # One row per epoch for every trial, inherited epochs marked with the trial that trained them.
    for trial_id, curve in result.curves.groupby("trial_id"):
        assert list(curve["epoch"]) == [1, 2, 3, 4], trial_id
    cloned = result.trials.dropna(subset=["parent"])
    assert not cloned.empty
    for _, row in cloned.iterrows():
        curve = result.curves[result.curves["trial_id"] == row["trial_id"]]
        assert (curve["from_trial"] != row["trial_id"]).any()


def test_a_stale_stop_tune_cached_for_an_exploited_trial_is_dropped_when_it_runs_again() -> None:
    """Tune's pause of an exploited trial whose save is in flight caches a STOP "until the save
    resolves"; when the paused trial runs again that STOP would end it at its next saved
    result (a trial of the synchronous quickstart ended after 2 of 4 epochs). ArchPBT drops it
    when it chooses the trial, and leaves other trials' decisions alone."""
    from types import SimpleNamespace

    from ray.tune.schedulers import TrialScheduler
    from ray.tune.schedulers.pbt import _PBTTrialState

    from raynas.experiment.schedulers import build_scheduler

    pbt = build_scheduler(load_config(QUICKSTART, overrides=[*PBT, "scheduler.synch=true"]))

    class Trial(SimpleNamespace):  # the fields the scheduler reads, hashable as trials are
        __hash__ = object.__hash__

    paused = Trial(trial_id="a", status="PAUSED", experiment_tag="a")
    running = Trial(trial_id="b", status="RUNNING", experiment_tag="b")
    for trial in (paused, running):
        pbt._trial_state[trial] = _PBTTrialState(trial)
    controller = SimpleNamespace(
        get_trials=lambda: [paused, running],
        _cached_trial_decisions={"a": TrialScheduler.STOP, "b": TrialScheduler.STOP},
    )
    wrapper = SimpleNamespace(_tune_controller=controller, get_trials=controller.get_trials)
    assert pbt.choose_trial_to_run(wrapper) is paused
    assert controller._cached_trial_decisions == {"b": TrialScheduler.STOP}


def test_after_a_resume_a_trial_with_no_checkpoint_is_not_ranked_at_the_barrier() -> None:
    """A kill after a trial's first result but before any checkpoint of it was saved: Tune
    restarts it from scratch. Left at the barrier with its recorded score, it would be ranked
    and drawn as a donor with nothing to clone (the exploit skipped, the lineage changed, as
    the kill loop showed); it goes back to a new trial's state. A trial whose kept checkpoint
    is older than its recorded result goes back to that checkpoint; a finished trial and one
    whose checkpoint is current are left as they are."""
    from types import SimpleNamespace

    from ray.tune.schedulers.pbt import _PBTTrialState

    from raynas.experiment.schedulers import build_scheduler

    pbt = build_scheduler(load_config(QUICKSTART, overrides=[*PBT, "scheduler.synch=true"]))
    pbt.set_search_properties("val_acc", "max")  # what Tune does with the run's objective

    class Trial(SimpleNamespace):
        __hash__ = object.__hash__

    def trial(name: str, status: str, kept_epoch: int | None) -> Trial:
        kept = (
            None
            if kept_epoch is None
            else SimpleNamespace(
                metrics={"epoch": kept_epoch, "val_acc": 0.5}, checkpoint=f"ckpt-{name}"
            )
        )
        manager = SimpleNamespace(latest_checkpoint_result=kept)
        t = Trial(trial_id=name, status=status, experiment_tag=name)
        t.run_metadata = SimpleNamespace(checkpoint_manager=manager)
        state = _PBTTrialState(t)
        state.last_train_time, state.last_score = 2, 0.9
        state.last_result, state.last_checkpoint = {"epoch": 2, "val_acc": 0.9}, f"ckpt-{name}"
        pbt._trial_state[t] = state
        return t

    fresh = trial("fresh", "PENDING", None)
    behind = trial("behind", "PENDING", 1)
    current = trial("current", "PENDING", 2)
    done = trial("done", "TERMINATED", None)
    pbt.after_restore()
    states = pbt._trial_state
    assert (states[fresh].last_train_time, states[fresh].last_score) == (0, None)
    assert states[fresh].last_result is None and states[fresh].last_checkpoint is None
    assert (states[behind].last_train_time, states[behind].last_score) == (1, 0.5)
    assert states[behind].last_checkpoint is None
    for kept in (current, done):
        assert (states[kept].last_train_time, states[kept].last_score) == (2, 0.9)
        assert states[kept].last_checkpoint == f"ckpt-{kept.trial_id}"


def _synch_pbt() -> Any:
    from raynas.experiment.schedulers import build_scheduler

    pbt = build_scheduler(load_config(QUICKSTART, overrides=[*PBT, "scheduler.synch=true"]))
    pbt.set_search_properties("val_acc", "max")
    return pbt


def _fake_trial(pbt: Any, name: str, score: float, epoch: int = 1) -> Any:
    from types import SimpleNamespace

    from ray.tune.schedulers.pbt import _PBTTrialState

    class Trial(SimpleNamespace):
        __hash__ = object.__hash__

        def is_finished(self) -> bool:
            return False

    manager = SimpleNamespace(_latest_checkpoint_result=f"own-{name}")
    trial = Trial(trial_id=name, status="PAUSED", experiment_tag=name)
    trial.run_metadata = SimpleNamespace(checkpoint_manager=manager, invalidate_cache=lambda: None)
    state = _PBTTrialState(trial)
    state.last_train_time, state.last_score = epoch, score
    pbt._trial_state[trial] = state
    return trial


def test_a_clone_trains_from_its_donor_even_when_its_own_save_lands_after_the_exploit() -> None:
    """Tune's exploit sets the clone's latest checkpoint to the donor's; the clone's own save,
    still in flight, registers later and replaces it (the kill loop saw a clone train on from
    its own weights). The donor's is given again when the clone is chosen to run, until its
    first result."""
    from types import SimpleNamespace

    pbt = _synch_pbt()
    clone = _fake_trial(pbt, "clone", 0.1)
    pbt._next_perturbation_sync = 2  # cloned at the barrier at 1, it trains on to 2
    pbt._clones[clone] = "donor-checkpoint"
    clone.run_metadata.checkpoint_manager._latest_checkpoint_result = "own-late-save"
    controller = SimpleNamespace(get_trials=lambda: [clone], _cached_trial_decisions={})
    assert pbt.choose_trial_to_run(controller) is clone
    assert clone.run_metadata.checkpoint_manager._latest_checkpoint_result == "donor-checkpoint"
    pbt._clones.pop(clone)  # its first result (on_trial_result) ends the rule
    clone.run_metadata.checkpoint_manager._latest_checkpoint_result = "own-next-save"
    pbt.choose_trial_to_run(controller)
    assert clone.run_metadata.checkpoint_manager._latest_checkpoint_result == "own-next-save"


def test_under_synch_a_child_in_its_grace_waits_at_the_barrier_but_is_not_ranked() -> None:
    """A synchronous child that skipped a barrier would leave the others paused there for good
    when it arrived last (the kill loop hung on it): it waits like the others, and the
    quantiles leave it out until its grace is over."""
    pbt = _synch_pbt()
    trials = [_fake_trial(pbt, name, score) for name, score in zip("abcd", (0.9, 0.5, 0.4, 0.1))]
    child = trials[3]
    pbt._grace_until[child] = 3
    lower, upper = pbt._quantiles()
    assert upper == [trials[0]] and lower == [trials[2]]  # d, the worst, is not ranked
    assert pbt._trial_state[child].last_score == 0.1  # its score is only hidden
    pbt._trial_state[child].last_train_time = 3
    lower, upper = pbt._quantiles()
    assert upper == [trials[0]] and lower == [child]


def test_a_synchronous_exploit_of_a_paused_trial_reaches_tune_s_next_snapshot(
    tmp_path: Path,
) -> None:
    """Tune's snapshot rewrites a trial only when the trial is marked (a status change, a
    result). A synchronous exploit changes a PAUSED trial's config and checkpoint without
    either: the snapshot kept the old config, and a kill before the trial ran again resumed it
    with its old architecture and its donor's weights (seen in the kill loop). The snapshot
    written after the exploit, by Tune's own code, holds the new config and checkpoint."""
    from types import SimpleNamespace

    from ray.train import Checkpoint
    from ray.train._internal.session import _TrainingResult
    from ray.train._internal.storage import StorageContext
    from ray.tune import PlacementGroupFactory
    from ray.tune.execution.tune_controller import TuneController
    from ray.tune.experiment import Trial
    from ray.tune.experiment.trial import _TrainingRunMetadata
    from ray.tune.schedulers.pbt import _PBTTrialState

    from raynas.registry import resolve_space

    pbt = _synch_pbt()
    pbt._log_config = False  # Tune's log of each exploit, written into a live Ray session
    explore = pbt._custom_explore_fn
    space = resolve_space(explore.space_name, explore.space_args)
    storage = StorageContext(storage_path=str(tmp_path), experiment_dir_name="exp")
    trials = {}
    for name, seed, score in (("clone", 1, 0.2), ("donor", 2, 0.9)):
        config = {"arch": space.sample(seed), "train": {"lr": 0.1}}
        trial = Trial(
            "classify",
            config=config,
            stub=True,
            storage=storage,
            trial_id=name,
            placement_group_factory=PlacementGroupFactory([{"CPU": 1}]),
        )
        trial.set_status(Trial.PAUSED)
        ckpt_dir = tmp_path / name
        ckpt_dir.mkdir()
        trial.run_metadata.checkpoint_manager._latest_checkpoint_result = _TrainingResult(
            checkpoint=Checkpoint.from_directory(str(ckpt_dir)), metrics={"epoch": 1}
        )
        state = _PBTTrialState(trial)
        state.last_train_time, state.last_score = 1, score
        state.last_result = {"epoch": 1, "val_acc": score}
        state.last_checkpoint = trial.checkpoint
        pbt._trial_state[trial] = state
        trials[name] = trial
    clone, donor = trials["clone"], trials["donor"]
    # The two tables Tune's snapshot reads, as they stand after the barrier's last result.
    controller = SimpleNamespace(_trials_to_cache=set(), _trial_metadata={})
    controller._mark_trial_to_checkpoint = controller._trials_to_cache.add
    controller._trial_metadata = {t.trial_id: t.get_json_state() for t in trials.values()}

    old_arch = clone.config["arch"]
    pbt._exploit(controller, clone, donor)
    assert clone.config["arch"] != old_arch
    snapshot = TuneController._get_trial_checkpoints(controller)  # type: ignore[arg-type]
    state_json, metadata_json = snapshot["clone"]
    assert json.loads(state_json)["config"]["arch"] == clone.config["arch"]
    metadata = _TrainingRunMetadata.from_json_state(metadata_json)
    assert metadata.checkpoint_manager.latest_checkpoint_result.checkpoint.path == str(
        tmp_path / "donor"
    )
