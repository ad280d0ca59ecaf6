"""What an exact resume needs beyond Lightning's checkpoint: the random number generators.

Lightning restores the weights, optimisers, schedulers and loop counters of a resumed fit, but
not the global generators that augmentation, dropout and random labels draw from. A fit resumed
from the checkpoint of epoch ``k`` would then draw its later epochs from the generators as seeded
at the start, not as they stood after epoch ``k``, and end elsewhere than the uninterrupted run.
Every checkpoint of an :class:`~unlearning.modules.EvaluatedModule` stores the states, and a
resumed fit puts them back (the shuffling of the training streams is seeded by epoch,
:class:`~unlearning.data.TensorLoader`'s ``epoch`` argument, so it needs no state). Why by hand: Lightning's
own collector is private (``lightning.fabric.utilities.seed._collect_rng_states``), and its states
hold a numpy array that ``torch.load(weights_only=True)`` refuses; these are tensors and lists.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

__all__ = ["rng_states", "set_rng_states"]


def rng_states() -> dict[str, Any]:
    """The states of Python's, numpy's and torch's global generators (CPU and every CUDA device),
    in types that a ``weights_only`` load accepts."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    states: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss), float(gauss)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Put back what :func:`rng_states` returned (a part it lacks is left as it is)."""
    if "python" in states:
        version, internal, gauss = states["python"]
        random.setstate((version, tuple(internal), gauss))
    if "numpy" in states:
        kind, keys, pos, has_gauss, gauss = states["numpy"]
        np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    if "torch" in states:
        torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
