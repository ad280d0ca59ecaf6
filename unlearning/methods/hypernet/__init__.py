"""Hypernetwork (amortised) unlearning: a network trained once per original answers each forget
request with one forward pass."""

from unlearning.methods.hypernet.method import HypernetUnlearn
from unlearning.methods.hypernet.nets import PatchedTail, RequestHypernet, weights_digest
from unlearning.methods.hypernet.trainer import HypernetTrainer, load_hypernet

__all__ = ["HypernetTrainer", "HypernetUnlearn", "PatchedTail", "RequestHypernet", "load_hypernet", "weights_digest"]
