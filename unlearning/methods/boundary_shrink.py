"""Boundary shrink: relabel each forget example with its nearest wrong class, found by an
adversarial step on the original, and fine-tune on those labels (Chen et al., CVPR 2023)."""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
import torch.nn.functional as F

from unlearning.modules.unlearn import UnlearnModule

__all__ = ["BoundaryShrink"]


class BoundaryShrink(UnlearnModule):
    """For each forget batch, one FGSM step on the frozen original moves every example towards the
    nearest decision boundary; the class the original predicts there is the example's *nearest
    wrong class*, and the model is fine-tuned on the clean forget examples with those labels.

    Chen, Gao, Liu, Peng, Wang, "Boundary Unlearning: Rapid Forgetting of Deep Networks via
    Shifting the Decision Boundary", CVPR 2023 (arXiv 2303.11570; the authors' code is a zip
    linked from the paper, mirrored as ``TY-LEE-KR/Boundary-Unlearning-Code``). Published setting
    (CIFAR-10 with the All-CNN of the authors' code, and VGGFace2, forgetting a whole class; no
    ResNet-18 or random-forgetting recipe): untargeted FGSM on the cross-entropy of the true label, bound 0.1
    in [0, 1] pixel units (clipped to the valid range); fine-tuning with SGD lr 1e-5, momentum
    0.9, no weight decay, batch 64, 10 epochs over the forget set, which is the only data it
    reads.

    Here the step is taken in the network's input space (the normalised images), of size
    ``epsilon`` per input unit and not clipped to a pixel range, which the module does not know:
    under CIFAR-10's normalisation (std about 0.2) the published 0.1 of the pixel range is about
    0.5. Where the step does not cross the boundary (the original still predicts the true class
    there), the label is the original's most likely *other* class at the stepped input, so a new
    label is never the true one (the authors keep the true label in that case). Each step puts the
    batch twice through the frozen original (the FGSM gradient and the prediction at the stepped
    input); both passes are counted in the cost.

    Args:
        epsilon: size of the FGSM step in input units.
        lr: learning rate of the fine-tuning.
        momentum: SGD momentum.
        weight_decay: SGD weight decay.
        scheduler: ``none`` (as published) or ``cosine``.
        **kwargs: see :class:`~unlearning.modules.UnlearnModule`.

    Raises:
        ValueError: if ``epsilon`` is not positive.
    """

    train_streams: ClassVar[tuple[str, ...]] = ("forget",)
    uses_original: ClassVar[bool] = True

    def __init__(
        self,
        epsilon: float = 0.5,
        lr: float = 1e-5,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        scheduler: Literal["cosine", "none"] = "none",
        **kwargs,
    ) -> None:
        super().__init__(lr=lr, momentum=momentum, weight_decay=weight_decay, scheduler=scheduler, **kwargs)
        if not epsilon > 0:
            raise ValueError(f"epsilon must be > 0 (the FGSM step in input units), got {epsilon}")
        self.epsilon = epsilon

    def nearest_wrong_labels(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The FGSM step on the frozen original and the nearest wrong class of each example.

        Args:
            x: a batch of (forget) inputs.
            y: their true labels.

        Returns:
            ``(labels, x_adv, adv_logits)``: the new labels (never ``y``), the stepped inputs and
            the original's logits there. Counts both passes through the original in the cost.
        """
        x_adv = x.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            loss = F.cross_entropy(self.original_net(self.prepare_input(x_adv)), y)
            (grad,) = torch.autograd.grad(loss, x_adv)
        x_adv = (x_adv + self.epsilon * grad.sign()).detach()
        with torch.no_grad():
            adv_logits = self.original_net(self.prepare_input(x_adv))
        self.count_images(2 * x.shape[0])
        masked = adv_logits.scatter(1, y.view(-1, 1), float("-inf"))
        return masked.argmax(dim=1), x_adv, adv_logits

    def training_step(self, batch: dict[str, tuple[torch.Tensor, torch.Tensor]], batch_idx: int) -> torch.Tensor:
        """Cross-entropy of the clean forget batch against its nearest wrong classes."""
        x, y = batch["forget"]
        labels, _, adv_logits = self.nearest_wrong_labels(x, y)
        loss = F.cross_entropy(self(x), labels)
        crossed = (adv_logits.argmax(dim=1) != y).float().mean()
        self.log_dict({"train/loss": loss, "train/attack_success": crossed}, prog_bar=True)
        return loss
