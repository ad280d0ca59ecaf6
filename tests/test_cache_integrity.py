"""The score cache cannot go stale or be trained twice: code identity in the keys, claims.

The code tests edit copies of a method, a base class and a network in a package of their own (the
project's files stay as they are); the claim tests hold a seed's claim from a real second process
and kill it.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from unlearning.scoring.cache import RecipeCache
from unlearning.scoring.fingerprint import code_identity
from unlearning.scoring.cached_model import load_stage_config, stage_recipe

TOY = REPO / "configs" / "score" / "toy.yaml"
DATA = yaml.safe_load(TOY.read_text())["data"]


def _score_data() -> dict:
    """The toy score's data section as ``unlearning score`` sees it (defaults filled in)."""
    from unlearning.scoring.cli import score_parser

    return score_parser().parse_args(["-c", str(TOY)]).as_dict()["data"]


def _key(cfg: dict) -> str:
    return RecipeCache("unused", "method", stage_recipe(cfg, (), DATA)).key


@pytest.fixture
def user_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``userpkg``: a copy of Finetune and of NegGrad+ (one file each, the classes renamed so that
    LightningCLI's short names stay unambiguous), a subclass of the copy in a file of its own, and a
    copy of the MLP, importable for the test."""
    pkg = tmp_path / "userpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    methods = REPO / "unlearning" / "methods"
    (pkg / "mine.py").write_text((methods / "finetune.py").read_text().replace("Finetune", "MyFinetune"))
    (pkg / "other.py").write_text((methods / "neggrad_plus.py").read_text().replace("NegGradPlus", "MyNegGradPlus"))
    (pkg / "derived.py").write_text(
        "from userpkg.mine import MyFinetune\n\n\nclass Derived(MyFinetune):\n    \"\"\"The copy, by another name.\"\"\"\n"
    )
    (pkg / "net.py").write_text((REPO / "unlearning" / "nets" / "mlp.py").read_text().replace("class MLP(", "class MyMLP("))
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [m for m in sys.modules if m == "userpkg" or m.startswith("userpkg.")]:
        del sys.modules[name]
    importlib.invalidate_caches()
    for name in ("mine", "other", "derived", "net"):
        importlib.import_module(f"userpkg.{name}")
    return pkg


def _config(path: str, class_path: str) -> dict:
    cfg = load_stage_config(REPO / path, "test")
    cfg["model"]["class_path"] = class_path
    return cfg


def test_the_identity_names_the_code_that_trains_the_model(user_package: Path) -> None:
    ident = code_identity(_config("configs/toy/unlearn/finetune.yaml", "userpkg.mine.MyFinetune"), DATA)
    files = ident["module"]["files"]
    # the method's own file, its base classes, the losses and metrics they use; no other method
    assert {"userpkg.mine", "unlearning.modules.unlearn", "unlearning.modules.base", "unlearning.modules.cost"} <= set(files)
    assert not any(f.startswith("unlearning.methods.") or f == "userpkg.other" for f in files)
    scrub = code_identity(_config("configs/cpu/unlearn/scrub.yaml", "SCRUB"), DATA)["module"]["files"]
    assert "unlearning.methods.losses" in scrub and "unlearning.methods.scrub" in scrub
    oracle = code_identity(load_stage_config(REPO / "configs/toy/retrain.yaml", "oracle"), DATA)
    # build_net resolves the network's class through the registry, which its base module names
    assert set(oracle["net"]["files"]) == {"unlearning.nets.mlp", "unlearning.nets.base", "unlearning.registry"}
    assert "unlearning.data.two_circles" in oracle["data"]["files"]


def test_editing_a_method_invalidates_its_entries_and_no_others(user_package: Path) -> None:
    mine = _config("configs/toy/unlearn/finetune.yaml", "userpkg.mine.MyFinetune")
    derived = _config("configs/toy/unlearn/finetune.yaml", "userpkg.derived.Derived")
    other = _config("configs/toy/unlearn/finetune.yaml", "userpkg.other.MyNegGradPlus")
    oracle = load_stage_config(REPO / "configs/toy/retrain.yaml", "oracle")
    before = {name: _key(cfg) for name, cfg in (("mine", mine), ("derived", derived), ("other", other), ("oracle", oracle))}
    assert len(set(before.values())) == 4

    source = user_package / "mine.py"
    text = source.read_text()
    source.write_text(text.replace("        x, y = batch[\"retain\"]\n",
                                   "        # a comment and a blank line change no code\n\n        x, y = batch[\"retain\"]\n"))
    assert {name: _key(cfg) for name, cfg in (("mine", mine), ("derived", derived), ("other", other), ("oracle", oracle))} == before
    # nor do docstrings: the module's and the class's, reworded
    assert '"""Fine-tuning on' in text and '"""Keep training on' in text and '"""Cross-entropy on' in text
    source.write_text(text.replace('"""Fine-tuning on', '"""Tuning on').replace('"""Keep training on', '"""Train on')
                      .replace('"""Cross-entropy on', '"""The cross-entropy of'))
    assert {name: _key(cfg) for name, cfg in (("mine", mine), ("derived", derived), ("other", other), ("oracle", oracle))} == before

    source.write_text(text.replace("loss = F.cross_entropy(self(x), y)", "loss = F.cross_entropy(self(x), y) * 2.0"))
    after = {name: _key(cfg) for name, cfg in (("mine", mine), ("derived", derived), ("other", other), ("oracle", oracle))}
    assert after["mine"] != before["mine"]
    assert after["derived"] != before["derived"]  # a subclass of the edited base class
    assert after["other"] == before["other"] and after["oracle"] == before["oracle"]


def test_editing_a_network_invalidates_the_recipes_that_use_it(user_package: Path) -> None:
    original = load_stage_config(REPO / "configs/toy/original.yaml", "original")
    mine = json.loads(json.dumps(original))
    mine["model"]["init_args"]["net"]["class_path"] = "userpkg.net.MyMLP"
    before = (_key(original), _key(mine))
    source = user_package / "net.py"
    source.write_text(source.read_text().replace("class MyMLP(", "_EDITED = True\n\n\nclass MyMLP("))
    assert _key(original) == before[0] and _key(mine) != before[1]


def _hold_claim(lock: Path) -> subprocess.Popen:
    """A second process that holds a claim (the same file lock the cache takes) until killed."""
    code = ("import sys, time\nfrom filelock import FileLock\nlock = FileLock(sys.argv[1])\nlock.acquire()\n"
            "print('held', flush=True)\ntime.sleep(600)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(lock)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


@pytest.mark.slow  # about 15 s: a claim holder in a subprocess, SIGKILLed mid-score
def test_a_claimed_model_is_left_to_its_holder_and_taken_over_when_it_dies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from unlearning.cli import main

    monkeypatch.chdir(REPO)
    oracle_cfg = load_stage_config(REPO / "configs/toy/retrain.yaml", "oracle")
    oracles = RecipeCache(tmp_path / "cache", "oracle", stage_recipe(oracle_cfg, (), _score_data()))
    oracles.dir.mkdir(parents=True)
    holder = _hold_claim(oracles.dir / ".seed-0000.lock")
    with oracles.claim(0) as held:
        assert not held  # this process sees the other's claim
    killed_at: list[float] = []

    def kill_when_the_rest_is_done() -> None:
        # oracle 0 is put off while its holder lives: everything else is trained first
        while not list((tmp_path / "cache").glob("method-*/seed-0001")):
            time.sleep(0.1)
        time.sleep(1.0)
        assert oracles.get(0) is None
        os.kill(holder.pid, signal.SIGKILL)
        killed_at.append(time.time())

    watcher = threading.Thread(target=kill_when_the_rest_is_done, daemon=True)
    watcher.start()
    try:
        result = main(["score", "-c", str(TOY), "--n_models", "2", "--progress", "false",
                       "--cache_dir", str(tmp_path / "cache"), "--output_dir", str(tmp_path / "out")])
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.wait()
    watcher.join(5)
    assert killed_at, "the score finished without waiting for the claimed model"
    trained = result["timings"]["trained"]
    assert len(trained) == 1 + 4 + 2 and len(set(trained)) == len(trained)
    assert trained[-1] == f"{oracles.dir.name}/seed-0000"  # taken over from the killed holder, last
    assert (oracles.seed_dir(0) / "model.ckpt").stat().st_mtime > killed_at[0]
    # the score records the code identity of each part, the same digests its cache keys hold
    assert set(result["code"]) == {"original", "oracle", "method"}
    assert "unlearning.methods.finetune" in result["code"]["method"]["module"]["files"]
    recipe = json.loads(next((tmp_path / "cache").glob("method-*/recipe.json")).read_text())
    assert recipe["recipe"]["code"]["module"] == result["code"]["method"]["module"]["digest"]
    assert json.loads((tmp_path / "out" / "finetune" / "score.json").read_text())["code"] == result["code"]


@pytest.mark.slow
def test_an_edited_method_is_retrained_and_nothing_else(tmp_path: Path, user_package: Path) -> None:
    """End to end, in fresh processes as a user reruns: after an edit of the method's source, a
    second score retrains the N method runs only."""
    cfg = _config("configs/toy/unlearn/finetune.yaml", "userpkg.mine.MyFinetune")
    method = tmp_path / "mine.yaml"
    method.write_text(yaml.safe_dump(cfg))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO)]))
    args = [sys.executable, "-m", "unlearning", "score", "-c", str(TOY), "--n_models", "2", "--progress", "false",
            "--method", str(method), "--cache_dir", str(tmp_path / "cache"), "--output_dir", str(tmp_path / "out")]

    def trained() -> list[str]:
        proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return json.loads((tmp_path / "out" / "mine" / "score.json").read_text())["timings"]["trained"]

    assert len(trained()) == 7
    source = user_package / "mine.py"
    source.write_text(source.read_text().replace("loss = F.cross_entropy(self(x), y)", "loss = F.cross_entropy(self(x), y) * 2.0"))
    again = trained()
    assert len(again) == 2 and all(t.startswith("method-") for t in again)


