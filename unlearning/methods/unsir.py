"""UNSIR: error-maximising noise, then impair and repair (Tarun et al., IEEE TNNLS 2023)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from unlearning.modules.unlearn import UnlearnModule

__all__ = ["UNSIR"]


class UNSIR(UnlearnModule):
    """Learn noise that the original model gets as wrong as possible for the forget labels, train
    on retain batches mixed with that noise (impair), then on retain alone (repair).

    Tarun, Chundawat, Mandal, Kankanhalli, "Fast Yet Effective Machine Unlearning", IEEE
    Transactions on Neural Networks and Learning Systems, 2023 (arXiv 2111.08947; code
    ``vikram2000b/Fast-Machine-Unlearning``). Published setting (CIFAR-10, ResNet-18, forgetting
    whole classes): per forgotten class, a batch of 256 noise images drawn from N(0, 1) in the
    normalised input space, optimised by Adam (lr 0.1) for 5 x 8 = 40 steps to minimise
    ``-CE(f(noise), class) + 0.1 * mean_i ||noise_i||^2``; impair: one epoch, Adam lr 0.02, batch
    256, over a retain subset (1,000 images per retained class) mixed with copies of the noise
    (20 batches per forgotten class, labelled with the class); repair: one epoch, Adam lr 0.01,
    over the retain subset alone.

    Noise per forget example's class. The forget set here is a random share of the training set,
    with every class in it, so there is no forgotten class to make noise for. The noise never
    looks at an example's pixels (it starts from Gaussian noise and only the label enters its
    objective), so noise "for a forget example" is noise for its label: per-example noise would be
    per-class noise with one image per forget example. The noise's labels are therefore drawn from
    the forget set's labels, without replacement (``noise_size`` of them, at most one per forget
    example), which gives each class noise in proportion to its share of the forget set.
    (Noise that started from each forget image instead would make an adversarial example of it
    with its true label: training on those is adversarial training on the forget set, which fits
    it more firmly rather than impairing it.)

    Here the frozen model is the original in eval mode (the authors' notebook leaves BatchNorm in
    training mode while the noise is learnt); the whole retain set is used rather than a subset
    (limit the steps with the trainer); each impair step appends ``noise_per_batch`` noise images
    (sampled from the pool) to the retain batch. The first ``impair_epochs`` epochs impair, the
    rest of the run (the trainer's ``max_epochs``) repairs, with one Adam throughout (the
    authors start a new one for the repair). The noise pre-pass is counted in the cost
    (``noise_steps`` passes of the noise through the frozen model); the frozen model's
    cross-entropy on the noise at its first and last step is kept in :attr:`noise_loss`.

    Args:
        noise_size: number of noise images learnt (at most the forget set's size).
        noise_steps: Adam steps of the noise optimisation.
        noise_lr: learning rate of the noise optimisation.
        noise_l2: weight of the noise's squared l2 norm (per image, averaged) in its objective.
        noise_per_batch: noise images appended to each retain batch while impairing.
        impair_epochs: epochs of the impair phase; the remaining epochs repair.
        lr: learning rate (Adam) of the impair phase.
        repair_lr: learning rate (Adam) of the repair phase.
        weight_decay: Adam's weight decay (0 as published).
        **kwargs: see :class:`~unlearning.modules.UnlearnModule` (``momentum`` and ``scheduler``
            are unused: Adam at a constant rate per phase).

    Raises:
        ValueError: on a non-positive count, rate or step number, or a negative ``noise_l2``.
    """

    train_streams: ClassVar[tuple[str, ...]] = ("retain",)
    #: the forget labels are read once, to label the noise
    extra_streams: ClassVar[tuple[str, ...]] = ("forget",)
    #: its on_train_start learns the noise, which the checkpoint does not keep: a resumed fit
    #: would learn other noise (from the half-trained weights)
    resumable: ClassVar[bool] = False
    #: noise images per forward pass while the noise is learnt (memory, not the result)
    noise_chunk: ClassVar[int] = 256

    def __init__(
        self,
        noise_size: int = 2560,
        noise_steps: int = 40,
        noise_lr: float = 0.1,
        noise_l2: float = 0.1,
        noise_per_batch: int = 64,
        impair_epochs: int = 1,
        lr: float = 0.02,
        repair_lr: float = 0.01,
        weight_decay: float = 0.0,
        **kwargs,
    ) -> None:
        super().__init__(lr=lr, weight_decay=weight_decay, **kwargs)
        for name, value in (("noise_size", noise_size), ("noise_steps", noise_steps),
                            ("noise_per_batch", noise_per_batch), ("impair_epochs", impair_epochs)):
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value}")
        if noise_lr <= 0 or repair_lr <= 0:
            raise ValueError(f"noise_lr and repair_lr must be > 0, got noise_lr={noise_lr}, repair_lr={repair_lr}")
        if noise_l2 < 0:
            raise ValueError(f"noise_l2 must be >= 0, got {noise_l2}")
        self.noise_size, self.noise_steps, self.noise_lr, self.noise_l2 = noise_size, noise_steps, noise_lr, noise_l2
        self.noise_per_batch, self.impair_epochs, self.repair_lr = noise_per_batch, impair_epochs, repair_lr
        #: the learnt noise and its labels (set by on_train_start; not part of the checkpoint)
        self.noise: torch.Tensor | None = None
        self.noise_labels: torch.Tensor | None = None
        #: the frozen model's mean cross-entropy on the noise at the first and the last noise step
        self.noise_loss: dict[str, float] = {}

    # ---- the noise ------------------------------------------------------------------------
    def _noise_labels(self) -> tuple[torch.Tensor, tuple[int, ...]]:
        """Up to ``noise_size`` labels drawn from the forget set's without replacement, and the
        input shape."""
        labels, shape = [], None
        for x, y in self.stream("forget", train=False):
            labels.append(y)
            shape = tuple(x.shape[1:])
        if shape is None:
            raise ValueError(f"{type(self).__name__} needs a non-empty forget set to label its noise")
        pool = torch.cat(labels)
        return pool[torch.randperm(pool.numel(), device=pool.device)[: self.noise_size]], shape

    def learn_noise(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Error-maximising noise for the forget labels under the current network, frozen (eval
        mode, no weight gradients): Adam steps on ``-CE(f(noise), labels) + noise_l2 * mean_i
        ||noise_i||^2``. Counts the images through the network in the cost, and records the
        network's mean cross-entropy on the noise at the first and the last step in
        :attr:`noise_loss` (``before``, ``after``).

        Returns:
            ``(noise, labels)``.
        """
        labels, shape = self._noise_labels()
        n = labels.numel()
        noise = torch.randn((n, *shape), device=self.device, requires_grad=True)
        opt = torch.optim.Adam([noise], lr=self.noise_lr)
        was_training = self.net.training
        grads = [p.requires_grad for p in self.net.parameters()]
        self.net.eval().requires_grad_(False)
        try:
            for step in range(self.noise_steps):
                opt.zero_grad()
                ce_sum = 0.0
                for i in range(0, n, self.noise_chunk):
                    part, part_y = noise[i : i + self.noise_chunk], labels[i : i + self.noise_chunk]
                    ce = F.cross_entropy(self.net(self.prepare_input(part)), part_y, reduction="none")
                    objective = (-ce + self.noise_l2 * part.pow(2).flatten(1).sum(1)).sum() / n
                    objective.backward()
                    ce_sum += float(ce.detach().sum())
                opt.step()
                self.count_images(n)
                self.noise_loss["before" if step == 0 else "after"] = ce_sum / n
        finally:
            self.net.train(was_training)
            for p, g in zip(self.net.parameters(), grads):
                p.requires_grad_(g)
        self.noise_loss.setdefault("after", self.noise_loss["before"])
        return noise.detach(), labels

    def on_train_start(self) -> None:
        """Learn the noise (once, before any step)."""
        self.noise, self.noise_labels = self.learn_noise()

    # ---- impair and repair ----------------------------------------------------------------
    def impairing(self) -> bool:
        """Whether the current epoch belongs to the impair phase."""
        return self.current_epoch < self.impair_epochs

    def configure_optimizers(self) -> Any:
        """Adam at ``lr`` for the impair epochs, then at ``repair_lr``."""
        opt = torch.optim.Adam(self.net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        factor = self.repair_lr / self.lr
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda epoch: 1.0 if epoch < self.impair_epochs else factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}

    def training_step(self, batch: dict[str, tuple[torch.Tensor, torch.Tensor]], batch_idx: int) -> torch.Tensor:
        """Impair: CE on the retain batch with noise appended. Repair: CE on the retain batch."""
        x, y = batch["retain"]
        if self.impairing():
            if self.noise is None or self.noise_labels is None:
                raise RuntimeError("UNSIR's noise is missing: on_train_start did not run")
            pick = torch.randint(0, self.noise.shape[0], (self.noise_per_batch,), device=self.noise.device)
            x = torch.cat([x, self.noise[pick].to(x.dtype)])
            y = torch.cat([y, self.noise_labels[pick].to(y.device)])
        loss = F.cross_entropy(self(x), y)
        if self.impairing():  # with the frozen model's loss on the noise it learnt
            self.log_dict({"train/impair_loss": loss, "train/noise_loss": self.noise_loss["after"]}, prog_bar=True)
        else:
            self.log_dict({"train/repair_loss": loss}, prog_bar=True)
        return loss
