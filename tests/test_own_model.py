"""docs/own_model.md ("Unlearn your own model") runs as written: every ``bash`` and ``python``
block of the page, in order, in an empty folder beside the repository's ``configs/``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from unlearning.modules.checkpoint import load_net

PAGE = REPO / "docs" / "own_model.md"
BLOCK = re.compile(r"^```(bash|python)\n(.*?)^```$", re.S | re.M)


def page_blocks() -> list[tuple[str, str]]:
    """The page's ``(language, code)`` blocks, in order."""
    return BLOCK.findall(PAGE.read_text())


def test_page_has_the_whole_flow() -> None:
    code = "\n".join(c for _, c in page_blocks())
    for step in ("torch.save(model.state_dict()", "unlearning import", "unlearning fit", "unlearning score"):
        assert step in code, step


def run_page(tmp_path: Path, upto: str | None = None) -> str:
    """Run the page's blocks in order in ``tmp_path`` (those before the first that contains
    ``upto``, if given); return what they printed."""
    (tmp_path / "configs").symlink_to(REPO / "configs")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    bin_dir = Path(sys.executable).parent  # the `unlearning` script of this interpreter's installation
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    outputs = []
    for lang, code in page_blocks():
        if upto is not None and upto in code:
            break
        cmd = ["bash", "-euo", "pipefail", "-c", code] if lang == "bash" else [sys.executable, "-c", code]
        res = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, f"{lang} block failed:\n{code}\n--- stderr:\n{res.stderr[-3000:]}"
        outputs.append(res.stdout)
    return "".join(outputs)


def check_import_and_method(tmp_path: Path, printed: str) -> None:
    own = tmp_path / "runs" / "own"
    accs = dict(re.findall(r"(train|retain|forget|val|test) acc ([0-9.]+)", printed))
    assert set(accs) == {"train", "retain", "forget", "val", "test"}, printed
    assert float(accs["train"]) > 0.9  # the page's model learnt its training set: an original worth unlearning
    assert "hint:" not in printed
    _, meta = load_net(own / "original.ckpt")
    assert meta["net"]["class_path"].endswith("TorchvisionNet") and meta["num_classes"] == 4
    _, method_meta = load_net(own / "finetune" / "checkpoints" / "last.ckpt")
    assert method_meta["module"].endswith("Finetune") and method_meta["net"] == meta["net"]


def test_page_up_to_the_score_runs(tmp_path: Path) -> None:
    """The page's model, import and method (about 40 s); the score is run by the slow test."""
    printed = run_page(tmp_path, upto="unlearning score")
    check_import_and_method(tmp_path, printed)
    assert not (tmp_path / "runs" / "own" / "oracle.yaml").exists()  # the score's block did not run


@pytest.mark.slow
def test_page_commands_run(tmp_path: Path) -> None:
    """Every block of the page, the score included (about two minutes on 2 cores)."""
    printed = run_page(tmp_path)
    check_import_and_method(tmp_path, printed)
    score = json.loads((tmp_path / "runs" / "own" / "score" / "finetune" / "score.json").read_text())
    assert score["n_models"] == 4 and "forgetting_quality" in score
