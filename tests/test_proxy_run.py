"""A real run of a proxy-guided strategy: the pool is scored by Ray tasks, costs no trial."""

from __future__ import annotations

from pathlib import Path

import pytest

import raynas
from raynas.experiment.config import ConfigError
from tests.conftest import small_experiment


def test_evolution_guided_by_synflow_in_a_real_run(
    tmp_path: Path, ray_session: None, capsys: pytest.CaptureFixture[str]
) -> None:
    strategy = {
        "name": "evolution",
        "population_size": 2,
        "sample_size": 2,
        "proxy": {"name": "synflow", "warmup_pool": 6, "move_candidates": 2},
    }
    exp = small_experiment(tmp_path, strategy=strategy, budget={"trials": 3, "concurrent": 1})
    result = raynas.run(exp)
    out = capsys.readouterr().out
    assert len(result.trials) == 3 and (result.trials["status"] == "completed").all()
    assert "proxy synflow: " in out and "archs scored in" in out
    scored = int(out.split("proxy synflow: ")[1].split(" archs")[0])
    assert scored >= 6, "the warm-up pool is scored, beyond the 3 trials of the budget"


def test_an_ensemble_cannot_guide_a_live_search(tmp_path: Path) -> None:
    strategy = {"name": "evolution", "proxy": {"name": "vote"}}
    with pytest.raises(ConfigError, match=r"strategy\.proxy\.name: 'vote' cannot score a live"):
        raynas.run(small_experiment(tmp_path, strategy=strategy), verbose=False)
    assert not (tmp_path / "runs").exists(), "a refused config writes nothing"


@pytest.mark.parametrize(
    "strategy",
    [
        {"name": "evolution", "population_size": 2, "sample_size": 2,
         "proxy": {"name": "synflow", "warmup_pool": 2, "move_candidates": 3}},
        {"name": "bo", "num_init": 2, "ensemble_size": 2, "num_candidates": 20,
         "proxy": {"name": "synflow", "warmup_pool": 1, "move_candidates": 1},
         "proxy_feature": True},
    ],
    ids=["evolution-moves", "bo-feature"],
)  # fmt: skip
def test_scoring_mid_search_while_the_trials_hold_every_cpu(
    tmp_path: Path, ray_session: None, strategy: dict[str, object]
) -> None:
    """Two trials at half the cluster's CPUs each (and Tune keeping their actors for reuse):
    the scores asked for after the first results (a move, a refit) come from tasks that need
    no free CPU. They used to wait for one for ever, and the search hung."""
    import ray

    half = float(ray.cluster_resources()["CPU"]) / 2
    exp = small_experiment(
        tmp_path,
        strategy=strategy,
        budget={"trials": 5, "concurrent": 2},
        resources={"cpu": half},
        reuse_actors=True,
    )
    result = raynas.run(exp, verbose=False)
    assert len(result.trials) == 5 and (result.trials["status"] == "completed").all()
