"""``raynas.results.plots`` and ``raynas analyze --plots``: every plot is written, non-empty, not blank."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from raynas.cli import main as cli_main
from raynas.results.analysis import load
from raynas.results.plots import (
    metric_label,
    op_columns,
    plot_all,
    plot_best_so_far,
    plot_learning_curves,
    plot_pareto,
)
from tests.test_analysis import real_experiment, write_experiment, write_state, write_trial

ALL_PLOTS = [
    "best_so_far_trials.png",
    "best_so_far_time.png",
    "learning_curves.png",
    "pareto.png",
    "op_frequencies.png",
]


def assert_real_png(path: Path) -> None:
    import matplotlib.image

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
    pixels = matplotlib.image.imread(path)
    assert pixels.shape[0] > 300 and pixels.shape[1] > 500, pixels.shape
    assert float(pixels[..., :3].std()) > 0.05, f"{path.name} looks blank"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    ops = ["none", "skip_connect", "nor_conv_3x3"]
    exp = write_experiment(tmp_path / "exp")
    statuses = {}
    for i in range(12):
        arch = {
            "cell": {
                f"edge_{a}_{b}": ops[int(rng.integers(3))]
                for a, b in [(0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3)]
            }
        }
        n = 3 if i % 3 else 1
        final = float(rng.uniform(0.3, 0.95))
        accs = [final * (e + 1) / n for e in range(n)]
        write_trial(exp, f"t{i:02d}", i, accs, arch=arch, params=int(rng.integers(1, 9)) * 1000)
        statuses[f"t{i:02d}"] = "TERMINATED"
    write_trial(exp, "cv", 20, [], status="constraint_violated", params=10**6)
    statuses["cv"] = "TERMINATED"
    write_state(exp, statuses)
    return exp


def test_plot_all_writes_every_plot(folder: Path, tmp_path: Path) -> None:
    written = plot_all(load(folder), tmp_path / "plots", k=4)
    assert [p.name for p in written] == ALL_PLOTS
    for path in written:
        assert_real_png(path)


def test_analyze_plots_flag(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["analyze", str(folder), "--top", "3", "--plots", str(tmp_path / "p")]) == 0
    out = capsys.readouterr().out
    for name in ALL_PLOTS:
        assert f"wrote {tmp_path / 'p' / name}" in out
        assert (tmp_path / "p" / name).stat().st_size > 10_000


def test_nothing_to_plot_writes_nothing(tmp_path: Path) -> None:
    exp = write_experiment(tmp_path / "exp")
    write_trial(exp, "cv", 1, [], status="constraint_violated")
    assert plot_all(load(exp), tmp_path / "plots") == []
    assert not (tmp_path / "plots").exists()


def test_spaces_without_cells_have_no_op_plot(tmp_path: Path) -> None:
    exp = write_experiment(tmp_path / "exp")
    for i in range(3):
        write_trial(exp, f"m{i}", i, [0.5 + i / 10] * 3, arch={"depth": i + 1, "act": "relu"})
    names = [p.name for p in plot_all(load(exp), tmp_path / "plots")]
    assert "op_frequencies.png" not in names and "pareto.png" in names


def test_op_columns_of_nb201_and_darts_cells() -> None:
    cols = [
        "arch.cell.edge_0_1",
        "arch.cell.edge_2_3",
        "arch.normal.node_2.ops.0",
        "arch.normal.node_2.inputs.0",
        "arch.reduce.node_5.ops.1",
        "arch.depth",
        "val_acc",
    ]
    assert op_columns(pd.DataFrame(columns=cols)) == {
        "cell": ["arch.cell.edge_0_1", "arch.cell.edge_2_3"],
        "normal": ["arch.normal.node_2.ops.0"],
        "reduce": ["arch.reduce.node_5.ops.1"],
    }


def test_axis_labels_carry_units() -> None:
    assert metric_label("val_acc") == "validation accuracy (fraction)"
    assert "(ms)" in metric_label("latency_ms") and "count" in metric_label("params")
    assert metric_label("my_metric") == "my metric"


def test_pareto_plot_of_chosen_costs(folder: Path, tmp_path: Path) -> None:
    path = plot_pareto(load(folder), tmp_path / "front.png", costs=["params"])
    assert path is not None
    assert_real_png(path)
    assert plot_pareto(load(folder), tmp_path / "none.png", costs=["energy"]) is None


@pytest.mark.slow
def test_plots_of_a_real_run(
    tmp_path_factory: pytest.TempPathFactory, ray_session: None, tmp_path: Path
) -> None:
    written = plot_all(load(real_experiment(tmp_path_factory, "mixed")), tmp_path / "plots")
    assert [p.name for p in written] == ALL_PLOTS
    for path in written:
        assert_real_png(path)


# --- the flaws fixed in the PNGs (each checked on the figure drawn, before it is saved) -----
@pytest.fixture
def figures(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The matplotlib figures the plot functions save, in order."""
    import raynas.results.plots

    drawn: list[object] = []
    save = raynas.results.plots._save

    def keep(fig: object, path: str | Path) -> Path:
        drawn.append(fig)
        return save(fig, path)  # type: ignore[arg-type]

    monkeypatch.setattr(raynas.results.plots, "_save", keep)
    return drawn


