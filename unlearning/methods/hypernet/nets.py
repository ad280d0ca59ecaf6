"""The hypernetwork's plain ``nn.Module``s: which layers of a network it patches, and the network
that turns a forget request into low-rank weight deltas for them."""

from __future__ import annotations

import hashlib
import math

import torch
import torch.nn.functional as F
from torch import nn

from unlearning.metrics.outputs import attack_features
from unlearning.nets.base import Net

__all__ = ["Deltas", "PatchedTail", "RequestHypernet", "weights_digest"]

#: per patched layer: (weight delta ``(out, in)``, bias delta ``(out,)``)
Deltas = list[tuple[torch.Tensor, torch.Tensor]]


def weights_digest(net: nn.Module) -> str:
    """sha256 (16 hex digits) of a network's parameters and buffers: which original a
    hypernetwork was trained for."""
    h = hashlib.sha256()
    for name, t in sorted(net.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


class PatchedTail:
    """The last ``num_layers`` linear layers of a network and whatever follows them: the part a
    hypernetwork patches, and its input (the *features*, computed once by the frozen rest).

    With ``num_layers = 1`` the tail is the network's last ``nn.Linear`` (any torchvision-style
    classifier); with more, those linear layers must be the end of one ``nn.Sequential`` (the
    project's ``SmallCNN`` and ``MLP`` heads). The split is checked numerically on a probe batch:
    the tail applied to the captured features must give the network's output.

    Args:
        net: the network (not copied: the tail's layers are the network's own).
        num_layers: how many of its last linear layers to patch.

    Raises:
        ValueError: if the network has too few linear layers or they cannot be split off.
    """

    def __init__(self, net: nn.Module, num_layers: int = 1) -> None:
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        linears = [(n, m) for n, m in net.named_modules() if isinstance(m, nn.Linear)]
        if len(linears) < num_layers:
            raise ValueError(f"{type(net).__name__} has {len(linears)} linear layer(s), cannot patch {num_layers}: "
                             "expected patched_layers <= that number (1 for a network with one linear head, "
                             "e.g. a torchvision or timm model)")
        self.net = net
        last_name = linears[-1][0]
        if num_layers == 1:
            self.modules: list[nn.Module] = [linears[-1][1]]
            self.entry = linears[-1][1]
        else:
            parent_name = last_name.rpartition(".")[0]
            parent = net.get_submodule(parent_name) if parent_name else net
            children = list(parent.children()) if isinstance(parent, nn.Sequential) else []
            inner = [c for c in children if isinstance(c, nn.Linear)]
            if len(inner) < num_layers:
                raise ValueError(
                    f"cannot patch the last {num_layers} linear layers of {type(net).__name__}: they must end one nn.Sequential"
                )
            start = children.index(inner[-num_layers])
            self.modules = children[start:]
            self.entry = children[start]
        self.linears = [m for m in self.modules if isinstance(m, nn.Linear)]
        self.shapes = [(m.out_features, m.in_features) for m in self.linears]

    @property
    def in_features(self) -> int:
        """Width of the features (the input of the first patched layer)."""
        return self.shapes[0][1]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The tail's input for a batch of network inputs (a forward pass of the network)."""
        captured: list[torch.Tensor] = []
        hook = self.entry.register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
        try:
            self.net(x)
        finally:
            hook.remove()
        return captured[0].flatten(1)

    def forward(self, h: torch.Tensor, deltas: Deltas | None = None, return_inputs: bool = False):
        """The tail on features ``h``, with each linear layer's weights plus its delta.

        Returns:
            The logits; with ``return_inputs``, also the input of every patched linear layer.
        """
        inputs = []
        k = 0
        for m in self.modules:
            if isinstance(m, nn.Linear):
                inputs.append(h)
                w, b = m.weight, m.bias
                if deltas is not None:
                    dw, db = deltas[k]
                    w = w + dw.to(w.dtype)
                    b = (b + db.to(b.dtype)) if b is not None else db.to(w.dtype)
                h = F.linear(h, w, b)
                k += 1
            else:
                h = m(h)
        return (h, inputs) if return_inputs else h

    def check(self, x: torch.Tensor) -> None:
        """Raise ``ValueError`` if the tail on the captured features does not reproduce the
        network's output on ``x``."""
        with torch.no_grad():
            full = self.net(x)
            part = self.forward(self.features(x))
        if not torch.allclose(full, part, atol=1e-4, rtol=1e-4):
            raise ValueError(
                f"the last layers of {type(self.net).__name__} cannot be split off: applying them to their input "
                "does not give the network's output (does the forward pass do more after them?)"
            )

    @torch.no_grad()
    def add_noise(self, deltas: Deltas, share: float, generator: torch.Generator | None = None) -> Deltas:
        """``deltas`` plus Gaussian noise on each weight matrix, of ``share`` times the standard
        deviation of the layer's weights (biases unchanged): the run-to-run randomness of a
        one-pass answer."""
        return [(dw + share * m.weight.std() * torch.randn(dw.shape, generator=generator, dtype=dw.dtype,
                                                           device=dw.device), db)
                for (dw, db), m in zip(deltas, self.linears)]

    @torch.no_grad()
    def merge(self, deltas: Deltas) -> None:
        """Add ``deltas`` to the network's weights in place (the unlearned model)."""
        for m, (dw, db) in zip(self.linears, deltas):
            m.weight.add_(dw.to(m.weight.dtype))
            if m.bias is not None:
                m.bias.add_(db.to(m.bias.dtype))


class RequestHypernet(Net):
    """A forget request in, low-rank weight deltas for the patched layers out.

    Each example of the request is a token: its features (the patched tail's input, scaled by the
    fixed ``feature_scale``), its one-hot label and the original's output statistics on it
    (logit-scaled confidence, loss, entropy, as :func:`~unlearning.metrics.attack_features`). A
    shared MLP embeds the tokens; their mean (with ``log n``) is the request's context. ``rank``
    learned queries attend over the tokens (the pooling of a Set Transformer's PMA block), so that
    each of ``rank`` slots summarises a group of the request's examples. Per patched layer and
    slot ``j``, the delta is ``u_j v_j^T``: ``v_j`` is the attention-weighted mean of the
    examples' inputs to that layer (normalised), so the change acts where the request's examples
    lie, and ``u_j`` comes from an MLP on the slot and the context. Both act on the deviation of a
    layer's input from its mean over the training data (``input_mean_k`` buffers, set by the
    trainer), so an average example is left alone. A bias delta comes from the context. The output layers start at zero: an untrained hypernetwork leaves the model as it is.

    The whole map is permutation invariant and takes requests of any size.

    Args:
        shapes: ``(out, in)`` of each patched linear layer, first to last.
        num_classes: classes of the network.
        rank: number of slots, the rank of each layer's delta.
        hidden: width of the embeddings.
        feature_scale: the features are divided by this (their typical norm over the training
            set divided by ``sqrt(in)``, set by the trainer), so tokens are of order one.
    """

    def __init__(
        self,
        shapes: list[list[int]] | list[tuple[int, int]],
        num_classes: int = 10,
        rank: int = 8,
        hidden: int = 128,
        feature_scale: float = 1.0,
    ) -> None:
        super().__init__()
        shapes = [tuple(int(v) for v in s) for s in shapes]
        if not shapes or any(len(s) != 2 or min(s) < 1 for s in shapes):
            raise ValueError(f"shapes must be a non-empty list of (out, in) pairs, got {shapes}")
        if rank < 1 or hidden < 1 or feature_scale <= 0:
            raise ValueError(f"rank and hidden must be >= 1 and feature_scale > 0, got {rank}, {hidden}, {feature_scale}")
        self._record(shapes=[list(s) for s in shapes], num_classes=num_classes, rank=rank, hidden=hidden,
                     feature_scale=float(feature_scale))
        self.shapes, self.rank, self.num_classes = shapes, rank, num_classes
        self.feature_scale = float(feature_scale)
        token = shapes[0][1] + num_classes + 3
        self.embed = nn.Sequential(nn.Linear(token, hidden), nn.GELU(), nn.Linear(hidden, hidden))
        self.keys = nn.Linear(hidden, hidden)
        self.queries = nn.Parameter(torch.randn(rank, hidden) / math.sqrt(hidden))
        self.context = nn.Sequential(nn.Linear(hidden + 1, hidden), nn.GELU())
        self.u_heads = nn.ModuleList(
            nn.Sequential(nn.Linear(2 * hidden, hidden), nn.GELU(), nn.Linear(hidden, out)) for out, _ in shapes
        )
        self.b_heads = nn.ModuleList(nn.Linear(hidden, out) for out, _ in shapes)
        # mean input of each patched layer over the training data (set by the trainer): deltas act
        # on the deviation from it, so an average example is left as it was
        for k, (_, inp) in enumerate(shapes):
            self.register_buffer(f"input_mean_{k}", torch.zeros(inp))
        for head in (*[h[-1] for h in self.u_heads], *self.b_heads):
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)

    def forward(self, features: torch.Tensor, labels: torch.Tensor, logits: torch.Tensor,
                layer_inputs: list[torch.Tensor]) -> Deltas:
        """The deltas for one request.

        Args:
            features: ``(n, in)`` the request's features (input of the first patched layer).
            labels: ``(n,)`` their labels.
            logits: ``(n, classes)`` the original's logits on them.
            layer_inputs: the input of each patched layer for the request, ``(n, in_l)`` each
                (the first is ``features``).

        Returns:
            ``[(delta_weight, delta_bias), ...]``, one pair per patched layer.
        """
        n = features.shape[0]
        stats = attack_features(logits.detach(), labels)[:, :3]
        tokens = torch.cat([features / self.feature_scale, F.one_hot(labels, self.num_classes).to(features.dtype),
                            stats.to(features.dtype)], dim=1)
        e = self.embed(tokens)  # (n, hidden)
        ctx = self.context(torch.cat([e.mean(0), e.new_tensor([math.log(n)])]))  # (hidden,)
        attn = torch.softmax(self.queries @ self.keys(e).T / math.sqrt(e.shape[1]), dim=1)  # (rank, n)
        slots = attn @ e  # (rank, hidden)
        slot_ctx = torch.cat([slots, ctx.expand(self.rank, -1)], dim=1)
        deltas: Deltas = []
        for k, (u_head, b_head, inp) in enumerate(zip(self.u_heads, self.b_heads, layer_inputs)):
            mean = getattr(self, f"input_mean_{k}").to(e.dtype)
            v = F.normalize(attn @ (inp.detach().to(e.dtype) - mean), dim=1)  # (rank, in)
            u = u_head(slot_ctx)  # (rank, out)
            dw = u.T @ v
            deltas.append((dw, b_head(ctx) - dw @ mean))
        return deltas

    def set_input_means(self, means: list[torch.Tensor]) -> None:
        """Set the mean input of each patched layer (over the training data)."""
        for k, m in enumerate(means):
            getattr(self, f"input_mean_{k}").copy_(m.detach().reshape(-1))
