"""A new unlearning algorithm in a few lines: subclass UnlearnModule.

Run it through the CLI by class path (from the repository root):

    python -m unlearning fit -c configs/cpu/unlearn/finetune.yaml \
        --data.init_args.root ../shared/data/cifar10-jpeg \
        --model examples.custom_method.ForgetEntropy --model.init_args.beta 0.5

Evaluation against the oracle, TensorBoard logging, seeding, cost accounting and checkpoints come
from the base class.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from unlearning.modules import UnlearnModule


class ForgetEntropy(UnlearnModule):
    """Cross-entropy on retain while raising the prediction entropy on forget, so forgotten
    examples look as uncertain as unseen ones.

    Args:
        beta: weight of the forget entropy term.
        **kwargs: see :class:`~unlearning.modules.UnlearnModule`.
    """

    train_streams = ("retain", "forget")

    def __init__(self, beta: float = 0.5, **kwargs) -> None:
        super().__init__(**kwargs)
        self.beta = beta

    def training_step(self, batch: dict[str, tuple[torch.Tensor, torch.Tensor]], batch_idx: int) -> torch.Tensor:
        (xr, yr), (xf, _) = batch["retain"], batch["forget"]
        retain_loss = F.cross_entropy(self(xr), yr)
        log_p = F.log_softmax(self(xf), dim=1)
        entropy = -(log_p.exp() * log_p).sum(1).mean()
        self.log_dict({"train/retain_loss": retain_loss, "train/forget_entropy": entropy}, prog_bar=True)
        return retain_loss - self.beta * entropy
