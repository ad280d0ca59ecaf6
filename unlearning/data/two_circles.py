"""The seed notes' 2-D toy problem: two discs of radius 2 centred at (-5, 5) and (5, 5)."""

from __future__ import annotations

import math

import torch

from unlearning.data.base import UnlearningDataModule
from unlearning.data.sources import SourceArrays

__all__ = ["TwoCircles", "two_circles_points"]


def two_circles_points(
    n: int,
    generator: torch.Generator,
    centers: tuple[tuple[float, float], ...] = ((-5.0, 5.0), (5.0, 5.0)),
    radius: float = 2.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` points drawn uniformly from discs (class ``i`` in disc ``i``), balanced classes."""
    y = torch.arange(n) % len(centers)
    r = radius * torch.sqrt(torch.rand(n, generator=generator))
    theta = 2 * math.pi * torch.rand(n, generator=generator)
    c = torch.tensor(centers)[y]
    x = c + torch.stack([r * torch.cos(theta), r * torch.sin(theta)], dim=1)
    return x.float(), y.long()


class TwoCircles(UnlearningDataModule):
    """Two classes, uniform in discs of radius 2 at (-5, 5) and (5, 5), plus optional outliers.

    Same split and stream contract as the image data modules; inputs are float ``(x, y)`` points.

    Args:
        num_train: training points (split into retain and forget).
        num_heldout: held-out points (split into val and test).
        num_outliers: extra training points placed near the other class or on the boundary
            (labelled with their own class), the points that move a decision boundary most.
        radius: radius of the discs.
        data_seed: seed of the points.
        **kwargs: see :class:`UnlearningDataModule`.
    """

    def __init__(
        self,
        num_train: int = 200,
        num_heldout: int = 200,
        num_outliers: int = 0,
        radius: float = 2.0,
        data_seed: int = 0,
        **kwargs,
    ) -> None:
        kwargs.setdefault("batch_size", 32)
        kwargs.setdefault("retain_eval_size", None)
        super().__init__(**kwargs)
        if num_outliers < 0 or num_outliers > num_train:
            raise ValueError(f"num_outliers must be in [0, num_train={num_train}], got {num_outliers}")
        g = torch.Generator().manual_seed(data_seed)
        x, y = two_circles_points(num_train - num_outliers, g, radius=radius)
        if num_outliers:
            oy = torch.arange(num_outliers) % 2
            # between the discs, leaning towards the other class's disc
            ox = torch.stack(
                [torch.where(oy == 0, 1.0, -1.0) * (1.0 + 2.5 * torch.rand(num_outliers, generator=g)),
                 5.0 + 2.0 * (torch.rand(num_outliers, generator=g) - 0.5)],
                dim=1,
            )
            x, y = torch.cat([x, ox]), torch.cat([y, oy])
        hx, hy = two_circles_points(num_heldout, g, radius=radius)
        self._arrays = SourceArrays(x, y, hx, hy, ("left", "right"))

    def load_arrays(self) -> SourceArrays:
        """Return the points."""
        return self._arrays
