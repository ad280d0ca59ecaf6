"""The contract between a module and the data module that serves it: what the module trains on.

The :class:`~unlearning.data.UnlearningDataModule` reads, from the LightningModule being trained,
the attributes that :class:`StreamDeclarations` declares, and nothing else. Every module of the
project declares them through its base class, :class:`~unlearning.modules.EvaluatedModule`, and a
method overrides the ones it needs (e.g. ``train_streams = ("retain", "forget")``). A plain
LightningModule that does not derive from :class:`StreamDeclarations` is served the defaults
declared here: the whole training set as one stream.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = ["StreamDeclarations"]


class StreamDeclarations:
    """What a module declares to the data module: its training streams, how they are combined and
    how each is batched.

    A base class with no state of its own: a LightningModule derives from it (as
    :class:`~unlearning.modules.EvaluatedModule` does) and overrides these attributes.
    """

    #: the streams the module trains on: any of ``train`` (retain + forget), ``retain``,
    #: ``forget``, ``val``; the data module hands it exactly these at every step, as a dict
    #: ``{stream: (x, y)}``
    train_streams: ClassVar[tuple[str, ...]] = ("train",)
    #: how streams of different lengths are combined into steps: a Lightning ``CombinedLoader``
    #: mode (``max_size_cycle``: the longest stream drives the epoch and the others cycle;
    #: ``min_size``; ``max_size``)
    stream_mode: ClassVar[str] = "max_size_cycle"

    @property
    def stream_options(self) -> dict[str, dict[str, Any]]:
        """Options of each training stream's loader, ``{stream: {"batch_size": int, "drop_single":
        bool}}`` (e.g. the size of forget requests); none by default. A property, so that a
        module may derive them from its arguments or from the data (read when the training
        loaders are built)."""
        return {}
