"""EU-k: exact unlearning of the last k layers (Goel et al., 2022)."""

from __future__ import annotations

from typing import ClassVar

from unlearning.methods.cf_k import CFk

__all__ = ["EUk"]


class EUk(CFk):
    """Exact unlearning of the last k layers: re-initialise the last ``k`` layers and train them on
    the retain set, everything before them frozen.

    Goel, Prabhu, Sanyal, Lim, Torr, Kumaraguru, "Towards Adversarial Evaluation of Inexact
    Machine Unlearning" (arXiv 2201.06640, 2022; code ``shash42/Evaluating-Inexact-Unlearning``,
    ``retrain_lastK``). Published setting (CIFAR-10, ResNet-20, not ResNet-18; the paper has no
    ResNet-18 recipe): the original's training recipe, SGD momentum 0.9, weight decay 5e-5,
    batch 64, gradient norm clipped at 10, learning rate 0.1 cosine-annealed with warm restarts
    (``T_0`` 1 epoch, doubling, floor 0.005), 62 epochs, k in {1, 3, 5, 7}. Here the schedule is
    the framework's cosine over the run (``scheduler``), with the configs' budgets.

    The layers, and how the front of the network stays frozen, are CF-k's (:class:`CFk`, from
    :func:`~unlearning.methods.cf_k.weight_layers`: each convolution or linear layer with the
    norm layers after it, in forward order). At the start of training every module of the last
    ``k`` layers is re-drawn with its own ``reset_parameters()`` (PyTorch's default
    initialisation; norm layers back to weight 1, bias 0 and fresh running statistics), from the
    run's seeded generator, so that each seed starts from another draw. If the front were
    trained on the retain set only, this would be exact unlearning; here it was trained on the
    forget set too, so the forget set's trace in the frozen features stays.

    Args:
        k: number of layers, counted from the output, that are re-initialised and retrained.
        **kwargs: see :class:`~unlearning.modules.UnlearnModule`.

    Raises:
        ValueError: if ``k`` is not between 1 and the network's number of layers.
        TypeError: if a module of the last ``k`` layers has no ``reset_parameters()``.
    """

    #: its on_train_start re-initialises the last k layers: a resumed fit would do it again
    resumable: ClassVar[bool] = False

    def __init__(self, k: int = 3, **kwargs) -> None:
        super().__init__(k=k, **kwargs)
        for m in self.trainable_layers:
            if not callable(getattr(m, "reset_parameters", None)):
                raise TypeError(f"EUk cannot re-initialise a {type(m).__name__} layer: "
                                "expected a module with reset_parameters()")

    def on_train_start(self) -> None:
        """Re-initialise the last ``k`` layers."""
        for m in self.trainable_layers:
            m.reset_parameters()
