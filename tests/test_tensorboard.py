"""What a user opens in a browser: a real TensorBoard server over two tiny unlearning runs, read
through its HTTP data API (scalars, a histogram, an image, and the HPARAMS view comparing the two
methods by their final metrics, with no placeholder ``hp_metric``)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import quick_args

#: run name -> the method, run on the toy data of configs/toy/unlearn/finetune.yaml
METHODS = {"finetune": "Finetune", "neggrad": "NegGradPlus"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, tiny_toy_checkpoints: dict[str, Path]) -> Path:
    """Two unlearning runs (Finetune and NegGrad+) of the toy original, compared with its oracle."""
    from tests.conftest import REPO
    from unlearning.cli import main

    out = tmp_path_factory.mktemp("tb_runs")
    for name, method in METHODS.items():
        main(["fit", "-c", str(REPO / "configs/toy/unlearn/finetune.yaml"), "--model", method,
              *quick_args(out, name),
              "--model.init_args.original", str(tiny_toy_checkpoints["original"]),
              "--model.init_args.oracle", str(tiny_toy_checkpoints["oracle"])])
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(runs: Path) -> Iterator[str]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", str(runs), "--host", "127.0.0.1",
         "--port", str(port), "--load_fast", "false", "--reload_interval", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if set(_get(url, "/data/runs")) >= set(METHODS):
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"TensorBoard did not serve both runs: {proc.stderr.read() if proc.poll() is not None else 'timeout'}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _get(url: str, path: str, **query: str) -> Any:
    full = f"{url}{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
    with urllib.request.urlopen(full, timeout=30) as r:
        body = r.read()
    return body if r.headers.get_content_type().startswith("image/") else json.loads(body)


def _post(url: str, path: str, payload: dict[str, Any]) -> Any:
    req = urllib.request.Request(f"{url}{path}", data=json.dumps(payload).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def test_scalars_histograms_and_images_are_served(server: str) -> None:
    scalars = _get(server, "/data/plugin/scalars/tags")
    for run in METHODS:
        assert {"val/forget_acc", "val/simple_mia", "val/cost_time_fraction", "epoch"} <= set(scalars[run])
        assert any(tag.startswith("train/") for tag in scalars[run])
        assert not any("hp_metric" in tag for tag in scalars[run])  # no placeholder metric
    points = _get(server, "/data/plugin/scalars/scalars", run="finetune", tag="val/forget_acc")
    assert points and 0.0 <= points[-1][2] <= 1.0
    hist_tags = _get(server, "/data/plugin/histograms/tags")["finetune"]
    assert "val_dist/loss_forget" in hist_tags
    hist = _get(server, "/data/plugin/histograms/histograms", run="finetune", tag="val_dist/loss_forget")
    assert hist and hist[-1][2]  # [wall time, step, buckets]
    image_tags = _get(server, "/data/plugin/images/tags")["finetune"]
    assert "val_dist/forget_vs_test" in image_tags
    images = _get(server, "/data/plugin/images/images", run="finetune", tag="val_dist/forget_vs_test")
    png = _get(server, "/data/plugin/images/individualImage?" + images[-1]["query"].lstrip("?"))
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_hparams_view_compares_the_methods_by_their_final_metrics(server: str) -> None:
    experiment = _post(server, "/data/plugin/hparams/experiment", {"experimentName": ""})
    hparams = {h["name"] for h in experiment["hparamInfos"]}
    metrics = {m["name"]["tag"] for m in experiment["metricInfos"]}
    assert {"method", "model.lr", "data.forget_fraction", "trainer.max_epochs", "seed"} <= hparams
    assert {"val/test_acc", "val/retain_acc", "val/forget_acc", "val/simple_mia", "val/cost_time_fraction"} <= metrics
    assert "hp_metric" not in metrics
    groups = _post(server, "/data/plugin/hparams/session_groups", {
        "experimentName": "", "startIndex": 0, "sliceSize": 100, "colParams": [],
        "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"],
    })["sessionGroups"]
    by_method = {g["hparams"]["method"]: {m["name"]["tag"]: m["value"] for m in g["metricValues"]} for g in groups}
    assert set(by_method) == set(METHODS.values())
    for values in by_method.values():
        assert 0.0 <= values["val/forget_acc"] <= 1.0 and values["val/cost_time_fraction"] > 0
