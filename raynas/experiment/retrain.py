"""``raynas retrain DIR [--trial ID] [--final]``: train a searched architecture from scratch.

Built for one-shot searches (``trainable: darts | enas | gdas``), whose trials report a
*derived* architecture, and usable on any experiment: for a trial without a derived arch the
trial's own ``arch`` is retrained.

The retraining is a new experiment folder ``<DIR>-retrain-<trial id>`` next to ``DIR``:

* ``raynas_experiment.yaml``: a ``classify`` experiment built from the search's config (same
  ``space``/``space_args``, ``data``, ``train``, ``resources``, ``seed``; one trial; the
  objective is the search's when ``classify`` reports it, else ``val_acc``), with the
  ``--set`` overrides applied (e.g. ``train.epochs=50`` or ``space_args.C=16`` to retrain
  bigger than the supernet);
* ``retrain_of.json``: the link to the search (its folder, trial id, trial folder, method,
  the arch with its string and id, and which training was done: ``final``, ``evaluated_on``);
* one Tune trial of the ``classify`` trainable; a one-shot :class:`FixedArchSearcher` adds
  the arch to the runner's per-trial config, so ``raynas analyze`` and ``raynas resume`` treat
  the folder like any other experiment.

By default the retraining keeps the search's validation split (``data.val_fraction`` of the
training split, 0.2 unless set) and reports ``val_*``. ``final=True`` (``--final``) is the last
step of a NAS: ``data.val_fraction: 0`` trains on the whole training split and the official
test split is reported every epoch (``test_acc``, ``test_loss``; a ``val_*`` objective becomes
its ``test_*`` twin); its folder is ``<DIR>-retrain-<trial id>-final``.

Example:
    >>> result = retrain("runs/darts-nb201", overrides=["train.epochs=20"])
    >>> result.trials[["arch", "val_acc"]]
    >>> final = retrain("runs/darts-nb201", final=True)  # whole training split, test split
    >>> final.trials[["arch", "test_acc"]]

Kept as one module (over 450 lines): one command's workflow: choosing the trials, building
the retrain experiment from the searched one, running it and reporting mean +- std over
seeds.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from raynas.cli_args import add_overrides
from raynas.experiment.config import ConfigError, Experiment
from raynas.experiment.config_check import check_experiment
from raynas.experiment.config_load import load_config
from raynas.files import CLASSIFY_METRICS, CONFIG_FILE, DERIVED_ARCH_FILE, parse_trial_dir_name

LINK_FILE = "retrain_of.json"
#: The validation split of a retraining that is not final when the search had none.
DEFAULT_VAL_FRACTION = 0.2

__all__ = [
    "LINK_FILE",
    "SearchedTrial",
    "find_top",
    "find_trial",
    "register_cli",
    "retrain",
    "retrain_config",
    "seed_summary",
]


@dataclass(frozen=True)
class SearchedTrial:
    """A trial of a finished search and the architecture to retrain.

    Attributes:
        trial_id: Tune's trial id.
        trial_dir: The trial's folder.
        arch: The derived arch (one-shot) or the trial's own arch.
        derived: Whether ``arch`` was derived by a one-shot search.
        score: The search objective's last value, when reported.
    """

    trial_id: str
    trial_dir: Path
    arch: dict[str, Any]
    derived: bool
    score: float | None


def _last_result(trial_dir: Path) -> dict[str, Any]:
    last: dict[str, Any] = {}
    path = trial_dir / "result.json"
    if not path.is_file():
        return last
    for line in path.read_text().splitlines():
        try:
            last = json.loads(line) if line.strip() else last
        except json.JSONDecodeError:
            break  # a half-written last line
    return last


def _trial_arch(trial_dir: Path, last: Mapping[str, Any]) -> tuple[dict[str, Any] | None, bool]:
    """The trial's derived arch (file, then result), else its own arch from ``params.json``."""
    file = trial_dir / DERIVED_ARCH_FILE
    if file.is_file():
        return json.loads(file.read_text()), True
    if isinstance(last.get("derived_arch"), str):
        return json.loads(last["derived_arch"]), True
    from raynas.results.analysis_read import read_json

    params = read_json(trial_dir / "params.json")  # None: a file a kill cut
    arch = params.get("arch") if isinstance(params, dict) else None
    return (arch, False) if isinstance(arch, dict) else (None, False)


