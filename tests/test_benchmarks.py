"""The benchmark scripts' own logic (not their timings): merging leaderboard summaries."""

from __future__ import annotations

import copy
import functools
import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@functools.cache
def _script(name: str):  # noqa: ANN202
    """A script of ``benchmarks/`` as a module (imported once)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def previous() -> dict:
    return json.loads((ROOT / "benchmarks/results/score_cpu.json").read_text())


def _board(previous: dict, rows: list[str]) -> dict:
    """A summary of this run that scored only ``rows`` (copies of the previous ones)."""
    board = copy.deepcopy(previous)
    board["methods"] = {k: board["methods"][k] for k in rows}
    board["rows"] = [r for r in board["rows"] if r["method"] in rows]
    return board


def test_update_keeps_the_rows_not_rerun(previous: dict) -> None:
    score_cpu = _script("score_cpu")
    board = _board(previous, ["finetune"])
    board["methods"]["finetune"]["final_score"] = board["rows"][0]["final_score"] = 0.5  # this run's value wins
    kept = score_cpu.merge_previous(board, previous, str(ROOT / "configs/leaderboard/cpu.yaml"))
    assert "finetune" not in kept and set(kept) == set(previous["methods"]) - {"finetune"}
    assert set(board["methods"]) == set(previous["methods"])
    assert sorted(r["method"] for r in board["rows"]) == sorted(r["method"] for r in previous["rows"])
    assert board["methods"]["finetune"]["final_score"] == 0.5
    assert [r["final_score"] for r in board["rows"] if r["method"] == "finetune"] == [0.5]
    assert any("hypernet" in n for n in board["notes"])  # the kept rows' notes are recomputed


@pytest.mark.parametrize("change", ["ceiling", "oracle_test_acc", "seed_base"])
def test_update_refuses_rows_scored_against_other_oracles(previous: dict, change: str) -> None:
    score_cpu = _script("score_cpu")
    board = _board(previous, ["finetune"])
    if change == "ceiling":
        board["methods"]["finetune"]["ceiling"] += 0.01
    elif change == "oracle_test_acc":
        board["methods"]["finetune"]["oracle"]["test_acc"]["mean"] += 0.001
    else:
        board["seed_base"] = 1000
    with pytest.raises(SystemExit, match="rerun every method"):
        score_cpu.merge_previous(board, previous, str(ROOT / "configs/leaderboard/cpu.yaml"))


def test_step_ops_counts_the_casts_autocast_adds() -> None:
    step_ops = _script("step_ops")
    from unlearning.nets import SmallCNN

    fp32 = step_ops.count_step(SmallCNN(width=4, hidden=8), 4, "fp32", False, "cpu")
    bf16 = step_ops.count_step(SmallCNN(width=4, hidden=8), 4, "bf16-mixed", False, "cpu")
    # one step of 4 convs and 2 linears: forward, backward and SGD each reach the kernels
    assert fp32["copies_and_casts"] == 0 and fp32["aten_ops"] > 50
    # autocast casts the inputs and weights of the 6 layers (more with their biases)
    assert bf16["copies_and_casts"] >= 12 and bf16["aten_ops"] == pytest.approx(fp32["aten_ops"] + bf16["copies_and_casts"], abs=3)


def test_full_scale_smoke_runs_cap_each_phase_at_the_epochs_asked() -> None:
    cap = _script("unlearn_cpu").epoch_cap
    assert cap(ROOT / "configs/unlearn/salun.yaml", 1) == 1  # 10 epochs published
    assert cap(ROOT / "configs/unlearn/unsir.yaml", 1) == 2  # one of impair, one of repair
    assert cap(ROOT / "configs/unlearn/neggrad.yaml", 20) == 5  # never more than published

