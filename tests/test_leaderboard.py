"""``unlearning leaderboard`` and ``unlearning tune`` on the two-circles toy (seconds per model)."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from unlearning.cli import main

BOARD = "configs/leaderboard/toy.yaml"
N = 3


def _board_args(tmp: Path, *extra: str) -> list[str]:
    return ["leaderboard", "-c", BOARD, "--n_models", str(N), "--progress", "false",
            "--cache_dir", str(tmp / "cache"), "--output_dir", str(tmp / "board"), *extra]


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    tmp = tmp_path_factory.mktemp("board")
    import os

    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        return tmp, main(_board_args(tmp))
    finally:
        os.chdir(cwd)


@pytest.mark.slow  # the module's board: about 45 s of toy trainings
def test_leaderboard_writes_its_files_and_agrees_with_score(board: tuple[Path, dict], monkeypatch: pytest.MonkeyPatch) -> None:
    tmp, result = board
    out = tmp / "board"
    for name in ("leaderboard.md", "leaderboard.json", "leaderboard.csv", "pareto.png", "epsilon.png"):
        assert (out / name).is_file(), name
    assert list((out / "summary").glob("events.out.tfevents.*"))
    rows = {r["method"]: r for r in csv.DictReader((out / "leaderboard.csv").open())}
    # every config of the folder (less its search spaces) and the variant, once each
    assert set(rows) == {"finetune", "hypernet", "finetune (lr 0.01)"}
    md = (out / "leaderboard.md").read_text()
    assert sum(line.startswith("| ") for line in md.splitlines()) == 1 + 3  # the header and a line per row
    # the numbers are those of `unlearning score` for the same method: from the same cache, nothing trained
    monkeypatch.chdir(REPO)
    one = main(["score", "-c", "configs/score/toy.yaml", "--method", "configs/toy/unlearn/finetune.yaml",
                "--n_models", str(N), "--progress", "false", "--cache_dir", str(tmp / "cache"),
                "--output_dir", str(tmp / "single")])
    assert one["timings"]["models_trained"] == 0
    for key in ("forgetting_quality", "ceiling", "final_score", "retain_acc_ratio", "test_acc_ratio"):
        assert float(rows["finetune"][key]) == pytest.approx(one[key], rel=1e-9), key
    assert float(rows["finetune"]["cost_time_fraction_mean"]) == pytest.approx(
        one["unlearned"]["cost_time_fraction"]["mean"], rel=1e-9)
    # the variant ran with its argument: a different recipe, so different models and numbers
    assert rows["finetune (lr 0.01)"]["forgetting_quality"] != rows["finetune"]["forgetting_quality"]
    # F / ceiling and its standard error over the forget examples, recomputed from the saved epsilons
    import numpy as np

    from unlearning.metrics.forgetting import forgetting_points

    eps = np.load(tmp / "board" / "methods" / "finetune" / "epsilon.npy")
    pts = forgetting_points(eps, N)
    assert float(rows["finetune"]["relative_forgetting"]) == pytest.approx(pts.mean() / one["ceiling"], rel=1e-9)
    se = pts.std(ddof=1) / np.sqrt(pts.size) / one["ceiling"]
    assert float(rows["finetune"]["relative_forgetting_se"]) == pytest.approx(se, rel=1e-9)
    # the stage's payoff is reported against the baseline
    assert any("one-time stage `hypernet`" in n for n in result["notes"])
    assert any("`finetune (lr 0.01)` against `finetune`" in n for n in result["notes"])


@pytest.mark.slow
def test_a_second_leaderboard_trains_nothing(board: tuple[Path, dict], monkeypatch: pytest.MonkeyPatch) -> None:
    tmp, first = board
    monkeypatch.chdir(REPO)
    again = main(_board_args(tmp))
    assert again["models_trained"] == 0
    assert [r["final_score"] for r in again["rows"]] == [r["final_score"] for r in first["rows"]]


@pytest.mark.slow  # two toy hypernetwork stages and their runs: about 20 s
def test_a_variant_with_its_own_stage_trains_and_uses_that_stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    other = yaml.safe_load((REPO / "configs/toy/hypernet.yaml").read_text())
    other["trainer"]["max_steps"] = 7  # another recipe: another stage
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(other))
    out = main(_board_args(tmp_path, "--methods", '["configs/toy/unlearn/hypernet.yaml"]', "--baseline", "null",
                           "--variants", '{"hypernet (other stage)": ["hypernet"]}',
                           "--variant_stages", json.dumps({"hypernet (other stage)": {"hypernet": str(tmp_path / "other.yaml")}})))
    plain, own = (out["methods"][row]["stages"]["hypernet"] for row in ("hypernet", "hypernet (other stage)"))
    assert plain["cache"] != own["cache"]
    assert (tmp_path / "cache" / own["cache"]).is_dir() and (tmp_path / "cache" / plain["cache"]).is_dir()
    # and its runs are its own (the method's recipe names its stage), not the method row's from the cache
    runs = [out["methods"][row]["cache"]["method"] for row in ("hypernet", "hypernet (other stage)")]
    assert runs[0] != runs[1]


@pytest.mark.parametrize("extra, message", [
    (["--methods", '["configs/toy/unlearn/nope.yaml"]'], "method config configs/toy/unlearn/nope.yaml does not exist"),
    (["--variants", '{"x": ["nope", "--model.init_args.lr", "1"]}'], "variant 'x' names method 'nope'"),
    (["--stages_dir", "null"], "needs the one-time stage(s) ['hypernet']: give stages_dir"),
    (["--scenarios", '{"a": {"class_path": "Nope"}}'], "unknown forget scenario 'Nope': expected one of ClassForget"),
    (["--scenarios", '{"a": {"class_path": "ClassForget", "init_args": {"classes": [1], "share": 1.5}}}'],
     "share must be in (0, 1], got 1.5"),
    (["--scenarios", '{"a": {"class_path": "RandomForget", "init_args": {"fraktion": 0.1}}}'],
     "forget scenario 'RandomForget': "),
    (["--scenarios", '{"a": {"class_path": "ScoreBandForget", "init_args": {"scores_file": "none.npz"}}}'],
     "ScoreBandForget's scores_file 'none.npz' does not exist"),
    (["--scenarios", "{}"], "scenarios must name at least one forget scenario"),
    (["--variant_stages", '{"finetune": {"hypernet": "configs/toy/hypernet.yaml"}}'],
     "variant_stages names 'finetune', which is no variant"),
    (["--variant_stages", '{"finetune (lr 0.01)": {"hypernet": "configs/toy/hypernet.yaml"}}'],
     "gives stage 'hypernet', which method 'finetune' does not declare"),
    (["--variants", '{"h": ["hypernet"]}', "--variant_stages", '{"h": {"hypernet": "configs/toy/nope.yaml"}}'],
     "variant_stages of 'h': stage config configs/toy/nope.yaml does not exist"),
])
def test_bad_leaderboard_input_is_one_line_exit_2_and_trains_nothing(
    extra: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from unlearning.cli import run

    monkeypatch.chdir(REPO)
    monkeypatch.delenv("UNLEARNING_DEBUG", raising=False)
    monkeypatch.setattr(sys, "argv", ["unlearning", *_board_args(tmp_path, *extra)])
    with pytest.raises(SystemExit) as exit_:
        run()
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert err.strip().count("\n") == 0 and message in err, err
    assert not (tmp_path / "cache").exists() and not (tmp_path / "board").exists()


def test_the_scenario_matrix_has_a_row_per_scenario_and_method_and_one_original(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two scenarios of the toy: each its own oracles and leaderboard, one original for both, and
    the matrix's files with the keys the committed CPU matrix is read by."""
    monkeypatch.chdir(REPO)
    scenarios = {"random": {"class_path": "RandomForget", "init_args": {"fraction": 0.1}},
                 "part_of_class_1": {"class_path": "ClassForget", "init_args": {"classes": [1], "share": 0.2}}}
    payload = main(["leaderboard", "-c", "configs/leaderboard/toy.yaml", "--n_models", "2", "--progress", "false",
                    "--methods", "[configs/toy/unlearn/finetune.yaml]", "--variants", "{}",
                    "--scenarios", json.dumps(scenarios),
                    "--cache_dir", str(tmp_path / "cache"), "--output_dir", str(tmp_path / "board")])
    out = tmp_path / "board"
    saved = json.loads((out / "scenarios.json").read_text())
    assert [(r["scenario"], r["method"]) for r in saved["rows"]] == [("random", "finetune"), ("part_of_class_1", "finetune")]
    for row in saved["rows"]:
        assert set(row) >= {"scenario", "method", "n_models", "ceiling", "relative_forgetting", "final_score",
                            "over_cost_limit"}
        board = json.loads((out / row["scenario"] / "leaderboard.json").read_text())
        assert row["final_score"] == board["rows"][0]["final_score"]
    assert [r["final_score"] for r in payload["rows"]] == [r["final_score"] for r in saved["rows"]]
    sizes = {r["scenario"]: r["num_forget"] for r in saved["rows"]}
    assert sizes == {"random": 20, "part_of_class_1": 20}
    assert len(list((tmp_path / "cache").glob("original-*"))) == 1  # the forget set does not change the original
    assert len(list((tmp_path / "cache").glob("oracle-*"))) == 2
    assert (out / "scenarios.png").stat().st_size > 5000
    assert "| finetune |" in (out / "scenarios.md").read_text()
    _check_entanglement(tmp_path, out, saved, scenarios)


