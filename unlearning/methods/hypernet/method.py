"""Hypernetwork unlearning: one forward pass of a trained hypernetwork answers a forget request.

The idea (the seed's "Hypernetworks based solution"; amortised unlearning as in UnCLe, Adhikari
et al. 2025, and MetaUnlearn, De Min et al., TMLR 2025, which learn across simulated requests;
the set encoder is the pooling of Set Transformer, Lee et al., ICML 2019). Unlearning by gradient
steps pays the full price for every request. Instead, a :class:`RequestHypernet` is trained once
per original (:class:`HypernetTrainer`, a stage of its own, ahead of any request) on many
simulated requests drawn from the original's training data; a real request then costs one pass
of the frozen original over the request's examples (their features), one forward pass of the
hypernetwork, which emits low-rank deltas for the original's last linear layers, and, optionally,
a few refinement steps.

Losses. The hypernetwork was trained so that the patched model's outputs on a request look like
the original's on unseen data (a 1-D Wasserstein match of the logit-scaled confidence, loss and
entropy) while its outputs elsewhere stay the original's (KL divergence). Refinement steps (the
trainer's ``max_steps``, at least one) continue with the same two terms on the real request,
now through the whole network: ``refine_weight * M(f(x_f), f_0(x_v)) + distill_weight *
KL(f_0(x_v) || f(x_v))``. With ``one_pass`` there are none: the answer is the deltas alone.

Streams: ``forget`` (the request) and ``val`` (the unseen reference, through :meth:`cycle`);
never ``retain`` or ``test``: a request is answered without the training data.

Cost, per request: the forget set's features (one forward pass of the original over it), the
hypernetwork's forward pass, and the refinement steps. The one-time training of the
hypernetwork is not part of it; ``unlearning score`` trains it once per original (cached, see
``stages`` in the score config) and reports its cost separately.

Run-to-run randomness: ``weight_noise`` (Gaussian noise of that share of each patched weight
matrix's standard deviation, added with the deltas) and the seeded order of the refinement
batches. Without either, N runs from one original are identical and the competition's metric
gives them nothing.

Known failure modes: (a) low-rank deltas of the last layers cannot undo what the backbone
memorised: the forget examples' features stay distinctive, and a strong attacker on features
would still tell them; refinement through the whole network is what reaches the backbone.
(b) A request far from the simulated ones (a whole class, when the hypernetwork saw random
subsets; a size outside ``request_fraction``) gets deltas the hypernetwork was never trained
for. (c) The hypernetwork is tied to one original: a new original needs a new hypernetwork,
and the module refuses a mismatched pair.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import torch

from unlearning.methods.hypernet.nets import PatchedTail, weights_digest
from unlearning.methods.hypernet.trainer import load_hypernet
from unlearning.methods.losses import distill_kl, match_unseen
from unlearning.modules.distributed import gather_rows
from unlearning.modules.unlearn import UnlearnModule
from unlearning.nets import build_net

__all__ = ["HypernetUnlearn"]

Batch = tuple[torch.Tensor, torch.Tensor]


class HypernetUnlearn(UnlearnModule):
    """Answer a forget request with a trained hypernetwork's deltas, then refine (module docs).

    Args:
        hypernet: path of a :class:`HypernetTrainer` checkpoint trained for ``original``.
        weight_noise: Gaussian noise added to each patched weight matrix with the deltas, as a
            share of that matrix's standard deviation (per-run randomness).
        apply_deltas: apply the hypernetwork's deltas; ``False`` keeps only the noise and the
            refinement (an ablation: what the hypernetwork itself adds).
        one_pass: answer with the deltas (and noise) alone: no refinement, no optimiser step
            changes a weight (run it with ``max_steps: 1``).
        refine_weight: weight of the match-unseen term in the refinement steps.
        distill_weight: weight of the distillation of the original on val in the refinement steps.
        distill_temperature: temperature of that distillation.
        lr: SGD learning rate of the refinement steps.
        hypernet_spec: the hypernetwork's spec; filled in automatically (reloading).
        patched_layers: layers the hypernetwork patches; filled in automatically (reloading).
        hypernet_digest: digest of the hypernetwork's weights; filled in automatically.
        **kwargs: see :class:`~unlearning.modules.UnlearnModule` (``original`` is required).
    """

    train_streams: ClassVar[tuple[str, ...]] = ("forget",)
    #: its on_train_start writes the hypernetwork's answer into the weights: a resumed fit would do it again
    resumable: ClassVar[bool] = False
    extra_streams: ClassVar[tuple[str, ...]] = ("val",)
    stages: ClassVar[dict[str, str]] = {"hypernet": "unlearning.methods.hypernet.HypernetTrainer"}
    uses_original = True

    def __init__(
        self,
        hypernet: str | None = None,
        weight_noise: float = 0.0,
        apply_deltas: bool = True,
        one_pass: bool = False,
        refine_weight: float = 1.0,
        distill_weight: float = 1.0,
        distill_temperature: float = 2.0,
        lr: float = 1e-3,
        hypernet_spec: dict[str, Any] | None = None,
        patched_layers: int | None = None,
        hypernet_digest: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(lr=lr, **kwargs)
        for name, value in (("weight_noise", weight_noise), ("refine_weight", refine_weight),
                            ("distill_weight", distill_weight)):
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        if hypernet is not None:
            self.hypernet, meta = load_hypernet(hypernet)
            if kwargs.get("original") is not None and meta["original_digest"] != weights_digest(self.original_net):
                raise ValueError(
                    f"hypernetwork {hypernet!r} was trained for another original (weights digest "
                    f"{meta['original_digest']}), not for {kwargs['original']!r} ({weights_digest(self.original_net)})"
                )
            hypernet_spec, patched_layers = meta["hypernet"], int(meta["patched_layers"])
            self.hypernet_cost = dict(meta.get("cost", {}))
        elif hypernet_spec is not None and patched_layers is not None:  # reloading an unlearned checkpoint
            self.hypernet = build_net(hypernet_spec)
            self.hypernet_cost = {}
        else:
            raise ValueError("HypernetUnlearn needs `hypernet`: the path of a HypernetTrainer checkpoint")
        self.hypernet.requires_grad_(False)
        #: which hypernetwork answered the request (its weights' digest), kept in the checkpoint
        self.hparams["hypernet_digest"] = weights_digest(self.hypernet)
        # the unlearned checkpoint stands alone: it rebuilds the hypernetwork from its spec
        self.hparams["hypernet"] = None
        self.hparams["hypernet_spec"], self.hparams["patched_layers"] = hypernet_spec, patched_layers
        self.patched_layers = patched_layers
        self.weight_noise, self.refine_weight, self.apply_deltas = weight_noise, refine_weight, apply_deltas
        self.distill_weight, self.distill_temperature = distill_weight, distill_temperature
        self.one_pass = bool(one_pass)
        if self.one_pass:  # the trainer's one step is a step without gradients (as in SSD)
            self.automatic_optimization = False
        self._val: Iterator[Batch] | None = None

    def train(self, mode: bool = True) -> HypernetUnlearn:
        """The hypernetwork stays in eval mode."""
        super().train(mode)
        self.hypernet.eval()
        return self

    @torch.no_grad()
    def apply_request(self) -> None:
        """Patch the network with the hypernetwork's deltas for the whole forget set (plus the
        weight noise): the one-forward-pass answer to the request."""
        tail = PatchedTail(self.net, self.patched_layers)
        was_training = self.net.training
        self.net.eval()
        hs, ys = [], []
        for x, y in self.stream("forget", batch_size=512, train=False):
            hs.append(tail.features(x).float())
            ys.append(y)
            self.count_images(x.shape[0])
        # under DDP every rank read a shard: the request is all of them, in one order on every rank
        h, y = gather_rows(self, torch.cat(hs)), gather_rows(self, torch.cat(ys))
        logits, inputs = tail.forward(h, return_inputs=True)
        deltas = self.hypernet(h, y, logits, inputs)
        if not self.apply_deltas:
            deltas = [(torch.zeros_like(dw), torch.zeros_like(db)) for dw, db in deltas]
        if self.weight_noise > 0:
            deltas = tail.add_noise(deltas, self.weight_noise)
        if self._trainer is not None and self.trainer.world_size > 1:  # one draw of the noise for all ranks
            deltas = self.trainer.strategy.broadcast([(dw.cpu(), db.cpu()) for dw, db in deltas], src=0)
            deltas = [(dw.to(self.device), db.to(self.device)) for dw, db in deltas]
        tail.merge(deltas)
        self.net.train(was_training)

    def on_train_start(self) -> None:
        """Answer the request with the hypernetwork, then start the val pool for refinement."""
        self.apply_request()
        if not self.one_pass:
            self._val = self.cycle("val")

    def training_step(self, batch: dict[str, Batch], batch_idx: int) -> torch.Tensor | None:
        """A refinement step: match unseen outputs on forget, distil the original on val. With
        ``one_pass``, nothing: an optimiser step without gradients (no weight changes) counts as
        the trainer's step, so that ``max_steps`` and the checkpoint callbacks work as usual."""
        if self.one_pass:
            self.optimizers().step()
            return None
        assert self._val is not None, "on_train_start did not run"
        xf, yf = batch["forget"]
        xv, yv = next(self._val)
        with torch.no_grad():
            teacher_v = self.original_net(xv)
        forget = match_unseen(self(xf), yf, teacher_v, yv)
        distill = distill_kl(self(xv), teacher_v, self.distill_temperature)
        self.log_dict({"train/forget_match": forget.detach(), "train/distill_loss": distill.detach()})
        loss = self.refine_weight * forget + self.distill_weight * distill
        self.log("train/loss", loss.detach(), prog_bar=True)
        return loss
