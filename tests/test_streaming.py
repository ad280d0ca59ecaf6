"""Streaming forget: requests are the forget set in seeded chunks, each handled on arrival, the
curves are logged against the request number, BatchNorm stays frozen, the memory is bounded."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from torch.nn.modules.batchnorm import _BatchNorm

from tests.synthetic import NUM_FORGET, datamodule, trainer
from unlearning.methods import StreamingForget

SETTINGS = {"request_size": 30, "steps_per_request": 2, "replay_size": 30, "lr": 0.003}


class _Requests(StreamingForget):
    """Records the examples of every request it receives (rows of the images, as tuples)."""

    def training_step(self, batch, batch_idx):
        self.received.append([tuple(r.tolist()) for r in batch["forget"][0].flatten(1)[:, :24]])
        return super().training_step(batch, batch_idx)


def _run(original: Path, tmp: Path, seed: int = 0, logger: bool = False, **kw) -> StreamingForget:
    L.seed_everything(seed)
    module = _Requests(original=str(original), log_distributions=False, **{**SETTINGS, **kw})
    module.received = []
    log = CSVLogger(tmp, name="stream", version=0) if logger else False
    trainer(tmp, 1, logger=log, enable_checkpointing=False, limit_val_batches=0).fit(module, datamodule())
    return module


def _forget_rows() -> set[tuple]:
    dm = datamodule()
    x, _, idx = dm.stream_source("forget")
    return {tuple(r.tolist()) for r in dm.eval_transform(x[idx]).flatten(1)[:, :24]}


def test_requests_are_the_forget_set_in_seeded_chunks(synthetic_models: dict[str, Path], tmp_path: Path) -> None:
    a = _run(synthetic_models["original"], tmp_path, seed=0)
    b = _run(synthetic_models["original"], tmp_path, seed=0)
    c = _run(synthetic_models["original"], tmp_path, seed=1)
    assert len(a.received) == NUM_FORGET // 30 == a.requests_done
    assert all(len(r) == 30 for r in a.received)
    flat = [row for r in a.received for row in r]
    assert len(set(flat)) == len(flat) == NUM_FORGET and set(flat) == _forget_rows()  # each example once
    assert a.received == b.received and a.received != c.received  # the order is the seed's


def test_one_request_is_the_whole_forget_set(synthetic_models: dict[str, Path], tmp_path: Path) -> None:
    m = _run(synthetic_models["original"], tmp_path, request_size=None, steps_per_request=3, replay_size=0,
             forget_batch_size=40)
    assert len(m.received) == 1 and len(m.received[0]) == NUM_FORGET
    # 3 steps of 40 forget examples and a val batch of 64; the Fisher pass reads 8 val batches of
    # 64 at most, here all 400 val examples
    assert m.cost["images_seen"] == 3 * (40 + 64) + 400


def test_a_final_request_of_one_example_is_not_dropped(synthetic_models: dict[str, Path], tmp_path: Path) -> None:
    m = _run(synthetic_models["original"], tmp_path, request_size=NUM_FORGET - 1, steps_per_request=1)
    assert [len(r) for r in m.received] == [NUM_FORGET - 1, 1]


def test_batchnorm_stays_frozen_and_memory_is_bounded(synthetic_models: dict[str, Path], tmp_path: Path) -> None:
    m = _run(synthetic_models["original"], tmp_path, memory_size=50)
    before = torch.load(synthetic_models["original"], weights_only=True)["state_dict"]
    for name, mod in m.net.named_modules():
        if isinstance(mod, _BatchNorm):
            torch.testing.assert_close(mod.running_mean, before[f"net.{name}.running_mean"])
            torch.testing.assert_close(mod.running_var, before[f"net.{name}.running_var"])
    x, y = m._memory
    assert x.shape[0] == y.shape[0] == 50
    forget = _forget_rows()
    assert all(tuple(r.tolist()) in forget for r in x.flatten(1)[:, :24])  # it keeps only what it was asked to forget


def test_curves_against_the_request_number(synthetic_models: dict[str, Path], tmp_path: Path) -> None:
    _run(synthetic_models["original"], tmp_path, logger=True, oracle=str(synthetic_models["oracle"]))
    out = tmp_path / "stream" / "version_0"
    rows = [r for r in csv.DictReader((out / "metrics.csv").open()) if r.get("stream/forgotten")]
    by_step = {int(r["step"]): r for r in rows}
    n_requests = NUM_FORGET // 30
    assert sorted(by_step) == list(range(n_requests + 1))  # before the first request, then after each
    assert [float(by_step[k]["stream/forgotten"]) for k in range(n_requests + 1)] == [30.0 * k for k in range(n_requests + 1)]
    for key in ("stream/forgotten_acc", "stream/retain_acc", "stream/test_acc", "stream/simple_mia",
                "stream/oracle_forgotten_acc", "stream/oracle_test_acc"):
        assert by_step[n_requests][key] != "", key
    # before the first request the "forgotten" accuracy is the original's on the whole forget set (memorised)
    assert float(by_step[0]["stream/forgotten_acc"]) > 0.95
    history = json.loads((out / "stream_curves.json").read_text())
    assert len(history) == n_requests + 1 and (out / "stream_curves.png").stat().st_size > 10_000
    # the curves measure the model that was trained: the last point is the final model's test accuracy
    assert history[-1]["test_acc"] == pytest.approx(float(by_step[n_requests]["stream/test_acc"]))


def test_bad_arguments_are_clear_errors(synthetic_models: dict[str, Path]) -> None:
    original = str(synthetic_models["original"])
    with pytest.raises(ValueError, match="request_size must be >= 1 or null"):
        StreamingForget(original=original, request_size=0)
    with pytest.raises(ValueError, match="anchor must be 'fisher' or 'l2', got 'ewc'"):
        StreamingForget(original=original, anchor="ewc")


def test_the_anchor_follows_the_weights_after_each_request(synthetic_models: dict[str, Path], tmp_path: Path) -> None:
    fixed = _run(synthetic_models["original"], tmp_path / "f", anchor_follow=0.0)
    follow = _run(synthetic_models["original"], tmp_path / "m", anchor_follow=1.0)
    original = torch.load(synthetic_models["original"], weights_only=True)["state_dict"]
    names = [n for n, _ in fixed.net.named_parameters()]
    for name, a in zip(names, fixed._anchors):  # fixed: the original's weights, whatever the stream did
        torch.testing.assert_close(a, original[f"net.{name}"])
    for a, p in zip(follow._anchors, follow.net.parameters()):  # following: the weights after the last request
        torch.testing.assert_close(a, p.detach())
    assert any(not torch.equal(a, original[f"net.{n}"]) for n, a in zip(names, follow._anchors))  # it moved


def test_the_request_and_the_replay_are_matched_to_unseen_data_separately(synthetic_models: dict[str, Path]) -> None:
    unseen = torch.zeros(256, 3)
    unseen[:128, 0] = unseen[128:, 1] = 2.0  # unseen data: half right (label 0), half wrong
    target = (unseen, torch.zeros(256, dtype=torch.long))
    start = torch.zeros(40, 3)
    start[:20, 0] = 6.0  # the new request: confidently right (memorised)
    start[20:, 1] = 6.0  # replayed examples: already forgotten, confidently wrong
    fresh, labels = torch.arange(40) < 20, torch.zeros(40, dtype=torch.long)
    right = {}
    for match in ("separate", "pooled"):
        m = StreamingForget(original=str(synthetic_models["original"]), match=match)
        logits = start.clone().requires_grad_(True)
        opt = torch.optim.SGD([logits], lr=1.0)
        for _ in range(300):  # the term's own optimum, on free logits
            opt.zero_grad()
            m._match(logits, labels, fresh, target).backward()
            opt.step()
        right[match] = [(logits[part].argmax(1) == 0).float().mean().item() for part in (fresh, ~fresh)]
    # separately, the request and the replay each end like unseen data (half right); pooled, the
    # replayed examples take the unseen sample's wrong half and the request stays all right
    assert right["separate"] == [0.5, 0.5] and right["pooled"] == [1.0, 0.0], right


def test_a_fixed_unseen_reference_is_computed_once_and_counted(synthetic_models: dict[str, Path], tmp_path: Path) -> None:
    m = _run(synthetic_models["original"], tmp_path, reference_size=100)
    logits, labels = m._reference
    assert logits.shape[0] == labels.shape[0] == 100 and not logits.requires_grad
    plain = _run(synthetic_models["original"], tmp_path / "p")
    assert plain._reference is None
    assert m.cost["images_seen"] - plain.cost["images_seen"] == 100


def test_bad_new_arguments_are_clear_errors(synthetic_models: dict[str, Path]) -> None:
    original = str(synthetic_models["original"])
    with pytest.raises(ValueError, match=r"anchor_follow must be in \[0, 1\], got 1.5"):
        StreamingForget(original=original, anchor_follow=1.5)
    with pytest.raises(ValueError, match="match must be 'separate' or 'pooled', got 'union'"):
        StreamingForget(original=original, match="union")
    with pytest.raises(ValueError, match="reference_size must be >= 0, got -1"):
        StreamingForget(original=original, reference_size=-1)
