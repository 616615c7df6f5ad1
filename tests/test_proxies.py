"""Zero-cost proxies: hand-computed values on tiny fixed networks, invariances, determinism,
NaN handling, the ensembles, and the ``raynas proxies`` CLI (in-process; one slow test on Ray).
"""

from __future__ import annotations

import copy
import json
import math
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from raynas.cli import main
from raynas.proxies import DATA_FREE, PROXIES, ProxyError, get_proxy, score
from raynas.proxies.ensemble import rank_average, vote
from raynas.registry import resolve_space
from tests.conftest import REPO
from trainables.cost import count_flops, count_params

K = 1e-5


def half_sq(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """0.5 * sum of squared errors: easy to differentiate by hand."""
    return 0.5 * ((out - y) ** 2).sum()


def linear(w: list[list[float]]) -> nn.Linear:
    layer = nn.Linear(len(w[0]), len(w), bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(w))
    return layer


def two_layer() -> nn.Module:
    """x -> W1 x -> relu -> W2 h, W1 = [[1, -2], [3, 1]], W2 = [[2, -1]]."""
    return nn.Sequential(linear([[1.0, -2.0], [3.0, 1.0]]), nn.ReLU(), linear([[2.0, -1.0]]))


def scalar_chain(w1: float = 1.0, w2: float = 2.0) -> nn.Module:
    """out = w2 * w1 * x."""
    return nn.Sequential(linear([[w1]]), linear([[w2]]))


ONE = (torch.tensor([[1.0, 1.0]]), torch.tensor([[0.0]]))


# --- data-free ----------------------------------------------------------------------------


def test_synflow_by_hand() -> None:
    # |W1| = [[1, 2], [3, 1]], |W2| = [[2, 1]], x = 1: h = [3, 4], R = 2*3 + 1*4 = 10.
    # dR/dW2 = h: |W2 * h| = 2*3 + 1*4 = 10; dR/dW1[j, i] = |W2[j]|: 2*(1+2) + 1*(3+1) = 10.
    assert score("synflow", two_layer(), None, input_shape=(2,)) == pytest.approx(10.0 + 10.0)


def test_synflow_removes_batchnorm_and_ignores_signs() -> None:
    net = two_layer()
    with_bn = nn.Sequential(net[0], nn.BatchNorm1d(2), nn.ReLU(), net[2])
    with torch.no_grad():
        with_bn[1].running_var.fill_(100.0)  # BN is removed, so its statistics do not matter
        with_bn[0].weight.neg_()
    assert score("synflow", with_bn, None, input_shape=(2,)) == pytest.approx(20.0)


def test_zen_identity_and_batchnorm_term() -> None:
    # f(x) = x: Delta = mean ||0.01 eps||_F ~ 0.01 sqrt(d); no BN, so zen ~ log(0.01 sqrt(d)).
    d = 3 * 64 * 64
    expected = math.log(0.01 * math.sqrt(d))
    assert score("zen", nn.Flatten(), None, input_shape=(3, 64, 64)) == pytest.approx(
        expected, abs=0.01
    )

    class Triple(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return 3.0 * x

    # BN sees inputs of variance 9: + log(sqrt(9)); it divides the difference by 3 again.
    net = nn.Sequential(Triple(), nn.BatchNorm2d(3), nn.Flatten())
    assert score("zen", net, None, input_shape=(3, 64, 64)) == pytest.approx(
        expected + math.log(3.0), abs=0.02
    )


def test_params_and_flops_match_cost() -> None:
    space = resolve_space("nb201", {"C": 4, "N": 1})
    model = space.build(space.sample(0), num_classes=10, in_channels=3)
    assert score("params", model, None, input_shape=(3, 8, 8)) == count_params(model)
    assert score("flops", model, None, input_shape=(3, 8, 8)) == count_flops(model, (3, 8, 8))


# --- one batch ----------------------------------------------------------------------------


def test_snip_grad_norm_fisher_by_hand() -> None:
    # x = [1, 1], y = 0: a1 = W1 x = [-1, 4], h = [0, 4], out = -4, dL/dout = -4.
    # dL/dW2 = -4 h = [0, -16]; dL/da1 = relu'(a1) * (-4 W2) = [0, 4]; dL/dW1 = [[0, 0], [4, 4]].
    snip = (0 * 2 + 16 * 1) + (4 * 3 + 4 * 1)
    assert score("snip", two_layer(), ONE, half_sq) == pytest.approx(snip)
    assert score("grad_norm", two_layer(), ONE, half_sq) == pytest.approx(math.sqrt(32) + 16)
    # fisher: layer 1: 0.5 * ((-1*0)^2 + (4*4)^2) = 128; layer 2: 0.5 * (-4 * -4)^2 = 128.
    assert score("fisher", two_layer(), ONE, half_sq) == pytest.approx(256.0)


def test_grasp_by_hand() -> None:
    # L = 0.5 (w1 w2)^2 at x = 1: g = (w1 w2^2, w1^2 w2), H = [[w2^2, 2w1w2], [2w1w2, w1^2]];
    # -theta . Hg = -3 (w1^2 w2^4 + w1^4 w2^2) = -3 (16 + 4) at w1 = 1, w2 = 2.
    batch = (torch.tensor([[1.0]]), torch.tensor([[0.0]]))
    assert score("grasp", scalar_chain(), batch, half_sq) == pytest.approx(-60.0)


def test_zico_by_hand() -> None:
    # Chunks x = 1 and x = 2 (y = 0): g1 = w1 w2^2 x^2 = (4, 16), g2 = w1^2 w2 x^2 = (2, 8).
    # Per layer mean|g| / std(g) = 10 / 6 and 5 / 3: zico = 2 log(5 / 3).
    batch = (torch.tensor([[1.0], [2.0]]), torch.tensor([[0.0], [0.0]]))
    assert score("zico", scalar_chain(), batch, half_sq) == pytest.approx(2 * math.log(5 / 3))


def test_jacob_cov_by_hand() -> None:
    # dOut/dx = W1^T diag(relu') W2^T: x = [1, 1] -> [-3, -1]; x = [1, -1] -> [-1, -5].
    # Two-element rows correlate -1: eigenvalues 0 and 2.
    x = torch.tensor([[1.0, 1.0], [1.0, -1.0]])
    expected = -(math.log(K) + 1 / K + math.log(2 + K) + 1 / (2 + K))
    got = score("jacob_cov", two_layer(), (x, torch.zeros(2, 1)))
    assert got == pytest.approx(expected, rel=1e-6)


def test_nwot_by_hand() -> None:
    # ReLU codes: [1,1] -> a1 = [-1, 4] -> 01; [1,-1] -> [3, 2] -> 11; [-1,0] -> [-1,-3] -> 00.
    # K = 2 - Hamming = [[2,1,1],[1,2,0],[1,0,2]], det = 2*4 - 1*2 + 1*(-2) = 4.
    x = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 0.0]])
    assert score("nwot", two_layer(), (x, torch.zeros(3, 1))) == pytest.approx(math.log(4.0))