def _check_entanglement(tmp_path: Path, out: Path, saved: dict, scenarios: dict) -> None:
    """Each scenario's entanglement is its forget set's against its retain set in the cached
    original's penultimate features, on every row, in the Markdown and on the heatmap; a matrix
    written without it gets it back from its files, training nothing."""
    import numpy as np
    import torch

    from unlearning.metrics import entanglement_score, penultimate_features
    from unlearning.modules.checkpoint import load_net
    from unlearning.scoring.cached_model import score_datamodule
    from unlearning.scoring.entanglement import main as refresh_main
    from unlearning.scoring.entanglement import matrix_entanglement, refresh_matrix
    from unlearning.scoring.matrix import matrix_figure, scenario_data, write_matrix

    (ckpt,) = (tmp_path / "cache").glob("original-*/seed-*/model.ckpt")
    net, _ = load_net(ckpt)
    expected = {}
    for name, spec in scenarios.items():
        dm = score_datamodule(scenario_data(saved["config"]["data"], spec))
        dm.setup("fit")
        feats = penultimate_features(net, [dm.arrays.train_x[dm.split.train]])
        in_forget = torch.isin(dm.split.train, dm.split.forget)
        expected[name] = entanglement_score(feats[~in_forget], feats[in_forget])
    assert expected["random"] != pytest.approx(expected["part_of_class_1"], rel=1e-3)  # two different sets
    assert saved["entanglement"] == pytest.approx(expected, rel=1e-6)
    for row in saved["rows"]:
        assert row["entanglement"] == pytest.approx(expected[row["scenario"]], rel=1e-6)
    table = (out / "scenarios.md").read_text()
    line = next(ln for ln in table.splitlines() if ln.startswith("| entanglement (ES) |"))
    assert line.split("|")[2:4] == [f" {expected[s]:.3g} " for s in ("random", "part_of_class_1")]
    labels = [t.get_text() for t in matrix_figure(saved["rows"]).axes[0].get_xticklabels()]
    assert [lb.splitlines()[-1] for lb in labels] == [f"ES {expected[s]:.3g}" for s in ("random", "part_of_class_1")]

    # the matrix as code without the entanglement wrote it; refreshed from the files alone
    boards = {name: json.loads((out / name / "leaderboard.json").read_text()) for name in scenarios}
    setting = {k: saved[k] for k in ("n_models", "seed_base", "cost_limit", "scenarios", "config")}
    write_matrix(out, boards, setting)
    assert "| entanglement (ES) | - | - |" in (out / "scenarios.md").read_text()
    before = sorted(p.name for p in (tmp_path / "cache").iterdir())
    refreshed = refresh_matrix(out, dest=tmp_path / "refreshed")
    assert refreshed["entanglement"] == pytest.approx(expected, rel=1e-6)
    assert json.loads((tmp_path / "refreshed" / "scenarios.json").read_text())["rows"] == json.loads(
        json.dumps(saved["rows"]))
    assert (tmp_path / "refreshed" / "scenarios.md").read_text() == table
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == before  # nothing trained
    refresh_main([str(out)])  # in place, from the command line
    assert json.loads((out / "scenarios.json").read_text())["entanglement"] == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match=r"scenarios.json' does not exist: expected the output folder"):
        refresh_matrix(tmp_path / "nowhere")
    with pytest.raises(ValueError, match=r"original's cache folder '.*empty.original-[0-9a-f]+' does not exist"):
        refresh_matrix(out, cache_dir=tmp_path / "empty", dest=tmp_path / "unused")
    # a leaderboard that trained for hours writes its matrix all the same, without the value
    datas = {name: scenario_data(saved["config"]["data"], spec) for name, spec in scenarios.items()}
    with pytest.warns(UserWarning, match=r"scenario '\w+': no entanglement \(the original's cache folder"):
        lenient = matrix_entanglement(datas, boards, tmp_path / "empty", strict=False)
    assert np.isnan(list(lenient.values())).all()
    assert np.isfinite(list(expected.values())).all()