def find_trial(path: str | Path, trial: str | None = None) -> SearchedTrial:
    """The trial to retrain: ``trial`` (an id or a unique part of a trial folder name), or the
    best trial by the search's objective.

    Raises:
        ConfigError: No such folder, no such trial, or no trial with an architecture.
    """
    return _find(path, trial, top=1)[0]


def find_top(path: str | Path, k: int) -> list[SearchedTrial]:
    """The ``k`` best trials of the search in ``path`` by its objective, one per architecture
    (a repeated arch counts once, by its best trial), best first; fewer when it has fewer.

    Raises:
        ConfigError: No such folder, or no trial with an architecture.
    """
    return _find(path, None, top=k)


def _find(path: str | Path, trial: str | None, *, top: int) -> list[SearchedTrial]:
    folder = Path(path).expanduser().resolve()
    cfg_file = folder / CONFIG_FILE
    if not cfg_file.is_file():
        raise ConfigError([f"dir: {str(folder)!r} is not a raynas experiment (no {CONFIG_FILE})"])
    cfg = yaml.safe_load(cfg_file.read_text()) or {}
    objective = cfg.get("objective") or {}
    metric, mode = objective.get("metric", "val_acc"), objective.get("mode", "max")
    found: list[SearchedTrial] = []
    for params in sorted(folder.glob("*/params.json")):
        tdir = params.parent
        last = _last_result(tdir)
        arch, derived = _trial_arch(tdir, last)
        if arch is None:
            continue
        value = last.get(metric)
        score: float | None = None
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            score = float(value)
        trial_id = str(last.get("trial_id") or parse_trial_dir_name(tdir.name)[1] or tdir.name)
        found.append(SearchedTrial(trial_id, tdir, arch, derived, score))
    if not found:
        raise ConfigError([f"dir: {str(folder)!r} holds no trial with an architecture yet"])
    if trial is not None:
        matches = [t for t in found if t.trial_id == trial] or [
            t for t in found if trial in t.trial_dir.name
        ]
        if len(matches) != 1:
            known = ", ".join(t.trial_id for t in found)
            what = "no" if not matches else "more than one"
            raise ConfigError([f"--trial: {what} trial matches {trial!r}; trials: {known}"])
        return matches[:1]
    scored = [t for t in found if t.score is not None]
    if not scored:
        return found[:1]
    sign = 1.0 if mode == "max" else -1.0
    best: dict[str, SearchedTrial] = {}
    for t in sorted(scored, key=lambda t: -sign * (t.score or 0.0)):
        best.setdefault(json.dumps(t.arch, sort_keys=True), t)
    return list(best.values())[:top]


def _held_out(metric: str, final: bool) -> str:
    """``val_*`` <-> ``test_*``: the metric a (final) retraining reports for ``metric``."""
    prefix, twin = ("val_", "test_") if final else ("test_", "val_")
    return twin + metric[len(prefix) :] if metric.startswith(prefix) else metric


def retrain_config(
    search: Mapping[str, Any],
    *,
    name: str,
    storage: str,
    overrides: Sequence[str] = (),
    final: bool = False,
) -> Experiment:
    """The ``classify`` experiment that retrains an arch of the search ``search`` (a config dict).

    Args:
        search: The search's config.
        name: The retraining's name (its folder).
        storage: Where its folder goes.
        overrides: ``a.b=value`` overrides.
        final: Train on the whole training split (``data.val_fraction: 0``) and report the
            official test split; otherwise keep a validation split and report it.

    Raises:
        ConfigError: A bad override, a config the classify trainable refuses, or (``final``)
            an override that brings back a validation split or a ``val_*`` objective.
    """
    data = dict(search)
    objective = dict(data.get("objective") or {})
    if objective.get("metric") not in CLASSIFY_METRICS:
        objective = {"metric": "val_acc", "mode": "max"}
    objective["metric"] = _held_out(objective["metric"], final)
    data_section = dict(data.get("data") or {})
    if final:
        data_section["val_fraction"] = 0.0
    elif not data_section.get("val_fraction", DEFAULT_VAL_FRACTION):  # a final search's config
        data_section["val_fraction"] = DEFAULT_VAL_FRACTION
    data.update(
        data=data_section,
        name=name,
        storage=storage,
        trainable="classify",
        trainable_args={},
        strategy={"name": "random"},
        scheduler={"name": "fifo"},
        budget={"trials": 1, "concurrent": 1},
        objective={"metric": objective["metric"], "mode": objective.get("mode", "max")},
    )
    exp = load_config(data, overrides=overrides)
    if final and exp.data.val_fraction != 0:
        raise ConfigError(
            [f"data.val_fraction: --final trains on the whole training split (0), got "
             f"{exp.data.val_fraction}; drop the override or retrain without --final"]
        )  # fmt: skip
    no_val = exp.data.val_fraction == 0  # classify then reports test_* instead of val_*
    if exp.objective.metric.startswith("val_" if no_val else "test_"):
        raise ConfigError(
            [f"objective.metric: this retraining (data.val_fraction {exp.data.val_fraction}) "
             f"does not report {exp.objective.metric!r}; use "
             f"{_held_out(exp.objective.metric, no_val)!r}"]
        )  # fmt: skip
    return exp