@pytest.mark.slow
def test_two_score_processes_on_one_cache_train_each_model_once(tmp_path: Path) -> None:
    """Two real processes, the same seeds, one cache: every model is trained by exactly one of
    them, and both compute the same score from the shared cache."""
    base = [sys.executable, "-m", "unlearning", "score", "-c", str(TOY), "--n_models", "2", "--progress", "false",
            "--cache_dir", str(tmp_path / "cache"),
            # a longer toy training (about 3 s a model), so that the two processes overlap
            "--recipe_args", '["--trainer.max_epochs", "600"]', "--method_args", '["--trainer.max_epochs", "100"]']
    procs = [subprocess.Popen([*base, "--output_dir", str(tmp_path / f"out{i}")], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=900)
        assert p.returncode == 0, err[-2000:]
    saved = [json.loads((tmp_path / f"out{i}" / "finetune" / "score.json").read_text()) for i in range(2)]
    first, second = (set(s["timings"]["trained"]) for s in saved)
    assert first and second, "one process trained everything: the test did not overlap them"
    assert not first & second
    assert len(first | second) == 1 + 4 + 2 == len(list((tmp_path / "cache").glob("*/seed-*")))
    assert saved[0]["final_score"] == saved[1]["final_score"]
    assert not list((tmp_path / "cache").glob("*/.tmp-*"))