@pytest.mark.parametrize("config", sorted((REPO / "configs" / "leaderboard").glob("*.yaml")), ids=lambda p: p.name)
def test_leaderboard_configs_parse_and_name_existing_configs(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from unlearning.scoring.cli import leaderboard_parser
    from unlearning.scoring.leaderboard import _stage_configs, method_configs
    from unlearning.scoring.cached_model import load_stage_config

    monkeypatch.chdir(REPO)
    cfg = leaderboard_parser().parse_args(["-c", str(config)])
    found = method_configs(cfg.methods)
    assert found and cfg.n_models >= 2
    for f in found:
        load_stage_config(str(f), "method")
        _stage_configs(f, cfg.stages_dir)
    for spec in (cfg.variants or {}).values():
        assert spec[0] in {f.stem for f in found}
    for own in (cfg.variant_stages or {}).values():
        for stage in own.values():
            load_stage_config(stage, "stage")
    for what in ("oracle", "original"):
        load_stage_config(cfg[what], what)


# ---- unlearning tune -------------------------------------------------------------------------

def _tune_args(tmp: Path, *extra: str) -> list[str]:
    return ["tune", "-c", "configs/score/toy.yaml", "--method", "configs/toy/unlearn/finetune.yaml",
            "--n_models", "3", "--progress", "false", "--cache_dir", str(tmp / "cache"),
            "--output_dir", str(tmp / "tune"), *extra]


@pytest.mark.slow  # about 40 s: 3 trials of 3 runs and 6 oracles
def test_tune_finds_the_best_trial_resumes_and_writes_the_tuned_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import optuna

    monkeypatch.chdir(REPO)
    first = main(_tune_args(tmp_path, "--n_trials", "2", "--write_config", str(tmp_path / "tuned.yaml")))
    assert first["trials_complete"] == 2
    assert (tmp_path / "tune" / "finetune.db").is_file()  # the SQLite study
    values = [t["value"] for t in first["trials"]]
    assert first["best"]["value"] == max(values)
    base = yaml.safe_load((REPO / "configs/toy/unlearn/finetune.yaml").read_text())
    # trial 0 is the config as it is (the point to beat), trial 1 a sampled value
    assert first["trials"][0]["model.init_args.lr"] == base["model"]["init_args"]["lr"] and first["trials"][0]["start"]
    assert first["trials"][1]["model.init_args.lr"] != base["model"]["init_args"]["lr"]
    # tuning seeds only: 2N = 6 oracles from seed 1000, method runs 1000-1002
    cache = tmp_path / "cache"
    seeds = sorted(int(p.name.split("-")[1]) for p in cache.glob("oracle-*/seed-*"))
    assert seeds == list(range(1000, 1006))
    assert all(int(p.name.split("-")[1]) in (1000, 1001, 1002) for p in cache.glob("method-*/seed-*"))
    # the tuned config is the method's config with the best values set
    tuned = yaml.safe_load((tmp_path / "tuned.yaml").read_text())
    assert tuned["model"]["init_args"]["lr"] == first["best"]["params"]["model.init_args.lr"]
    assert {k: v for k, v in tuned.items() if k != "model"} == {k: v for k, v in base.items() if k != "model"}
    # resumed: one more trial, and the oracles come from the cache (only its N = 2 method runs train)
    second = main(_tune_args(tmp_path, "--n_trials", "3"))
    assert second["trials_complete"] == 3 and second["trials_total"] == 3
    assert second["trials"][2]["models_trained"] == 3
    study = optuna.load_study(study_name="finetune", storage=f"sqlite:///{tmp_path / 'tune' / 'finetune.db'}")
    assert len(study.trials) == 3
    # the reported score's models were never touched: the reporting seeds are not in the cache
    assert not list(cache.glob("oracle-*/seed-0000")) and not list(cache.glob("method-*/seed-0000"))
    result = json.loads((tmp_path / "tune" / "finetune" / "tuning.json").read_text())
    assert result["seeds"] == {"tuning": [1000, 1005], "reporting": [0, 31]}


def test_tuning_on_the_reporting_seeds_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    with pytest.raises(ValueError, match="tuning seeds 20..25 overlap the reporting seeds 0..31"):
        main(_tune_args(tmp_path, "--seed_base", "20"))
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("space, message", [
    ({"model.init_args.lr": {"low": 0.1, "high": 0.01}}, "needs numbers low < high"),
    ({"model.init_args.lr": {"low": 0.0, "high": 0.1, "log": True}}, "log-scaled, so low must be > 0"),
    ({"model.init_args.lr": [0.1, 0.2]}, "must be a mapping with low/high or choices"),
    ({"model.init_args.lr": {"choices": []}}, "choices must be a non-empty list"),
])
def test_bad_search_space_is_a_clear_error(space: dict, message: str, tmp_path: Path) -> None:
    from unlearning.scoring.tune import load_search_space

    path = tmp_path / "s.space.yaml"
    path.write_text(yaml.safe_dump(space))
    with pytest.raises(ValueError, match=message):
        load_search_space(path)


def test_every_search_space_names_settings_of_its_config() -> None:
    """Each key of a search space is an argument of its config's model class (``model.init_args.*``)
    or of Lightning's Trainer (``trainer.*``): a typo would otherwise fail only when a trial runs."""
    import inspect

    import lightning as L

    from unlearning.methods import module_class
    from unlearning.scoring.tune import load_search_space

    spaces = sorted((REPO / "configs").rglob("*.space.yaml"))
    assert len(spaces) >= 11
    trainer_args = set(inspect.signature(L.Trainer.__init__).parameters)
    for path in spaces:
        config = yaml.safe_load(path.with_name(path.name.replace(".space.yaml", ".yaml")).read_text())
        cls = module_class(config["model"]["class_path"])
        model_args = {n for c in cls.__mro__ if "__init__" in vars(c) for n in inspect.signature(c.__init__).parameters}
        for key in load_search_space(path):
            section, *rest = key.split(".")
            if section == "model":
                assert rest[0] == "init_args" and rest[1] in model_args, f"{path.name}: {key} is no argument of {cls.__name__}"
            else:
                assert section == "trainer" and rest[0] in trainer_args, f"{path.name}: {key} is no Trainer argument"


def test_every_row_with_a_stage_gets_its_payoff_variants_included() -> None:
    from unlearning.scoring.leaderboard import board_notes

    def row(per_request_s: float, stage: bool) -> dict:
        r = {"unlearned": {"cost_time_s": {"mean": per_request_s}, "cost_time_fraction": {"mean": per_request_s / 20}},
             "final_score": 0.1, "forgetting_quality": 0.1}
        if stage:
            r["stages"] = {"hypernet": {"cost": {"train_time_s": 80.0}, "cost_time_fraction": 4.0,
                                        "cost_images_fraction": 0.3}}
        return r

    results = {"finetune": row(2.5, False), "hypernet": row(3.0, True), "hypernet (one pass)": row(0.5, True)}
    notes = board_notes(results, "finetune", {"hypernet (one pass)": "hypernet"})
    assert any(n.startswith("- `hypernet`:") and "never pays off" in n for n in notes)
    # a one-pass variant is cheaper per request than the baseline: 80 s / (2.5 s - 0.5 s) = 40 requests
    assert any(n.startswith("- `hypernet (one pass)`:") and "pays off after 40 requests" in n for n in notes)
    assert any("`hypernet (one pass)` against `hypernet`" in n for n in notes)
    assert not any(n.startswith("- `finetune`") for n in notes)  # no stage, no payoff line