def retrain(
    path: str | Path,
    *,
    trial: str | None = None,
    overrides: Sequence[str] = (),
    name: str | None = None,
    overwrite: bool = False,
    address: str | None = None,
    verbose: bool = True,
    final: bool = False,
    top: int = 1,
    seeds: Sequence[int] | None = None,
) -> Any:
    """Train the architecture a search found from scratch, in a new experiment folder.

    Args:
        path: The search's experiment folder.
        trial: Trial id (or a unique part of its folder name); default: the best trial.
        overrides: ``a.b=value`` overrides of the retraining config.
        name: Folder name; default ``<search name>-retrain-<trial id>`` (``-final`` added
            when ``final``).
        overwrite: Replace an existing retraining folder.
        address: Ray cluster address (None: local Ray).
        verbose: Print a line per trial and the summary.
        final: Train on the whole training split and report the official test split (see
            :func:`retrain_config`); ``retrain_of.json`` records which was done.
        top: Retrain the ``top`` best architectures of the search (one per arch; ignored
            with ``trial``).
        seeds: Train each architecture once per seed (the training seed; the data split stays
            the search's), so :func:`seed_summary` can give mean +- std; None: the search's
            seed, once. With ``top > 1`` or ``seeds`` the folder is
            ``<search name>-retrain-top<K>x<S>[-final]``.

    Returns:
        The :class:`~raynas.results.analysis.ExperimentResult` of the retraining folder.

    Raises:
        ConfigError: Bad folder, trial, override, or an arch outside the retraining space.
    """
    from raynas.registry import resolve_space
    from raynas.space import InvalidArchitecture

    folder = Path(path).expanduser().resolve()
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise ConfigError([f"--top: must be an integer >= 1, got {top!r}"])
    picked = [find_trial(folder, trial)] if trial is not None or top == 1 else find_top(folder, top)
    chosen = picked[0]
    search = yaml.safe_load((folder / CONFIG_FILE).read_text()) or {}
    many = len(picked) > 1 or seeds is not None
    seed_list = [int(x) for x in seeds] if seeds is not None else None
    if seed_list is not None and (not seed_list or len(set(seed_list)) != len(seed_list)):
        raise ConfigError([f"--seeds: give one or more distinct seeds, got {seeds!r}"])
    safe_id = re.sub(r"[^A-Za-z0-9._-]", "_", chosen.trial_id)
    tag = f"top{len(picked)}x{len(seed_list or [0])}" if many else safe_id
    exp = retrain_config(
        search,
        name=name or f"{folder.name}-retrain-{tag}{'-final' if final else ''}",
        storage=str(folder.parent),
        overrides=overrides,
        final=final,
    )
    if many:
        runs = len(picked) * len(seed_list or [0])
        concurrent = (search.get("budget") or {}).get("concurrent")
        exp = load_config(
            exp, overrides=[f"budget.trials={runs}", f"budget.concurrent={concurrent or 'null'}"]
        )
    check_experiment(exp, address=address)
    space = resolve_space(exp.space, exp.space_args)
    archs = []
    for t in picked:
        try:
            archs.append(space.canonical(t.arch))
        except InvalidArchitecture as err:
            raise ConfigError(
                [f"space_args: the arch of trial {t.trial_id} is invalid: {err}"]
            ) from None
    out = Path(exp.storage).expanduser().resolve() / exp.name
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise ConfigError(
                [f"--name: folder {str(out)!r} already exists; pass --overwrite or another --name"]
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / CONFIG_FILE).write_text(yaml.safe_dump(exp.to_dict(), sort_keys=False))
    arch = archs[0]
    link = {
        "retrain_of": str(folder),
        "trial_id": chosen.trial_id,
        "trial_dir": str(chosen.trial_dir),
        "method": search.get("trainable", "classify"),
        "derived": chosen.derived,
        "search_score": chosen.score,
        "arch": arch,
        "arch_str": space.to_string(arch),
        "arch_id": space.arch_id(arch),
        **_what_is_done(exp),
    }
    if many:
        link["top"] = [
            {
                "trial_id": t.trial_id,
                "search_score": t.score,
                "arch_str": space.to_string(a),
                "arch_id": space.arch_id(a),
            }
            for t, a in zip(picked, archs)
        ]
        link["seeds"] = seed_list or [exp.seed]
    (out / LINK_FILE).write_text(json.dumps(link, indent=2, sort_keys=True) + "\n")
    configs: list[dict[str, Any]] = (
        [{"arch": a} for a in archs]
        if seed_list is None
        else [{"arch": a, "seed": sd} for a in archs for sd in seed_list]
    )
    return _fit(exp, out, configs, address=address, verbose=verbose)


