"""The one-time stage of hypernetwork unlearning: train a :class:`RequestHypernet` for one
original, on simulated forget requests, before any real request arrives."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from lightning.pytorch import Callback

from unlearning.methods.hypernet.nets import PatchedTail, RequestHypernet, weights_digest
from unlearning.methods.losses import distill_kl, match_unseen
from unlearning.metrics.outputs import logit_scaled_confidence
from unlearning.modules.base import EvaluatedModule
from unlearning.modules.checkpoint import META_KEY, read_checkpoint
from unlearning.modules.unlearn import original_network
from unlearning.nets import net_spec

__all__ = ["HypernetTrainer", "load_hypernet"]


def load_hypernet(path: str) -> tuple[RequestHypernet, dict[str, Any]]:
    """The trained hypernetwork of a :class:`HypernetTrainer` checkpoint and its metadata
    (``hypernet`` spec, ``patched_layers``, ``original_digest``, ``cost``).

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: if it is not a hypernetwork checkpoint.
    """
    from unlearning.nets import build_net

    ckpt = read_checkpoint(path)
    meta = ckpt[META_KEY]
    if "hypernet" not in meta:
        raise ValueError(f"checkpoint {str(path)!r} holds no hypernetwork (expected one written by HypernetTrainer)")
    hypernet = build_net(meta["hypernet"])
    prefix = "hypernet."
    hypernet.load_state_dict({k[len(prefix):]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)})
    return hypernet.eval(), dict(meta)


class HypernetTrainer(EvaluatedModule):
    """Train a hypernetwork that unlearns any forget request of one original in a forward pass.

    Requests are simulated: at every step a random subset of the original's training data (the
    ``train`` stream: retain and forget together, so nothing here depends on which examples the
    real forget set holds) of a random size plays the request. The hypernetwork emits deltas for
    the original's last ``patched_layers`` linear layers; the loss asks that the patched model

    * give the request outputs that look like the original's outputs on unseen (val) examples:
      :func:`~unlearning.methods.losses.match_unseen` of the logit-scaled confidence, loss and
      entropy; or, with ``simulated_oracles``, give each request example the logit-scaled
      confidence that models retrained without it give it (the squared error to
      :func:`~unlearning.metrics.memorisation.simulated_oracle_target` of a memorise run's subset
      models, each trained on a random half of the same training data): a target per example
      instead of one for the request as a whole;
    * keep the original's outputs on the rest of the training data (a sample not in the request)
      and on val: ``distill_weight`` times the KL divergence from the original's outputs.

    Only the patched layers' input (the *features*) matters, so the frozen rest of the network
    runs once, at the start, over every training and val example (counted in the cost); the steps
    then cost a few small matrix products each. The data loader of the ``train`` stream only paces
    the steps (``max_steps`` of the trainer sets how many requests are simulated).

    The checkpoint holds the hypernetwork, the original's weights digest (a
    :class:`~unlearning.methods.HypernetUnlearn` refuses a hypernetwork trained for another
    original) and the one-time cost. It is not an unlearned model and is not evaluated as one.

    Args:
        original: path of the original model's checkpoint.
        patched_layers: how many of the original's last linear layers the deltas patch.
        rank: rank of each layer's delta (slots of the hypernetwork).
        hidden: width of the hypernetwork's embeddings.
        request_fraction: ``(low, high)``: each simulated request draws its size uniformly
            between these shares of the training data.
        rest_size: examples of the rest of the training data per step (distillation).
        val_size: val examples per step (the unseen target, and distillation).
        distill_weight: weight of the distillation terms.
        simulated_oracles: a ``memorisation.npz`` of ``unlearning memorise`` on this original's
            training data (with its ``lsc`` and ``val_lsc_mean``): the per-example target above.
            Its subset models' training is part of this stage's one-time cost (not counted by
            this module: report it beside it). ``None``: match unseen data.
        simulated_k: use the first K subset models of ``simulated_oracles`` (``None``: all).
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        net_spec: the original's network spec; filled in automatically (reloading).
        hypernet_spec: the hypernetwork's spec; filled in automatically (reloading).
        original_digest: digest of the original's weights; filled in automatically (reloading).
        mia_seed: see :class:`~unlearning.modules.base.EvaluatedModule`.
    """

    train_streams: ClassVar[tuple[str, ...]] = ("train",)
    extra_streams: ClassVar[tuple[str, ...]] = ("val",)
    evaluated: ClassVar[bool] = False
    #: the scores file is keyed by its content in a score's cache (see ``stage_recipe``)
    content_args: ClassVar[tuple[str, ...]] = ("simulated_oracles",)

    def __init__(
        self,
        original: str | None = None,
        patched_layers: int = 1,
        rank: int = 8,
        hidden: int = 128,
        request_fraction: tuple[float, float] = (0.02, 0.2),
        rest_size: int = 512,
        val_size: int = 512,
        distill_weight: float = 1.0,
        simulated_oracles: str | None = None,
        simulated_k: int | None = None,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        net_spec: dict[str, Any] | None = None,
        hypernet_spec: dict[str, Any] | None = None,
        original_digest: str | None = None,
        mia_seed: int = 0,
    ) -> None:
        from unlearning.nets import build_net

        net, spec, num_classes = original_network(type(self).__name__, original, net_spec)
        super().__init__(num_classes=num_classes, log_distributions=False, mia_seed=mia_seed)
        if original is not None:
            self.num_classes_source = f"the original checkpoint {str(original)!r}"
        lo, hi = (float(v) for v in request_fraction)
        if not 0.0 < lo <= hi < 1.0:
            raise ValueError(f"request_fraction must be (low, high) with 0 < low <= high < 1, got {request_fraction}")
        for name, value in (("rest_size", rest_size), ("val_size", val_size)):
            if value < 2:
                raise ValueError(f"{name} must be >= 2, got {value}")
        if lr <= 0 or distill_weight < 0:
            raise ValueError(f"lr must be > 0 and distill_weight >= 0, got {lr}, {distill_weight}")
        if simulated_k is not None and (isinstance(simulated_k, bool) or not isinstance(simulated_k, int)
                                        or simulated_k < 2):
            raise ValueError(f"simulated_k must be an integer >= 2 (subset models), got {simulated_k!r}")
        self.simulated_oracles, self.simulated_k = simulated_oracles, simulated_k
        self._target: torch.Tensor | None = None
        self.save_hyperparameters(ignore=["original", "net_spec", "hypernet_spec", "original_digest"])
        self.set_net(net.eval().requires_grad_(False), spec)
        self.hparams["net_spec"] = spec
        self.tail = PatchedTail(self.net, patched_layers)
        self.hypernet = build_net(hypernet_spec) if hypernet_spec else RequestHypernet(
            self.tail.shapes, num_classes, rank=rank, hidden=hidden)
        self.original_digest = original_digest or weights_digest(self.net)
        self.hparams["original_digest"] = self.original_digest
        self.patched_layers, self.request_fraction = patched_layers, (lo, hi)
        self.rest_size, self.val_size, self.distill_weight = rest_size, val_size, distill_weight
        self.lr, self.weight_decay = lr, weight_decay
        self._pool: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        self._gen: torch.Generator | None = None

    def train(self, mode: bool = True) -> HypernetTrainer:
        """The original stays in eval mode; only the hypernetwork trains."""
        super().train(mode)
        self.net.eval()
        return self

    def configure_callbacks(self) -> list[Callback]:
        """The cost clock only (there is no classifier output to histogram)."""
        from unlearning.modules.cost import CostClock

        return [CostClock()]

    def configure_optimizers(self) -> Any:
        """AdamW over the hypernetwork's parameters."""
        return torch.optim.AdamW(self.hypernet.parameters(), lr=self.lr, weight_decay=self.weight_decay)

    # ---- features of every example, once -------------------------------------------------
    @torch.no_grad()
    def _features(self, stream: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        hs, ys = [], []
        for x, y in self.stream(stream, batch_size=512, train=False):
            hs.append(self.tail.features(x).float())
            ys.append(y)
            self.count_images(x.shape[0])
        h, y = torch.cat(hs), torch.cat(ys)
        return h, y, self.tail.forward(h).float()

    def on_train_start(self) -> None:
        """Run the frozen original once over the training and val data; set the feature scale."""
        self.net.eval()
        x, _ = next(self.stream("train", batch_size=8, train=False))
        self.tail.check(x)
        self._pool = {name: self._features(name) for name in ("train", "val")}
        if self.simulated_oracles is not None:
            self._target = self._simulated_target()
        if not self.hparams.get("hypernet_spec"):
            h = self._pool["train"][0]
            scale = float(h.norm(dim=1).mean()) / math.sqrt(h.shape[1])
            self.hypernet.feature_scale = max(scale, 1e-6)
            self.hypernet.init_args["feature_scale"] = self.hypernet.feature_scale
            _, inputs = self.tail.forward(h, return_inputs=True)
            self.hypernet.set_input_means([a.mean(0) for a in inputs])
        rank = self.trainer.global_rank if self._trainer is not None else 0
        self._gen = torch.Generator().manual_seed(int(torch.initial_seed()) + 1000003 * rank)

    def _simulated_target(self) -> torch.Tensor:
        """Each training example's target, in the ``train`` pool's order (see ``simulated_oracles``).

        Raises:
            ValueError: when the file lacks the subset models' answers, has fewer than
                ``simulated_k`` models, or does not cover every training example.
        """
        from unlearning.metrics.memorisation import load_simulated_oracles, simulated_oracle_target

        rows = self.trainer.datamodule.stream_source("train")[2].cpu().numpy()
        members, lsc, val_lsc_mean = load_simulated_oracles(str(self.simulated_oracles), rows, self.simulated_k)
        _, yv, zv = self._pool["val"]
        reference = float(logit_scaled_confidence(zv, yv).mean())
        target = simulated_oracle_target(members, lsc, val_lsc_mean, reference)
        return torch.as_tensor(target, dtype=torch.float32, device=self._pool["train"][0].device)

    # ---- one simulated request ------------------------------------------------------------
    def _draw(self, gen: torch.Generator) -> dict[str, torch.Tensor]:
        h, y, z = self._pool["train"]
        n_pool = h.shape[0]
        lo, hi = (max(2, round(f * n_pool)) for f in self.request_fraction)
        n = int(torch.randint(lo, hi + 1, (1,), generator=gen))
        perm = torch.randperm(n_pool, generator=gen).to(h.device)
        req, rest = perm[:n], perm[n : n + self.rest_size]
        hv, yv, zv = self._pool["val"]
        vi = torch.randint(hv.shape[0], (self.val_size,), generator=gen).to(hv.device)
        out = {"h": h[req], "y": y[req], "z": z[req], "h_rest": h[rest], "z_rest": z[rest],
               "h_val": hv[vi], "y_val": yv[vi], "z_val": zv[vi]}
        if self._target is not None:
            out["target"] = self._target[req]
        return out

    def _losses(self, r: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        _, inputs = self.tail.forward(r["h"], return_inputs=True)
        deltas = self.hypernet(r["h"], r["y"], r["z"], inputs)
        patched = self.tail.forward(r["h"], deltas)
        if "target" in r:
            forget = ((logit_scaled_confidence(patched, r["y"]) - r["target"]) ** 2).mean()
        else:
            forget = match_unseen(patched, r["y"], r["z_val"], r["y_val"])
        rest = distill_kl(self.tail.forward(r["h_rest"], deltas), r["z_rest"], 1.0)
        val = distill_kl(self.tail.forward(r["h_val"], deltas), r["z_val"], 1.0)
        loss = forget + self.distill_weight * (rest + val)
        return {"loss": loss, "forget": forget, "rest_kl": rest, "val_kl": val, "patched": patched}

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """One simulated request (the batch only paces the steps)."""
        assert self._gen is not None, "on_train_start did not run"
        out = self._losses(self._draw(self._gen))
        self.log_dict({f"train/{k}": out[k].detach() for k in ("forget", "rest_kl", "val_kl")})
        self.log("train/loss", out["loss"].detach(), prog_bar=True)
        return out["loss"]

    @torch.no_grad()
    def on_train_epoch_end(self) -> None:
        """Log what the hypernetwork does to 4 fixed simulated requests (``hyper/...``): mean
        logit-scaled confidence of the request before and after the patch against the val
        examples', and the distillation gaps."""
        if not self._pool:
            return
        gen = torch.Generator().manual_seed(12345)
        rows = []
        for _ in range(4):
            r = self._draw(gen)
            out = self._losses(r)
            rows.append({
                "request_lsc_original": logit_scaled_confidence(r["z"], r["y"]).mean(),
                "request_lsc_patched": logit_scaled_confidence(out["patched"], r["y"]).mean(),
                "val_lsc": logit_scaled_confidence(r["z_val"], r["y_val"]).mean(),
                "request_acc_patched": (out["patched"].argmax(1) == r["y"]).float().mean(),
                "rest_kl": out["rest_kl"], "val_kl": out["val_kl"],
                **({"request_lsc_target": r["target"].mean()} if "target" in r else {}),
            })
        self.log_dict({f"hyper/{k}": torch.stack([row[k] for row in rows]).mean() for k in rows[0]})

    # ---- not a classifier to evaluate -----------------------------------------------------
    def validation_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        """Nothing: the stage trains no classifier (see :meth:`on_train_epoch_end`)."""

    def on_validation_epoch_end(self) -> None:
        """Nothing to summarise."""

    def test_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        """Nothing: the stage trains no classifier."""

    def on_test_epoch_end(self) -> None:
        """Nothing to summarise."""

    def checkpoint_meta(self) -> dict[str, Any]:
        """The base metadata plus the hypernetwork's spec and what it was trained for."""
        meta = super().checkpoint_meta()
        meta.update(hypernet=net_spec(self.hypernet), patched_layers=self.patched_layers,
                    original_digest=self.original_digest)
        return meta

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Also keep the hypernetwork's spec in the hyperparameters (reloading)."""
        super().on_save_checkpoint(checkpoint)
        checkpoint.setdefault("hyper_parameters", {})["hypernet_spec"] = net_spec(self.hypernet)