def test_pareto_front_of_completed_trials_only(tmp_path: Path, figures: list[object]) -> None:
    exp = write_experiment(tmp_path / "exp")
    write_trial(exp, "full", 0, [0.5, 0.6, 0.7], params=5000)
    write_trial(exp, "part", 1, [0.9], params=1000)  # early stopped: cheaper, "better"
    write_state(exp, {"full": "TERMINATED", "part": "TERMINATED"})
    assert plot_pareto(load(exp), tmp_path / "p.png", costs=["params"]) is not None
    ax = figures[0].axes[0]  # type: ignore[attr-defined]
    front = [c for c in ax.collections if "Pareto front" in str(c.get_label())]
    assert [tuple(p) for p in front[0].get_offsets()] == [(5000.0, 0.7)]


def test_one_epoch_curves_draw_markers_and_ticks_are_integers(
    tmp_path: Path, figures: list[object]
) -> None:
    from matplotlib.ticker import MaxNLocator

    exp = write_experiment(tmp_path / "exp", epochs=1)
    for i in range(3):
        write_trial(exp, f"o{i}", i, [0.5 + i / 10], epochs=1)
    result = load(exp)
    plot_learning_curves(result, tmp_path / "c.png")
    plot_best_so_far(result, tmp_path / "b.png")
    curves_fig, best_fig = figures
    for ax in curves_fig.axes[:2]:  # type: ignore[attr-defined]
        assert ax.lines and all(line.get_marker() not in (None, "None", "") for line in ax.lines)
        assert isinstance(ax.xaxis.get_major_locator(), MaxNLocator)
        assert all(float(t).is_integer() for t in ax.get_xticks())
    assert all(float(t).is_integer() for t in best_fig.axes[0].get_xticks())  # type: ignore[attr-defined]


def test_one_loss_spike_does_not_flatten_the_curves(tmp_path: Path, figures: list[object]) -> None:
    exp = write_experiment(tmp_path / "exp", epochs=10)
    for i in range(4):
        write_trial(exp, f"s{i}", i, [0.3 + 0.05 * e for e in range(10)], epochs=10)
    lines = (exp.glob("*_s0_*/result.json")).__next__()
    rows = [json.loads(r) for r in lines.read_text().splitlines()]
    rows[4]["val_loss"] = 1e4  # one divergent epoch
    lines.write_text("".join(json.dumps(r) + "\n" for r in rows))
    plot_learning_curves(load(exp), tmp_path / "c.png")
    loss_ax = figures[0].axes[1]  # type: ignore[attr-defined]
    assert loss_ax.get_ylim()[1] < 10, loss_ax.get_ylim()


def test_accuracies_are_fractions_and_legends_sit_outside(
    folder: Path, tmp_path: Path, figures: list[object]
) -> None:
    result = load(folder)
    plot_best_so_far(result, tmp_path / "b.png")
    plot_learning_curves(result, tmp_path / "c.png")
    for fig in figures:
        fig.canvas.draw()  # type: ignore[attr-defined]
        ax = fig.axes[0]  # type: ignore[attr-defined]
        ys = np.concatenate([c.get_offsets()[:, 1] for c in ax.collections if len(c.get_offsets())]
                            + [ln.get_ydata() for ln in ax.lines])  # fmt: skip
        ys = ys[np.isfinite(ys.astype(float))]
        assert ys.max() <= 1.0, "accuracies are fractions, as the CLI prints them"
        assert "fraction" in ax.get_ylabel()
        legend = ax.get_legend()
        box = legend.get_window_extent()
        axes_box = ax.get_window_extent()
        assert box.x0 >= axes_box.x1 - 1, "the legend covers no point"
