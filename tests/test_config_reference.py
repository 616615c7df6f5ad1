"""``raynas config show``, the generated reference page, ``raynas schedulers``, and overrides
that change a strategy's or scheduler's name."""

from __future__ import annotations

import yaml

from raynas.cli import main
from raynas.experiment.config import Experiment
from raynas.experiment.config_load import apply_overrides, load_config
from raynas.experiment.config_reference import REFERENCE_PAGE, reference
from tests.conftest import REPO


def _keys(model: type) -> list[str]:
    out = []
    for name, field in model.model_fields.items():
        sub = field.annotation
        if isinstance(sub, type) and hasattr(sub, "model_fields"):
            out += [f"{name}.{k}" for k in sub.model_fields]
        else:
            out.append(name)
    return out


def test_the_reference_page_is_what_the_command_writes() -> None:
    page = (REPO / REFERENCE_PAGE).read_text()
    assert page == reference(), "run `.venv/bin/raynas config reference --out docs/config.md`"


def test_every_field_has_a_documented_row() -> None:
    page = reference()
    for key in _keys(Experiment):
        rows = [ln for ln in page.splitlines() if ln.startswith(f"| `{key}` |")]
        assert len(rows) == 1, key
        doc = rows[0].rstrip(" |").rsplit("|", 1)[1].strip()
        assert len(doc) > 8, f"{key} has no doc"
    assert "`data.limit` | int or None | `null` |" in page
    assert "- `asha`: `grace_period=1`" in page


def test_show_lists_every_default_and_loads_back(capsys) -> None:  # type: ignore[no-untyped-def]
    code = main(["config", "show", str(REPO / "examples" / "quickstart.yaml")])
    text = capsys.readouterr().out
    assert code == 0
    for key in _keys(Experiment):
        section, _, leaf = key.rpartition(".")
        assert f"\n{'  ' if section else ''}{leaf}: " in text, key
    assert "  population_size" not in text  # the quickstart's strategy is random
    assert "  allow_repeats: false  # argument of strategy random" in text
    shown = yaml.safe_load(text)
    exp = load_config(REPO / "examples" / "quickstart.yaml")
    again = load_config(shown)
    assert again.to_dict() == {
        **exp.to_dict(),
        "strategy": {**exp.to_dict()["strategy"], "allow_repeats": False, "proxy": None},
    }


def test_show_without_a_config_and_with_a_bad_one(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["config", "show", "--set", "scheduler.name=asha"]) == 0
    text = capsys.readouterr().out
    assert "  grace_period: 1  # argument of scheduler asha" in text
    assert "epochs: 3  #" in text
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {epochs: 0}\n")
    assert main(["config", "show", str(bad)]) == 2
    assert "train.epochs" in capsys.readouterr().err


def test_schedulers_lists_each_with_its_arguments(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["schedulers"]) == 0
    out = capsys.readouterr().out
    for name in ("fifo", "asha", "hyperband", "median", "pbt_evolution"):
        assert any(ln.startswith(name) for ln in out.splitlines()), name
    assert "grace_period=1, reduction_factor=3" in out and "mutation_grace=1" in out


def test_a_new_name_drops_the_old_ones_arguments() -> None:
    data = {"scheduler": {"name": "asha", "grace_period": 2}, "strategy": {"name": "evolution",
            "population_size": 8}}  # fmt: skip
    out = apply_overrides(data, ["scheduler.name=fifo", "strategy.name=random"])
    assert out["scheduler"] == {"name": "fifo"} and out["strategy"] == {"name": "random"}
    # an argument given alongside the new name is kept, in either order
    out = apply_overrides(data, ["scheduler.reduction_factor=2", "scheduler.name=hyperband"])
    assert out["scheduler"] == {"name": "hyperband", "reduction_factor": 2}
    # the same name again keeps everything
    assert apply_overrides(data, ["scheduler.name=asha"])["scheduler"]["grace_period"] == 2
    exp = load_config(data, overrides=["scheduler.name=fifo"])
    assert exp.scheduler.args == {}


def test_a_strategy_seed_names_the_field_to_use(capsys) -> None:  # type: ignore[no-untyped-def]
    code = main(
        ["validate", str(REPO / "examples" / "quickstart.yaml"), "--set", "strategy.seed=3"]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "strategy.seed: the experiment sets it from seed" in err and "Traceback" not in err


def test_show_of_a_config_with_trackers_loads_back(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "c.yaml"
    path.write_text("name: c\ncallbacks: [mlflow, {name: wandb, project: p}]\n")
    assert main(["config", "show", str(path)]) == 0
    again = load_config(yaml.safe_load(capsys.readouterr().out))
    assert again.callbacks == load_config(path).callbacks
    assert [(c.name, c.project) for c in again.callbacks] == [("mlflow", None), ("wandb", "p")]
