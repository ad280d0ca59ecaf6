"""Selective Synaptic Dampening: shrink the weights far more important to the forget set than to
the whole training set, with no gradient step (Foster, Schoepf and Brintrup, AAAI 2024)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from unlearning.modules.unlearn import UnlearnModule

__all__ = ["SSD", "dampen_", "ssd_selection"]


def ssd_selection(d_importance: dict[str, torch.Tensor], forget_importance: dict[str, torch.Tensor],
                  alpha: float) -> dict[str, torch.Tensor]:
    """The parameters SSD selects: those whose forget importance exceeds ``alpha`` times their
    importance on the whole training set D.

    Args:
        d_importance: ``{parameter name: importance on D}``.
        forget_importance: ``{parameter name: importance on the forget set}`` (same keys, shapes).
        alpha: the selection weighting (> 0); a larger one selects fewer parameters.

    Returns:
        ``{parameter name: bool tensor}``, ``True`` where the entry is selected.
    """
    return {n: forget_importance[n] > alpha * d for n, d in d_importance.items()}


def dampen_(params: dict[str, torch.Tensor], d_importance: dict[str, torch.Tensor],
            forget_importance: dict[str, torch.Tensor], alpha: float, dampening: float) -> dict[str, torch.Tensor]:
    """Dampen the selected parameters in place: each selected entry is multiplied by
    ``min(dampening * d_importance / forget_importance, 1)``, so it keeps its sign and never grows.

    Args:
        params: ``{name: parameter}`` to change in place.
        d_importance: importances on the whole training set D, per parameter.
        forget_importance: importances on the forget set, per parameter.
        alpha: the selection weighting (see :func:`ssd_selection`).
        dampening: the dampening constant lambda (> 0).

    Returns:
        The selection masks (:func:`ssd_selection`).
    """
    selected = ssd_selection(d_importance, forget_importance, alpha)
    with torch.no_grad():
        for name, p in params.items():
            mask = selected[name]
            if mask.any():
                factor = (dampening * d_importance[name][mask] / forget_importance[name][mask]).clamp(max=1.0)
                p[mask] = p[mask] * factor.to(p.dtype)
    return selected


class SSD(UnlearnModule):
    """Selective Synaptic Dampening: no training, one dampening of the weights that matter far
    more to the forget set than to the whole training set.

    Foster, Schoepf, Brintrup, "Fast Machine Unlearning Without Retraining Through Selective
    Synaptic Dampening", AAAI 2024, arXiv 2308.07707 (code: ``if-loops/selective-synaptic-dampening``).

    1. Importances (once, in :meth:`on_train_start`): the diagonal Fisher estimate, the mean over
       batches of the squared gradient of the batch's mean cross-entropy, per parameter, with the
       network in eval mode and unaugmented inputs in the streams' fixed order; once over the
       forget set D_f and once over the whole training set D = retain + forget (the ``train``
       stream).
    2. Selection: the entries with ``I_Df > alpha * I_D``.
    3. Dampening: each selected entry is multiplied by ``min(dampening * I_D / I_Df, 1)``
       (:func:`dampen_`): it keeps its sign and shrinks, never grows. Nothing else changes.

    Published recipe (CIFAR-10, ResNet-18, random forgetting of 100 images): alpha (selection
    weighting) 10, lambda (dampening constant) 1, batch size 128 for both importance passes, no
    gradient step. (The JiT repository's SSD baseline uses alpha 3.5 for ResNet-18 and ViT.)
    Where a share ``p`` of D is forgotten, D's importance contains the forget set's, so
    ``I_Df / I_D`` of most entries stays near or below ``1 / p``: with a 10% forget set, alpha
    must be well below 10 to select much.

    The training loop itself does nothing (``training_step`` takes an optimiser step without
    gradients, which changes no weight): run one epoch of one batch (``max_epochs: 1``,
    ``limit_train_batches: 1``). The importance passes are the
    whole cost: each image through them is counted (``count_images``; eval mode is not counted
    by ``forward``). ``fisher_subset`` bounds the pass over D to that many batches, drawn at random
    (seeded by the run) among its fixed-order batches: the published method reads all of D, which
    can cost more than a budget allows; a subset also gives runs from one original some spread.

    ``resumable = False``: :meth:`on_train_start` changes the weights; resumed, it would dampen
    them again.

    Args:
        alpha: selection weighting, > 0 (published 10).
        dampening: dampening constant lambda, > 0 (published 1).
        fisher_subset: batches of D read for its importances (``None``: all of D, as published).
        fisher_batch_size: batch size of both importance passes (published 128).
        **kwargs: see :class:`~unlearning.modules.UnlearnModule` (its optimiser never gets a gradient).

    Raises:
        ValueError: on a non-positive ``alpha``, ``dampening``, ``fisher_subset`` or
            ``fisher_batch_size``.
    """

    train_streams: ClassVar[tuple[str, ...]] = ("forget",)
    #: D (retain + forget) is read once, for its importances
    extra_streams: ClassVar[tuple[str, ...]] = ("train",)
    resumable: ClassVar[bool] = False

    def __init__(
        self,
        alpha: float = 10.0,
        dampening: float = 1.0,
        fisher_subset: int | None = None,
        fisher_batch_size: int = 128,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if alpha <= 0:
            raise ValueError(f"alpha must be > 0, got {alpha}")
        if dampening <= 0:
            raise ValueError(f"dampening must be > 0, got {dampening}")
        if fisher_subset is not None and (int(fisher_subset) != fisher_subset or fisher_subset < 1):
            raise ValueError(f"fisher_subset must be an integer >= 1 or null, got {fisher_subset}")
        if int(fisher_batch_size) != fisher_batch_size or fisher_batch_size < 1:
            raise ValueError(f"fisher_batch_size must be an integer >= 1, got {fisher_batch_size}")
        self.alpha, self.dampening = float(alpha), float(dampening)
        self.fisher_subset = None if fisher_subset is None else int(fisher_subset)
        self.fisher_batch_size = int(fisher_batch_size)
        self.automatic_optimization = False  # nothing is trained: no gradient ever reaches the optimiser
        #: ``{"train": {name: importance}, "forget": {...}}``, set by :meth:`on_train_start`
        self.importances: dict[str, dict[str, torch.Tensor]] = {}
        #: ``{parameter name: bool mask}`` of the dampened entries, set by :meth:`on_train_start`
        self.selected: dict[str, torch.Tensor] = {}

    # ---- importances ----------------------------------------------------------------------
    def importance_loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The loss whose gradient measures importance: the batch's mean cross-entropy."""
        return F.cross_entropy(logits, y)

    def gradient_importance(self, grad: torch.Tensor) -> torch.Tensor:
        """One batch's contribution to an importance: the squared gradient (diagonal Fisher)."""
        return grad.pow(2)

    def importance(self, stream: str, max_batches: int | None = None) -> dict[str, torch.Tensor]:
        """Mean over batches of :meth:`gradient_importance` of :meth:`importance_loss`'s gradient,
        per parameter of ``self.net``, over a declared stream (eval mode, unaugmented, fixed order;
        averaged over DDP ranks, each of which reads its shard).

        Args:
            stream: ``train`` (D) or ``forget``.
            max_batches: read only this many batches, drawn at random among the stream's
                (``None``: all of them).
        """
        params = dict(self.net.named_parameters())
        sums = {n: torch.zeros_like(p) for n, p in params.items()}
        loader = self._declared_loader(stream, False, self.fisher_batch_size)
        chosen = None
        if max_batches is not None and max_batches < len(loader):
            chosen = set(torch.randperm(len(loader))[:max_batches].tolist())
        was_training = self.net.training
        self.net.eval()
        n_batches = 0
        try:
            for i, (x, y) in enumerate(loader):
                if chosen is not None and i not in chosen:
                    continue
                x, y = x.to(self.device), y.to(self.device)
                loss = self.importance_loss(self.net(self.prepare_input(x)), y)
                grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
                for s, g in zip(sums.values(), grads):
                    if g is not None:
                        s += self.gradient_importance(g.detach())
                n_batches += 1
                self.count_images(x.shape[0])  # eval mode: not counted by forward
        finally:
            self.net.train(was_training)
        out = {n: s / max(1, n_batches) for n, s in sums.items()}
        if self._trainer is not None and self.trainer.world_size > 1:
            out = {n: self.trainer.strategy.reduce(v, reduce_op="mean") for n, v in out.items()}
        return out

    def on_train_start(self) -> None:
        """Compute the importances on D_f and D, then dampen the selected weights."""
        forget = self.importance("forget")
        full = self.importance("train", self.fisher_subset)
        self.importances = {"train": full, "forget": forget}
        self.selected = dampen_(dict(self.net.named_parameters()), full, forget, self.alpha, self.dampening)
        n_selected = sum(int(m.sum()) for m in self.selected.values())
        total = sum(m.numel() for m in self.selected.values())
        self.log_dict({"train/selected": float(n_selected), "train/selected_fraction": n_selected / max(1, total)},
                      prog_bar=True)

    def training_step(self, batch: dict[str, tuple[torch.Tensor, torch.Tensor]], batch_idx: int) -> None:
        """Nothing to learn: the dampening in :meth:`on_train_start` is the whole method. An
        optimiser step without gradients (it changes no weight) still counts as the trainer's
        step, so that ``max_steps`` and the checkpoint callbacks work as for any method."""
        self.optimizers().step()
