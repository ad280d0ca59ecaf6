"""Unlearning algorithms, one file each, all subclasses of :class:`UnlearnModule`."""

__all__: list[str] = []
