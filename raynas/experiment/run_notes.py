"""What a run tells the user besides its trials: the notes printed before the first trial,
and, after the last, the candidates the constraints refused and what a proxy cost.

Nothing here stops a run: a config that cannot run is refused by the config's checks.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from raynas.experiment.config import Experiment
from raynas.experiment.config_check import checkpoint_every, reuse_actors
from raynas.experiment.storage import _local_path
from raynas.experiment.tune_setup import concurrency
from raynas.files import REFUSED_FILE

#: The argument that sets each strategy's warm-up: the trials it samples at random before
#: it starts to learn from results.
WARMUP_ARGUMENTS = {
    "bo": "num_init",
    "bohb": "min_points_in_model",
    "evolution": "population_size",
    "moea": "population_size",
    "tpe": "n_initial_points",
}


def _budget_warnings(exp: Experiment) -> list[str]:
    """A budget the strategy or the space cannot use as asked, one warning line each."""
    from raynas.registry import STRATEGIES, RegistryError, resolve_space
    from raynas.space import SpaceDefinitionError
    from raynas.strategies import strategy_arguments

    out = []
    trials, name = exp.budget.trials, exp.strategy.name
    warmup = WARMUP_ARGUMENTS.get(name)
    if warmup is not None and exp.scheduler.name != "pbt_evolution":
        try:
            size = exp.strategy.args.get(warmup, strategy_arguments(STRATEGIES.get(name))[warmup])
        except (RegistryError, KeyError):
            size = None
        if size is None and name == "bohb":  # null: one more than the space's genes
            try:
                size = len(resolve_space(exp.space, exp.space_args).genes) + 1
            except (RegistryError, SpaceDefinitionError, TypeError, ValueError):
                size = None
        if isinstance(size, int) and size >= trials:
            out.append(
                f"warning: strategy.{warmup}: {size} is not below budget.trials ({trials}), so "
                f"every trial is drawn at random and {name} never learns; raise budget.trials "
                f"or lower strategy.{warmup}"
            )
    try:
        cardinality = resolve_space(exp.space, exp.space_args).cardinality
    except (RegistryError, SpaceDefinitionError, TypeError, ValueError):
        cardinality = None
    repeats = bool(exp.strategy.args.get("allow_repeats", False))
    if cardinality is not None and cardinality < trials and not repeats:
        out.append(
            f"warning: budget.trials: {trials} is above the {cardinality:,} architectures of "
            f"the space, and {name} never repeats one; the search ends after {cardinality:,}"
        )
    return out


def run_notes(exp: Experiment) -> list[str]:
    """What raynas changed or warns about in ``exp`` as it runs it, one line each.

    The run prints them before the first trial; nothing here stops the run.
    """
    notes = []
    if exp.budget.concurrent is not None and exp.budget.concurrent > exp.budget.trials:
        notes.append(
            f"budget.concurrent: {exp.budget.concurrent} is above budget.trials "
            f"({exp.budget.trials}); running at most {exp.budget.trials} at once"
        )
    if exp.scheduler.name == "pbt_evolution":
        if exp.checkpoint.keep is not None:
            notes.append(
                f"checkpoint.keep: {exp.checkpoint.keep} -> every checkpoint is kept under "
                "pbt_evolution (a trial clones the checkpoint its donor had when it was ranked)"
            )
        cap = concurrency(exp)
        if cap is not None and cap < exp.budget.trials:
            notes.append(
                f"budget.concurrent: under pbt_evolution at most {cap} population members are "
                f"alive at once (Tune's variant generator), so the {exp.budget.trials} trials "
                f"evolve as successive populations of {cap}; unset budget.concurrent to evolve "
                "them as one population (resources then decide how many train at once)"
            )
    if exp.budget.sync_batch is not None and exp.scheduler.name == "pbt_evolution":
        notes.append(
            "budget.sync_batch: ignored under pbt_evolution, which proposes no candidates; "
            "scheduler.synch: true ranks its population synchronously"
        )
    notes += _budget_warnings(exp)
    if exp.checkpoint.every is None and checkpoint_every(exp) == 0:
        notes.append(
            f"checkpoint.every: 0, as trainable {exp.trainable!r} cannot save checkpoints (a "
            "retried or resumed trial starts over)"
        )
    if exp.reuse_actors is None and not reuse_actors(exp):
        notes.append(
            f"reuse_actors: false, as trainable {exp.trainable!r} has no reset_config (each "
            "trial starts a new actor)"
        )
    for metric in dict.fromkeys(m for m, _ in exp.objective.objectives()):
        if metric.startswith("test_"):
            notes.append(
                f"warning: objective metric {metric!r} selects architectures on the test split, "
                "so its test score is no longer an unbiased estimate; select on val_* and "
                "report test_* (data.evaluate_test: true)"
            )
    return notes


def _print_notes(exp: Experiment, verbose: bool) -> None:
    if verbose:
        for line in run_notes(exp):
            sys.stdout.write((line if line.startswith("warning:") else f"note: {line}") + "\n")
        sys.stdout.flush()


def _print_proxy_cost(searcher: Any, verbose: bool) -> None:
    """What a strategy's zero-cost proxy cost (``strategy.proxy``); not in budget.trials."""
    if not verbose or getattr(searcher, "proxy", None) is None:
        return
    stats = getattr(searcher, "proxy_stats", None)
    if isinstance(stats, dict):
        sys.stdout.write(
            f"proxy {stats['proxy']}: {stats['archs_scored']} archs scored in "
            f"{stats['seconds']:.1f} s (no trial of budget.trials)\n"
        )


def _record_refusals(searcher: Any, uri: str, verbose: bool) -> None:
    """Write the candidates the driver refused (constraints) to ``raynas_refused.json``."""
    refused = int(getattr(searcher, "refused", 0) or 0)
    local = _local_path(uri)
    if not refused or local is None:
        return
    examples = [
        {"arch": e["arch"], "violations": list(e["violations"])}
        for e in getattr(searcher, "refused_examples", [])
    ]
    (local / REFUSED_FILE).write_text(
        json.dumps({"refused": refused, "examples": examples}, indent=1, default=str)
    )
    if verbose:
        sys.stdout.write(
            f"constraints: {refused} candidate(s) refused on the driver, never trained and "
            f"not counted in budget.trials (examples in {REFUSED_FILE})\n"
        )
