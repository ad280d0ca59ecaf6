"""Loss-free (label-free) Selective Synaptic Dampening (Foster, Schoepf and Brintrup, 2024)."""

from __future__ import annotations

import torch

from unlearning.methods.ssd import SSD

__all__ = ["LFSSD"]


class LFSSD(SSD):
    """Selective Synaptic Dampening with importances that need no label.

    Foster, Schoepf, Brintrup, "Loss-Free Machine Unlearning", ICLR 2024 Tiny Paper,
    arXiv 2402.19308. SSD (:class:`~unlearning.methods.SSD`) with the diagonal Fisher replaced by
    a Memory-Aware-Synapses-style importance: the mean over batches of the absolute gradient of
    the batch's mean squared l2 norm of the network's output (logits), ``mean_i ||f(x_i)||^2``.
    Labels never enter: the same inputs give the same dampening whatever their labels.
    Selection (``I_Df > alpha * I_D``) and dampening (``min(lambda * I_D / I_Df, 1)``) are SSD's.

    Published recipe (CIFAR-10, ResNet-18): SSD's, alpha 10 and lambda 1, batch size 128 for
    both importance passes (over the forget set and over the whole training set), network in
    eval mode, no gradient step; the JiT repository runs it as a baseline with alpha 3.5. The
    paper speaks of the l2 norm of the output; the authors' code differentiates its square and
    accumulates ``|grad|``, as here. The label-free ratio ``I_Df / I_D`` spreads far less than
    SSD's (on a 10% random forget set it rarely exceeds 4), so alpha needs to be small there.

    Args:
        **kwargs: see :class:`~unlearning.methods.SSD` (``alpha``, ``dampening``,
            ``fisher_subset``, ``fisher_batch_size``) and :class:`~unlearning.modules.UnlearnModule`.
    """

    def importance_loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The batch's mean squared l2 norm of the output; ``y`` is ignored."""
        return logits.pow(2).sum(dim=1).mean()

    def gradient_importance(self, grad: torch.Tensor) -> torch.Tensor:
        """One batch's contribution: the gradient's magnitude."""
        return grad.abs()
