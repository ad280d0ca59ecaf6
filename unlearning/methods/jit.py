"""JiT: zero-shot unlearning by smoothing the network around each forget example (Lipschitz
regularisation; Foster, Fogarty, Schoepf, Öztireli and Brintrup, 2024)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch

from unlearning.modules.unlearn import UnlearnModule

__all__ = ["JiT"]


class JiT(UnlearnModule):
    """Just in Time unlearning: lower the local Lipschitz constant of the network at the forget
    examples, reading nothing but the forget set.

    Foster, Fogarty, Schoepf, Öztireli, Brintrup, "Zero-Shot Machine Unlearning at Scale via
    Lipschitz Regularization", arXiv 2402.01401, 2024 (code: ``jwf40/Zeroshot-Unlearning-At-Scale``).

    For each forget batch ``x``, ``n_samples`` perturbed copies ``x'_n = clamp(x + xi_n)`` with
    ``xi_n ~ N(0, sigma^2 I)`` in the normalised input space, clamped to the batch's minimum and
    maximum; one SGD step on

        ``L = (1/N) sum_n sum_i ||f(x_i) - f(x'_{n,i})||_2 / ||x_i - x'_{n,i}||_2``

    (summed over the batch, as published), the outputs of the copies taken without gradient. A
    memorised forget example sits on a sharp spike of the function; flattening the function
    around it erodes what is specific to that example while leaving the broad class structure.
    One pass over the forget set (``max_epochs: 1``); no retain or held-out data.

    Published recipe (CIFAR-10 random forgetting of 100 images): plain SGD (no momentum, no
    weight decay, constant rate), forget batches of 128, one pass, ``n_samples`` 25; VGG16: sigma
    0.01, lr 3e-4; ViT: sigma 0.5, lr 0.1. The authors give no ResNet-18 setting; the full-scale
    config uses the VGG16 (convolutional) values.

    The published code leaves the network in training mode, so its dropout (and BatchNorm batch
    statistics) add their own noise to the ratio and every forward pass overwrites BatchNorm's
    running statistics with the forget batches'. Here the network runs in eval mode by default
    (``train_mode=False``): the ratio measures the input perturbation alone. Cost: every forward
    pass is counted (1 + ``n_samples`` images per forget example), the copies' included.

    With the copies' outputs detached, the first-order part of the gradient cancels in
    expectation (the noise is symmetric); what remains pulls ``f(x)`` towards the outputs
    around it, a second-order effect. With a small sigma a step is then mostly noise: on the
    small CNN of the synthetic test problem sigma 0.01 did not lower the estimate, sigma 1 did.

    Args:
        sigma: standard deviation of the input noise, > 0 (published 0.01 for VGG16).
        n_samples: perturbed copies per forget example, >= 1 (published 25).
        lr: learning rate (published 3e-4 for VGG16).
        train_mode: run BatchNorm and dropout in training mode, as the published code does.
        momentum: SGD momentum (published 0).
        weight_decay: SGD weight decay (published 0).
        scheduler: learning-rate schedule (published ``none``: constant).
        **kwargs: see :class:`~unlearning.modules.UnlearnModule`.

    Raises:
        ValueError: on a non-positive ``sigma`` or an ``n_samples`` below 1.
    """

    train_streams: ClassVar[tuple[str, ...]] = ("forget",)

    def __init__(
        self,
        sigma: float = 0.01,
        n_samples: int = 25,
        lr: float = 3e-4,
        train_mode: bool = False,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        scheduler: Literal["cosine", "none"] = "none",
        **kwargs: Any,
    ) -> None:
        super().__init__(lr=lr, momentum=momentum, weight_decay=weight_decay, scheduler=scheduler, **kwargs)
        if sigma <= 0:
            raise ValueError(f"sigma must be > 0, got {sigma}")
        if int(n_samples) != n_samples or n_samples < 1:
            raise ValueError(f"n_samples must be an integer >= 1, got {n_samples}")
        self.sigma, self.n_samples, self.train_mode = float(sigma), int(n_samples), bool(train_mode)

    def perturb(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """``x`` plus Gaussian noise of standard deviation ``sigma``, clamped to the batch's
        minimum and maximum (as published)."""
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype) * self.sigma
        return (x + noise).clamp(x.min(), x.max())

    def lipschitz_ratios(self, x: torch.Tensor, n_samples: int | None = None,
                         generator: torch.Generator | None = None) -> torch.Tensor:
        """Per example, the mean over ``n_samples`` perturbed copies of
        ``||f(x) - f(x')|| / ||x - x'||``: an estimate of the local Lipschitz constant.

        The gradient flows through ``f(x)`` only (the copies' outputs are taken without it).
        Runs through ``self`` (counted as training images while a fit trains).

        Returns:
            A tensor of shape ``(batch,)``.
        """
        n = self.n_samples if n_samples is None else n_samples
        out = self(x).flatten(1)
        flat = x.flatten(1)
        total = torch.zeros(x.shape[0], device=x.device, dtype=out.dtype)
        for _ in range(n):
            x2 = self.perturb(x, generator)
            with torch.no_grad():
                out2 = self(x2).flatten(1)
            in_norm = torch.linalg.vector_norm(flat - x2.flatten(1), dim=1).clamp_min(1e-12)
            total = total + torch.linalg.vector_norm(out - out2, dim=1) / in_norm
        return total / n

    def training_step(self, batch: dict[str, tuple[torch.Tensor, torch.Tensor]], batch_idx: int) -> torch.Tensor:
        """One step on the summed Lipschitz ratios of a forget batch (labels unused)."""
        x, _ = batch["forget"]
        if not self.train_mode:
            self.net.eval()  # the module stays in training mode: forward still counts the images
        ratios = self.lipschitz_ratios(x)
        loss = ratios.sum()
        self.log_dict({"train/lipschitz": ratios.mean().detach(), "train/loss": loss.detach()}, prog_bar=True)
        return loss