def test_meco_by_hand() -> None:
    # 1x1 conv: channel 0 = x0 = [1, 2, 3], channel 1 = x0 + x1 = [1, 3, 2]; centred
    # [-1, 0, 1] . [-1, 1, 0] / (sqrt 2 sqrt 2) = 0.5: eigenvalues 0.5, 1.5. Only the
    # first example counts.
    conv = nn.Conv2d(2, 2, 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[1.0, 0.0], [1.0, 1.0]]).reshape(2, 2, 1, 1))
    first = torch.tensor([[[1.0, 2.0, 3.0]], [[0.0, 1.0, -1.0]]])
    x = torch.stack([first, torch.randn(2, 1, 3)])
    assert score("meco", conv, (x, torch.zeros(2))) == pytest.approx(0.5)


# --- invariances, determinism, invalid values ---------------------------------------------


CELLS = {
    "none": "none",
    "skip": "skip_connect",
    "conv": "nor_conv_3x3",
    "pool": "avg_pool_3x3",
}


def nb201_model(op: str, seed: int = 0) -> nn.Module:
    space = resolve_space("nb201", {"C": 4, "N": 1})
    edges = ("edge_0_1", "edge_0_2", "edge_1_2", "edge_0_3", "edge_1_3", "edge_2_3")
    arch = {"cell": dict.fromkeys(edges, op)}
    torch.manual_seed(seed)
    model: nn.Module = space.build(arch, num_classes=10, in_channels=3)
    return model