def seed_summary(result: Any, metric: str) -> list[dict[str, Any]]:
    """Per architecture of a retraining: seeds trained, mean and std of ``metric`` (its last
    value per trial; std over seeds, ddof 1; nan with one seed), best mean first."""
    import numpy as np

    trials = result.trials
    if metric not in trials.columns or not len(trials):
        return []
    rows = []
    for arch_id, group in trials.groupby("arch_id", sort=False):
        values = group[metric].dropna().to_numpy(dtype=float)
        rows.append(
            {
                "arch_id": arch_id,
                "arch": str(group["arch"].iloc[0]),
                "seeds": int(len(values)),
                "mean": float(np.mean(values)) if len(values) else math.nan,
                "std": float(np.std(values, ddof=1)) if len(values) > 1 else math.nan,
            }
        )
    return sorted(rows, key=lambda r: -r["mean"] if r["mean"] == r["mean"] else math.inf)


def _what_is_done(exp: Experiment) -> dict[str, Any]:
    """``retrain_of.json``'s record of the training: on what it trained, what it reports."""
    final = exp.data.val_fraction == 0
    kept = f"{1 - exp.data.val_fraction:.0%} of the training split"
    return {
        "final": final,
        "trained_on": "the whole training split" if final else kept,
        "evaluated_on": "test" if final else "val",
    }


def _fit(
    exp: Experiment,
    out: Path,
    configs: list[dict[str, Any]],
    *,
    address: str | None,
    verbose: bool,
) -> Any:
    from raynas.experiment.ray_setup import init_ray
    from raynas.experiment.runner import fit_experiment

    init_ray(address, exp.plugin_path)
    # The archs come from a fixed-proposal searcher, and the param_space is a run's, so
    # `raynas resume` restores a retraining like any experiment.
    searcher = _fixed_arch_searcher()(configs, metric=exp.objective.metric, mode=exp.objective.mode)
    return fit_experiment(exp, str(out), verbose=verbose, search_alg=searcher)


def _fixed_arch_searcher() -> type:
    """:class:`FixedArchSearcher`, built on first use so importing this module stays Ray-free."""
    cached = globals().get("FixedArchSearcher")
    if isinstance(cached, type):
        return cached
    from ray.tune.search import Searcher

    class FixedArchSearcher(Searcher):
        """A Tune searcher that proposes fixed trial configs, each once, in order (a
        retraining's trials: ``{"arch": ...}``, plus ``"seed"`` when seeds are repeated).

        Args:
            configs: The trial configs.
            metric: The objective.
            mode: ``"max"`` or ``"min"``.
        """

        def __init__(
            self,
            configs: list[dict[str, Any]],
            *,
            metric: str | None = None,
            mode: str | None = None,
        ) -> None:
            super().__init__(metric=metric, mode=mode)
            self.configs = [dict(c) for c in configs]
            self.proposed = 0

        def suggest(self, trial_id: str) -> dict[str, Any] | str | None:  # type: ignore[override]
            if self.proposed >= len(self.configs):
                return Searcher.FINISHED
            self.proposed += 1
            return copy.deepcopy(self.configs[self.proposed - 1])

        def on_trial_complete(
            self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
        ) -> None:
            return None

        def save(self, checkpoint_path: str) -> None:
            state = {"configs": self.configs, "proposed": self.proposed}
            Path(checkpoint_path).write_text(json.dumps(state))

        def restore(self, checkpoint_path: str) -> None:
            state = json.loads(Path(checkpoint_path).read_text())
            if "arch" in state:  # a retraining saved before configs (one arch)
                state = {"configs": [{"arch": state["arch"]}], "proposed": int(state["proposed"])}
            self.configs, self.proposed = state["configs"], int(state["proposed"])

    FixedArchSearcher.__module__ = __name__
    FixedArchSearcher.__qualname__ = "FixedArchSearcher"
    globals()["FixedArchSearcher"] = FixedArchSearcher
    return FixedArchSearcher


