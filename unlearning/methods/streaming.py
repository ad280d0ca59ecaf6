"""Streaming forget: requests arrive one small batch at a time, and no retain set exists.

The setting (the seed's "you don't have the retain set and only we need to remove samples on the
fly"; "Streaming forgetting", Shen et al., ECAI 2025, for the formal setting; JiT and L2UL,
Foster et al. 2024 and Cha et al. AAAI 2024, for retain-free updates). The model holder has the
trained original, a set of unseen examples (val) and, one at a time, forget requests of a few
examples each. Each request must be handled on arrival, in a bounded number of steps, without
the training data. Nothing but the original, val and the requests so far (what the method chose
to keep of them) is ever read.

Per request (a Lightning training step; the forget stream in batches of ``request_size``, in a
seeded order, is the stream of requests), ``steps_per_request`` SGD steps on

``forget_weight * M(f(x_req), f_0(x_v)) + distill_weight * KL(f_0(x_v) || f(x_v))
+ anchor_weight * sum_i w_i (theta_i - theta0_i)^2 / 2``

* ``M`` (:func:`~unlearning.methods.losses.match_unseen`) moves the request's logit-scaled
  confidence, loss and entropy towards the distribution the original gives unseen (val)
  examples: a one-dimensional Wasserstein distance per statistic, so the request ends up looking
  like a sample of unseen data (a few of its examples misclassified, as an oracle would), not
  all wrong (what gradient ascent or random labels aim at, which over-forgets).
  ``x_req`` is the request plus up to ``replay_size`` examples of earlier requests kept in a
  memory of at most ``memory_size`` (reservoir sampling), so that forgotten examples do not come
  back while later requests are handled ("relapse").
* the distillation of the frozen original :math:`f_0` on a fresh val batch keeps the outputs on
  unseen data, hence test accuracy, where they were;
* the anchor keeps the parameters near the original's, weighted (``anchor="fisher"``) by a
  diagonal Fisher information estimated once on val batches before the first request (EWC), or
  uniformly (``anchor="l2"``), so that accuracy survives many requests.

BatchNorm layers stay in evaluation mode: a request of a few memorised examples is no sample of
the data, and its batch statistics would corrupt the running ones. Hence a request may have any
size, down to one example.

Streams: ``forget`` (the requests) and ``val`` (through :meth:`cycle`); never ``retain`` or
``test``. The union of all requests is the data module's forget set, so ``unlearning score``
scores the result against oracles retrained without it. With ``request_size: null`` the whole
forget set is one request: the same losses without streaming, to measure what streaming costs.

Cost: per request ``steps_per_request`` forward/backward passes of the request plus replay and of
a val batch, and forward passes of the frozen original on val; a one-time Fisher pass over
``fisher_batches`` val batches. Run one epoch (``max_epochs: 1``): a second epoch would replay the
whole stream.

Evaluation over the stream: with a logger attached, :class:`~unlearning.callbacks.StreamEvaluator`
measures after every request the accuracy on everything forgotten so far, on a retain sample and
on test, and the simple MIA (forgotten so far vs test), against the request number, and draws the
curves at the end. It is the framework's evaluation, not the method's: its time is not counted
as cost and the method never sees its data.

Run-to-run randomness: the seeded order of the requests, of the val batches and of the replay
samples.

Measured on the CPU preset (``benchmarks/streaming_cpu.py``, docs/results.md): with the anchor
fixed at the original, each request's examples crept back towards the original's accuracy as later
requests were handled (``anchor_follow`` lets it follow the weights instead); matching the request
together with the replay let the replayed, already-forgotten examples take the unseen sample's
high-loss quantiles, so the request itself barely moved (``match: separate`` matches them apart).

Known failure modes: (a) with few unseen examples per step the target distribution is noisy, so
``M`` pulls each request towards a jittered target; larger val batches help. (b) Without a retain
set, accuracy on retain drifts down over many requests however strong the anchor; watch the
retain curve. (c) Matching the *distribution* of the request's statistics does not choose *which*
examples end up misclassified the way an oracle would; the metric judges examples one by one.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch.nn.modules.batchnorm import _BatchNorm

from unlearning.methods.losses import anchor_penalty, distill_kl, match_unseen
from unlearning.modules.classifier import make_optimizer
from unlearning.modules.unlearn import UnlearnModule

__all__ = ["StreamingForget"]

Batch = tuple[torch.Tensor, torch.Tensor]


class StreamingForget(UnlearnModule):
    """Handle forget requests one at a time, without a retain set (see the module docs).

    Args:
        request_size: examples per request (per device); ``None``: the whole forget set as one
            request.
        steps_per_request: SGD steps spent on each request.
        forget_weight: weight of the match-unseen term on the request.
        distill_weight: weight of the distillation of the original on val.
        distill_temperature: temperature of that distillation.
        anchor: ``fisher`` (EWC-weighted) or ``l2`` pull towards the original's weights.
        anchor_weight: weight of the anchor (the Fisher weights are normalised to mean 1).
        anchor_follow: share of the way the anchor moves to the weights after each request
            (0: the original's; 1: the last request's result).
        fisher_batches: val batches of the one-time Fisher estimate.
        reference_size: val examples whose original outputs, computed once, are the fixed
            unseen target (0: a fresh val batch every step).
        replay_size: examples of earlier requests added to every step (0: no replay).
        match: match the request and the replay to unseen data ``separate``-ly or ``pooled``
            (the first design; see the module docs).
        memory_size: earlier requests' examples kept for replay, at most.
        forget_batch_size: at most this many examples of the request and replay per step, a
            fresh random subset each step (``None``: all).
        val_batch_size: size of the val batches (default: the data module's batch size).
        max_grad_norm: clip every step's gradient norm to this (``None``: no clipping).
        lr: SGD learning rate.
        scheduler: ``none`` (a stream has no known end) or ``cosine``.
        **kwargs: see :class:`~unlearning.modules.UnlearnModule`.
    """

    train_streams: ClassVar[tuple[str, ...]] = ("forget",)
    #: its anchors and Fisher weights are taken from the weights in on_train_start: a resumed fit would do it again
    resumable: ClassVar[bool] = False
    extra_streams: ClassVar[tuple[str, ...]] = ("val",)
    uses_original = True

    def __init__(
        self,
        request_size: int | None = 50,
        steps_per_request: int = 5,
        forget_weight: float = 1.0,
        distill_weight: float = 1.0,
        distill_temperature: float = 2.0,
        anchor: Literal["fisher", "l2"] = "fisher",
        anchor_weight: float = 1.0,
        anchor_follow: float = 0.0,
        fisher_batches: int = 8,
        reference_size: int = 0,
        replay_size: int = 50,
        match: Literal["separate", "pooled"] = "separate",
        memory_size: int = 1000,
        forget_batch_size: int | None = None,
        val_batch_size: int | None = None,
        max_grad_norm: float | None = 10.0,
        lr: float = 0.003,
        scheduler: Literal["cosine", "none"] = "none",
        **kwargs: Any,
    ) -> None:
        super().__init__(lr=lr, scheduler=scheduler, **kwargs)
        if request_size is not None and request_size < 1:
            raise ValueError(f"request_size must be >= 1 or null (the whole forget set), got {request_size}")
        for name, value in (("steps_per_request", steps_per_request), ("fisher_batches", fisher_batches),
                            ("forget_batch_size", forget_batch_size or 1)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        for name, value in (("forget_weight", forget_weight), ("distill_weight", distill_weight),
                            ("anchor_weight", anchor_weight), ("replay_size", replay_size),
                            ("reference_size", reference_size),
                            ("memory_size", memory_size)):
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        if not 0.0 <= anchor_follow <= 1.0:
            raise ValueError(f"anchor_follow must be in [0, 1], got {anchor_follow}")
        if match not in ("separate", "pooled"):
            raise ValueError(f"match must be 'separate' or 'pooled', got {match!r}")
        if anchor not in ("fisher", "l2"):
            raise ValueError(f"anchor must be 'fisher' or 'l2', got {anchor!r}")
        if distill_temperature <= 0:
            raise ValueError(f"distill_temperature must be > 0, got {distill_temperature}")
        self.request_size, self.steps_per_request = request_size, steps_per_request
        self.forget_weight, self.distill_weight, self.distill_temperature = forget_weight, distill_weight, distill_temperature
        self.anchor, self.anchor_weight, self.fisher_batches = anchor, anchor_weight, fisher_batches
        self.reference_size, self.anchor_follow, self.match = reference_size, anchor_follow, match
        self._reference: tuple[torch.Tensor, torch.Tensor] | None = None
        self.replay_size, self.memory_size, self.val_batch_size = replay_size, memory_size, val_batch_size
        self.max_grad_norm, self.forget_batch_size = max_grad_norm, forget_batch_size
        self.automatic_optimization = False
        self._val: Iterator[Batch] | None = None
        self._anchors: list[torch.Tensor] = []
        self._weights: list[torch.Tensor] | None = None
        self._memory: list[torch.Tensor] = []  # [x, y] of kept examples
        self._seen = 0  # examples of earlier requests offered to the memory
        self.requests_done = 0

    @property
    def stream_options(self) -> dict[str, dict[str, Any]]:
        """The forget stream in requests of ``request_size``, none dropped."""
        size = self.request_size
        if size is None and self._trainer is not None:
            size = max(1, int(self.trainer.datamodule.stream_source("forget")[2].numel()))
        return {"forget": {"drop_single": False, **({"batch_size": size} if size else {})}}

    # ---- one-time preparation -------------------------------------------------------------
    def _bn_eval(self) -> None:
        for m in self.net.modules():
            if isinstance(m, _BatchNorm):
                m.eval()

    def _fisher(self) -> list[torch.Tensor]:
        """Diagonal Fisher information of the original's cross-entropy on val batches, normalised
        to mean 1 over all parameters (computed on a copy, outside any DDP gradient hook)."""
        probe = copy.deepcopy(self.original_net).requires_grad_(True).eval()
        params = [p for p in probe.parameters()]
        sums = [torch.zeros_like(p) for p in params]
        n = 0
        for i, (x, y) in enumerate(self.stream("val", batch_size=self.val_batch_size)):
            if i >= self.fisher_batches:
                break
            grads = torch.autograd.grad(F.cross_entropy(probe(x), y), params)
            for s, g in zip(sums, grads):
                s += g.detach() ** 2
            n += 1
            self.count_images(x.shape[0])
        total = sum(float(s.sum()) for s in sums)
        count = sum(s.numel() for s in sums)
        scale = count / total if total > 0 else 1.0
        return [s * scale for s in sums]

    def _unseen_reference(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The original's logits and the labels of the first ``reference_size`` val examples
        (``None`` when ``reference_size`` is 0)."""
        if self.reference_size == 0:
            return None
        logits, labels, n = [], [], 0
        with torch.no_grad():
            for x, y in self.stream("val", batch_size=self.val_batch_size):
                x, y = x[: self.reference_size - n], y[: self.reference_size - n]
                logits.append(self.original_net(x).float())
                labels.append(y)
                n += x.shape[0]
                self.count_images(x.shape[0])
                if n >= self.reference_size:
                    break
        return torch.cat(logits), torch.cat(labels)

    def on_train_start(self) -> None:
        """Freeze BatchNorm, remember the original's weights, estimate the Fisher weights and the
        unseen reference."""
        self._val = self.cycle("val", batch_size=self.val_batch_size)
        self._anchors = [p.detach().clone() for p in self.net.parameters()]
        self._weights = self._fisher() if self.anchor == "fisher" else None
        self._reference = self._unseen_reference()
        self._memory, self._seen, self.requests_done = [], 0, 0

    # ---- memory of earlier requests -------------------------------------------------------
    def _replay(self) -> Batch | None:
        if self.replay_size == 0 or not self._memory:
            return None
        x, y = self._memory
        k = min(self.replay_size, x.shape[0])
        pick = torch.randperm(x.shape[0], device=x.device)[:k]
        return x[pick], y[pick]

    def _remember(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Reservoir sampling: every example of every request is kept with equal probability."""
        if self.memory_size == 0:
            return
        if not self._memory:
            self._memory = [x[: self.memory_size].clone(), y[: self.memory_size].clone()]
            self._seen = x.shape[0]
            return
        mx, my = self._memory
        for i in range(x.shape[0]):
            self._seen += 1
            if mx.shape[0] < self.memory_size:
                mx, my = torch.cat([mx, x[i : i + 1]]), torch.cat([my, y[i : i + 1]])
            else:
                j = int(torch.randint(self._seen, (1,)))
                if j < self.memory_size:
                    mx[j], my[j] = x[i], y[i]
        self._memory = [mx, my]

    # ---- one request ----------------------------------------------------------------------
    def training_step(self, batch: dict[str, Batch], batch_idx: int) -> None:
        """Handle one request in ``steps_per_request`` steps, then keep it in the memory."""
        assert self._val is not None, "on_train_start did not run"
        opt = self.optimizers()
        sched = self.lr_schedulers()
        self._bn_eval()
        xq, yq = batch["forget"]
        new = torch.ones(xq.shape[0], dtype=torch.bool, device=xq.device)  # the request's examples, not replay
        replay = self._replay()
        if replay is not None:
            xq, yq = torch.cat([xq, replay[0]]), torch.cat([yq, replay[1]])
            new = torch.cat([new, torch.zeros(replay[1].shape[0], dtype=torch.bool, device=new.device)])
        params = list(self.net.parameters())
        for _ in range(self.steps_per_request):
            xv, yv = next(self._val)
            with torch.no_grad():
                teacher_v = self.original_net(xv)
            xs, ys, fresh = xq, yq, new
            if self.forget_batch_size is not None and xq.shape[0] > self.forget_batch_size:
                pick = torch.randperm(xq.shape[0], device=xq.device)[: self.forget_batch_size]
                xs, ys, fresh = xq[pick], yq[pick], new[pick]
            logits_q, logits_v = self(xs), self(xv)
            target = self._reference if self._reference is not None else (teacher_v, yv)
            forget = self._match(logits_q, ys, fresh, target)
            distill = distill_kl(logits_v, teacher_v, self.distill_temperature)
            anchor = anchor_penalty(params, self._anchors, self._weights)
            loss = self.forget_weight * forget + self.distill_weight * distill + self.anchor_weight * anchor
            opt.zero_grad()
            self.manual_backward(loss)
            if self.max_grad_norm is not None:
                self.clip_gradients(opt, gradient_clip_val=self.max_grad_norm, gradient_clip_algorithm="norm")
            opt.step()
            if sched is not None:
                sched.step()
        self._remember(*batch["forget"])
        if self.anchor_follow > 0:
            with torch.no_grad():
                for a, p in zip(self._anchors, params):
                    a.lerp_(p.detach(), self.anchor_follow)
        self.requests_done += 1
        self.log_dict({"train/forget_match": forget.detach(), "train/distill_loss": distill.detach(),
                       "train/anchor": anchor.detach()})
        self.log("train/requests", float(self.requests_done), prog_bar=True)

    def _match(self, logits: torch.Tensor, labels: torch.Tensor, fresh: torch.Tensor,
               target: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """The match-unseen term: on the request and the replayed examples together (``pooled``),
        or on each separately, weighted by size (``separate``)."""
        if self.match == "pooled" or bool(fresh.all()) or not bool(fresh.any()):
            return match_unseen(logits, labels, *target)
        return sum(m.float().mean() * match_unseen(logits[m], labels[m], *target) for m in (fresh, ~fresh))

    def configure_optimizers(self) -> Any:
        """SGD, optionally with a cosine schedule over all the steps of the stream."""
        return make_optimizer(self, self.net.parameters(), self.lr, self.momentum, self.weight_decay, self.scheduler,
                              steps_per_batch=self.steps_per_request)

    def configure_callbacks(self) -> list[Any]:
        """The base callbacks and the per-request evaluation."""
        from unlearning.callbacks.streaming import StreamEvaluator

        return [*super().configure_callbacks(), StreamEvaluator()]