def digits_batch(n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(n, 3, 8, 8, generator=gen), torch.randint(0, 10, (n,), generator=gen)


def test_disconnected_cell_scores_lowest_under_synflow() -> None:
    scores = {
        k: score("synflow", nb201_model(op), None, input_shape=(3, 8, 8)) for k, op in CELLS.items()
    }
    assert scores["none"] == 0.0
    assert all(scores["none"] < v for k, v in scores.items() if k != "none"), scores


@pytest.mark.parametrize("name", sorted(PROXIES))
def test_deterministic_and_caller_model_untouched(name: str) -> None:
    model = nb201_model("nor_conv_3x3")
    model.eval()
    before = copy.deepcopy(model.state_dict())
    batch = digits_batch()
    a = score(name, model, batch, input_shape=(3, 8, 8), seed=3)
    b = score(name, model, batch, input_shape=(3, 8, 8), seed=3)
    assert a == b and math.isfinite(a), (a, b)
    assert not model.training and all(p.grad is None for p in model.parameters())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_zen_depends_on_its_seed() -> None:
    model = nb201_model("nor_conv_3x3")
    values = {score("zen", model, None, input_shape=(3, 8, 8), seed=s) for s in range(3)}
    assert len(values) == 3


class Poison(nn.Module):
    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.value


@pytest.mark.parametrize("value", [math.nan, math.inf])
@pytest.mark.parametrize("name", sorted(set(PROXIES) - {"params", "flops"}))
def test_nan_or_inf_gives_nan(name: str, value: float) -> None:
    net = nn.Sequential(
        Poison(value), nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(64, 10)
    )
    x, y = digits_batch(4)
    got = score(name, net, (x[:, :, :4, :4], y), input_shape=(3, 4, 4))
    assert math.isnan(got)


def test_no_trainable_weight_gives_nan() -> None:
    frozen = two_layer().requires_grad_(False)
    for name in ("synflow", "snip", "grasp", "grad_norm", "fisher", "zico"):
        assert math.isnan(score(name, frozen, ONE, half_sq, input_shape=(2,))), name
    no_relu = nn.Sequential(linear([[1.0, 2.0]]))
    assert math.isnan(score("nwot", no_relu, ONE))


def test_registry() -> None:
    assert set(DATA_FREE) == {"synflow", "zen", "params", "flops"}
    assert all(callable(spec.function) for spec in PROXIES.values())
    with pytest.raises(ProxyError, match="unknown; choose one of"):
        get_proxy("synflw")
    with pytest.raises(ProxyError, match="needs a batch"):
        score("snip", two_layer(), None, input_shape=(2,))


def test_rank_average_and_vote() -> None:
    df = pd.DataFrame(
        {
            "synflow": [3.0, 1.0, np.nan],
            "jacob_cov": [1.0, 2.0, 3.0],
            "snip": [2.0, 3.0, 1.0],
        }
    )
    # ranks (1 = worst, nan below all): synflow [3, 2, 1], jacob_cov [1, 2, 3], snip [2, 3, 1]
    assert rank_average(df, ["synflow", "snip"]).tolist() == [2.5, 2.5, 1.0]
    assert vote(df).tolist() == pytest.approx([2.0, 7 / 3, 5 / 3])
    with pytest.raises(ProxyError, match="missing"):
        rank_average(df, ["zen"])


# --- CLI ----------------------------------------------------------------------------------


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    block = text.split("## Zero-cost proxies", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    return [line.strip() for line in block.splitlines() if line.strip()]


def tiny(command: str) -> list[str]:
    """A README command as argv, with tiny arguments: 5 archs, in this process."""
    argv = shlex.split(command)[1:]
    if argv[:2] == ["proxies", "score"]:
        if "--all" in argv:
            argv[argv.index("--all")] = "--sample"
            argv.insert(argv.index("--sample") + 1, "5")
        if "--sample" in argv:
            argv[argv.index("--sample") + 1] = "5"
        argv += ["--in-process", "--chunk-size", "2"]
    return argv


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "examples").symlink_to(REPO / "examples")
    (tmp_path / "benchmarks").symlink_to(REPO / "benchmarks")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_readme_commands_run(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    commands = readme_commands()
    assert len(commands) == 4 and all(c.startswith(".venv/bin/raynas proxies ") for c in commands)
    for command in commands:
        assert main(tiny(command)) == 0, command
    out = capsys.readouterr().out
    free = pd.read_parquet(workdir / "runs" / "proxies-free.parquet")
    assert list(free.columns) == ["arch", "arch_id", "synflow", "zen", "seconds", "error"]
    assert len(free) == 5 and free["arch_id"].is_unique
    assert all(isinstance(json.loads(a), dict) for a in free["arch"])
    digits = pd.read_parquet(workdir / "runs" / "proxies-digits.parquet")
    assert {"synflow", "nwot", "jacob_cov", "snip", "vote"} <= set(digits.columns)
    assert not (workdir / "runs" / "proxies-digits.parquet.parts").exists()
    assert "spearman" in out and "kendall" in out
    assert (workdir / "runs" / "proxies-digits.png").stat().st_size > 0


def test_score_resumes_skipping_done_chunks(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from raynas.proxies import scoring

    argv = [
        *("proxies", "score", "--space", "nb201", "--space-arg", "C=4", "--space-arg", "N=1"),
        *("--input-shape", "3,8,8", "--sample", "6", "--proxy", "synflow", "--proxy", "params"),
        *("--chunk-size", "2", "--in-process", "--out", "t.parquet"),
    ]
    real = scoring.score_chunk
    calls: list[int] = []
    resumed_once = False

    def interrupted(job: scoring.ScoreJob, archs: list[str]) -> list[dict]:
        calls.append(len(archs))
        if calls == [2, 2] and not resumed_once:
            raise KeyboardInterrupt
        return real(job, archs)

    monkeypatch.setattr(scoring, "score_chunk", interrupted)
    assert main(argv) == 130
    assert "rerun the same command" in capsys.readouterr().err
    assert len(list(Path("t.parquet.parts").glob("chunk-*.parquet"))) == 1
    calls.clear()
    resumed_once = True
    assert main(argv) == 0
    assert calls == [2, 2], "only the two chunks left are scored"
    resumed = pd.read_parquet("t.parquet")
    monkeypatch.setattr(scoring, "score_chunk", real)
    assert main([*argv[:-1], "fresh.parquet"]) == 0
    fresh = pd.read_parquet("fresh.parquet")
    cols = ["arch", "arch_id", "synflow", "params"]
    pd.testing.assert_frame_equal(resumed[cols], fresh[cols])
    # other settings over an unfinished run are refused, naming --out
    Path("t.parquet.parts").mkdir()
    (Path("t.parquet.parts") / "manifest.json").write_text("{}")
    assert main(argv) == 2


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["score", "--space", "nb201", "--input-shape", "3,8,8", "--sample", "2"], "--proxy"),
        (
            ["score", "--space", "nb201", "--input-shape", "3,8,8", "--all", "--proxy", "snip"],
            "--proxy",
        ),
        (
            ["score", "--space", "nb201", "--input-shape", "3,x", "--all", "--proxy", "zen"],
            "--input-shape",
        ),
        (["score", "--space", "nb201", "--input-shape", "3,8,8", "--proxy", "zen"], "--all"),
        (["score", "--input-shape", "3,8,8", "--all", "--proxy", "zen"], "--config"),
        (
            ["score", "--space", "nb201", "--input-shape", "3,8,8", "--all", "--proxy", "syn"],
            "--proxy",
        ),
        (
            [
                "score",
                "--space",
                "nb201",
                "--input-shape",
                "3,8,8",
                "--all",
                "--proxy",
                "zen",
                "--out",
                "x.csv",
            ],
            "--out",
        ),
        (
            [
                "correlate",
                "missing.parquet",
                "benchmarks/data/nb201-3ops-digits.parquet",
                "--metric",
                "test_acc",
            ],
            "PROXY_TABLE",
        ),
    ],
)
def test_bad_input_exits_2_naming_the_flag(
    workdir: Path, capsys: pytest.CaptureFixture[str], argv: list[str], flag: str
) -> None:
    assert main(["proxies", *argv]) == 2
    err = capsys.readouterr().err
    assert flag in err and "Traceback" not in err


def test_correlate_bad_metric(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        *("proxies", "score", "--space", "nb201", "--space-arg", "C=4", "--space-arg", "N=1"),
        *("--space-arg", "ops=[none,skip_connect,nor_conv_3x3]", "--input-shape", "1,8,8"),
        *("--sample", "3", "--proxy", "params", "--in-process", "--out", "p.parquet"),
    ]
    assert main(argv) == 0
    table = "benchmarks/data/nb201-3ops-digits.parquet"
    assert main(["proxies", "correlate", "p.parquet", table, "--metric", "tset_acc"]) == 2
    assert "--metric" in capsys.readouterr().err
    assert main(["proxies", "correlate", "p.parquet", table, "--metric", "test_acc"]) == 0
    assert "params" in capsys.readouterr().out


@pytest.mark.slow
def test_score_on_ray_tasks(tmp_path: Path) -> None:
    command = readme_commands()[1]
    argv = [a for a in tiny(command) if a != "--in-process"]
    out = tmp_path / "free.parquet"
    argv[argv.index("--out") + 1] = str(out)
    proc = subprocess.run(
        [sys.executable, "-m", "raynas.cli", *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "3/3 chunks" in proc.stdout
    assert len(pd.read_parquet(out)) == 5