def __getattr__(name: str) -> Any:
    """Lazy ``FixedArchSearcher`` (so a pickled Tune experiment state finds it on resume)."""
    if name == "FixedArchSearcher":
        return _fixed_arch_searcher()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --- CLI -------------------------------------------------------------------------------------
def _print_seed_summary(result: Any, link: Mapping[str, Any]) -> int:
    held = link["evaluated_on"]
    metric = f"{held}_acc"
    seeds = link["seeds"]
    print(
        f"retrained the top {len(link['top'])} of {link['retrain_of']} with seeds {seeds}, "
        f"trained on {link['trained_on']}, {metric} on the {held} split (mean +- std over seeds):"
    )
    for row in seed_summary(result, metric):
        std = "" if row["std"] != row["std"] else f" +- {row['std']:.4f}"
        print(f"  {row['mean']:.4f}{std}  (n={row['seeds']})  {row['arch']}")
    print(f"retraining folder: {result.path}")
    return 0


def register_cli(sub: Any) -> None:
    """Add the ``retrain`` subcommand to the ``raynas`` parser."""
    p = sub.add_parser(
        "retrain",
        help="train a searched (e.g. one-shot derived) architecture from scratch",
        description="Train the architecture of a trial of DIR (default: the best trial; for "
        "one-shot searches its derived arch) from scratch with the classify trainable, in a "
        "new experiment folder <DIR>-retrain-<trial> linked to DIR by retrain_of.json.",
    )
    p.add_argument("dir", help="experiment folder of the search")
    p.add_argument("--trial", metavar="ID", help="trial id (default: the best trial)")
    add_overrides(
        p, help="override a field of the retraining config, e.g. train.epochs=50 (repeatable)"
    )
    p.add_argument(
        "--final",
        action="store_true",
        help="the final training: the whole training split (data.val_fraction=0), reporting "
        "the official test split (test_acc) instead of a validation split",
    )
    p.add_argument(
        "--top",
        type=int,
        default=1,
        metavar="K",
        help="retrain the K best architectures of the search (one per arch)",
    )
    p.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        metavar="SEED",
        help="train each architecture once per seed and report mean +- std over them",
    )
    p.add_argument(
        "--name",
        help="retraining folder name (default: <DIR>-retrain-<trial>[-final], "
        "or <DIR>-retrain-top<K>x<S>[-final] with --top/--seeds)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing folder")
    p.add_argument("--address", help="Ray cluster address")
    p.add_argument("--quiet", action="store_true", help="print only the summary")
    p.set_defaults(func=run_retrain)


def run_retrain(args: argparse.Namespace) -> int:
    """Handler of ``raynas retrain``; returns the exit code."""
    result = retrain(
        args.dir,
        trial=args.trial,
        overrides=args.overrides,
        name=args.name,
        overwrite=args.overwrite,
        address=args.address,
        verbose=not args.quiet,
        final=args.final,
        top=args.top,
        seeds=args.seeds,
    )
    link = json.loads((Path(result.path) / LINK_FILE).read_text())
    if "top" in link:
        return _print_seed_summary(result, link)
    row = result.trials.iloc[0] if len(result.trials) else None
    held = link["evaluated_on"]
    scores = [
        f"{m}={row[m]:.4f}"
        for m in (f"{held}_acc", f"{held}_loss")
        if row is not None and m in row and row[m] == row[m]
    ]
    print(f"retrained trial {link['trial_id']} of {link['retrain_of']}: {link['arch_str']}")
    if link["final"]:
        print(
            "final: trained on the whole training split, evaluated on the official test split: "
            + (", ".join(scores) or "no result")
        )
    else:
        print(
            f"trained on {link['trained_on']}, evaluated on its validation split: "
            + (", ".join(scores) or "no result")
            + " (the test split is untouched; --final trains on the whole training split "
            "and reports it)"
        )
    print(f"retraining folder: {result.path}")
    return 0
