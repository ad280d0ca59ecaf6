"""The network of the fast oracle recipe: a small VGG-like net with a whitened first layer.

After Keller Jordan, "94% on CIFAR-10 in 3.29 seconds on a single GPU" (2024,
https://arxiv.org/abs/2404.00498; code https://github.com/KellerJordan/cifar10-airbench), whose
``airbench94`` network this follows (implemented anew here as one more network of the project):

- a 2x2 convolution without padding whose filters *whiten* 2x2 image patches: they are the
  eigenvectors of the patches' covariance, scaled by one over the square root of their eigenvalues,
  together with their negatives (``2 * 3 * 2 * 2 = 24`` channels), so that the next layers see
  decorrelated inputs of unit variance. It is set from training images before the first step
  (:meth:`FastCifarNet.init_whitening`, called by :class:`~unlearning.callbacks.WhiteningInit`)
  and frozen by default;
- three blocks of ``conv 3x3 -> max-pool 2 -> BatchNorm -> GELU -> conv 3x3 -> BatchNorm -> GELU``,
  widths 64, 256, 256 by default, the BatchNorm scales frozen at 1 (only their shifts learn), the
  first filters of every conv starting as the identity (a partial Dirac initialisation);
- a global max-pool, a linear layer without bias and a fixed scale of the logits (1/9);
- optional test-time augmentation by horizontal flip: in eval mode the logits are the mean of the
  image's and its mirror image's.

What differs from the paper's network: the whitening here centres the patches (the conv's bias starts
at minus the whitened mean, so its outputs have zero mean as well as identity covariance; the paper
whitens uncentred patches and starts the bias at zero); the global pooling is an ``amax`` over the
whole map, so smaller images work too; test-time augmentation is the flip alone (the paper also
averages one-pixel translations); no half-precision casts inside the network (use the Trainer's
``precision`` flag).

The recipe around it (``configs/fast/``) is the project's ``Classifier`` with the paper's training
settings, kept: label smoothing 0.2; Nesterov SGD, momentum 0.85, batch 1024, the paper's learning
rate and weight decay (converted from its summed loss to our mean loss), BatchNorm biases at 64
times the learning rate; a linear warm-up then linear decay of the learning rate (``piecewise``);
the whitening layer set from 5,000 training images, its bias trained for 3 epochs then frozen
(:class:`~unlearning.callbacks.WhiteningInit`); lookahead every 5 steps with the paper's cubic
schedule (:class:`~unlearning.callbacks.Lookahead`); 10 epochs (the paper: 9.9). Left out: the
paper's derandomised "alternating" flip and its 2-pixel reflect-padded translation (the data
module's random crop with 4-pixel zero padding and random flip are used, shared by every recipe of
the project), the translated test-time views, fp16 weights, and ``torch.compile`` (available for any
fit through :class:`~unlearning.callbacks.CompileNetwork`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from unlearning.nets.base import Net

__all__ = ["FastCifarNet", "image_patches"]


def image_patches(images: torch.Tensor, size: int) -> torch.Tensor:
    """Every ``size x size`` patch of a batch of images (stride 1, no padding), flattened.

    Args:
        images: a ``B x C x H x W`` float batch.
        size: the patch's height and width.

    Returns:
        ``(B * (H - size + 1) * (W - size + 1)) x (C * size * size)``, each row laid out as a conv
        filter of shape ``C x size x size`` is (channel first, then rows, then columns).
    """
    b, c, _, _ = images.shape
    cols = nn.functional.unfold(images, kernel_size=size)  # B x (C*size*size) x positions
    return cols.transpose(1, 2).reshape(-1, c * size * size)


class _Block(nn.Module):
    """conv -> max-pool -> BN -> GELU -> conv -> BN -> GELU, BN scales frozen at 1."""

    def __init__(self, cin: int, cout: int, bn_momentum: float) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.pool = nn.MaxPool2d(2)
        self.norm1 = nn.BatchNorm2d(cout, momentum=bn_momentum)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.norm2 = nn.BatchNorm2d(cout, momentum=bn_momentum)
        self.act = nn.GELU()
        for norm in (self.norm1, self.norm2):
            norm.weight.requires_grad_(False)
        for conv in (self.conv1, self.conv2):  # the first min(cin, cout) filters pass their channel through
            with torch.no_grad():
                k = min(conv.in_channels, conv.out_channels)
                nn.init.dirac_(conv.weight[:k, :k])
                conv.weight[:k, k:] = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.norm1(self.pool(self.conv1(x))))
        return self.act(self.norm2(self.conv2(x)))


class FastCifarNet(Net):
    """A small VGG-like network that trains to high CIFAR-10 accuracy in few epochs (see the
    module's docstring for the recipe it follows and what differs).

    Args:
        num_classes: number of output classes.
        widths: channels of the three conv blocks.
        in_channels: channels of the input images.
        whiten_size: height and width of the whitening filters (2 in the paper).
        whiten_trainable: let the whitening filters train after their initialisation (frozen in
            the paper; their bias trains either way, see
            :class:`~unlearning.callbacks.WhiteningInit`'s ``bias_epochs``).
        bn_momentum: BatchNorm momentum in PyTorch's convention (the weight of the new batch's
            statistics; 0.4 is the paper's 0.6 in the other convention).
        logit_scale: fixed factor applied to the logits.
        tta_flip: in eval mode, return the mean of the logits of each image and of its horizontal
            mirror image (training is unaffected).

    Raises:
        ValueError: on an empty or non-positive width, a whitening size below 1 or a BatchNorm
            momentum outside (0, 1].
    """

    def __init__(
        self,
        num_classes: int = 10,
        widths: Sequence[int] = (64, 256, 256),
        in_channels: int = 3,
        whiten_size: int = 2,
        whiten_trainable: bool = False,
        bn_momentum: float = 0.4,
        logit_scale: float = 1 / 9,
        tta_flip: bool = True,
    ) -> None:
        super().__init__()
        widths = [int(w) for w in widths]
        if not widths or min(widths) < 1:
            raise ValueError(f"FastCifarNet widths must be a non-empty list of positive ints, got {widths}")
        if whiten_size < 1:
            raise ValueError(f"FastCifarNet whiten_size must be >= 1, got {whiten_size}")
        if not 0.0 < bn_momentum <= 1.0:
            raise ValueError(f"FastCifarNet bn_momentum must be in (0, 1], got {bn_momentum}")
        self._record(num_classes=num_classes, widths=widths, in_channels=in_channels, whiten_size=whiten_size,
                     whiten_trainable=whiten_trainable, bn_momentum=bn_momentum, logit_scale=logit_scale,
                     tta_flip=tta_flip)
        dims = in_channels * whiten_size**2
        self.whiten = nn.Conv2d(in_channels, 2 * dims, whiten_size, bias=True)
        self.whiten.weight.requires_grad_(whiten_trainable)
        #: whether :meth:`init_whitening` has set the first layer (saved with the weights, so a
        #: resumed or reloaded network is not whitened twice)
        self.register_buffer("whitened", torch.zeros((), dtype=torch.bool))
        self.act = nn.GELU()
        blocks, cin = [], 2 * dims
        for w in widths:
            blocks.append(_Block(cin, w, bn_momentum))
            cin = w
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(cin, num_classes, bias=False)
        self.logit_scale = logit_scale
        self.tta_flip = tta_flip

    @torch.no_grad()
    def init_whitening(self, images: torch.Tensor, eps: float = 5e-4) -> None:
        """Set the first layer so that it whitens the patches of ``images``.

        With ``mu`` the patches' mean and ``C = V diag(lam) V^T`` their covariance, the first
        half of the filters is ``diag(1 / sqrt(lam + eps)) V^T`` with bias ``-filters @ mu``, the
        second half their negatives: the first half's outputs on these patches have zero mean and
        covariance ``diag(lam / (lam + eps))``, the identity up to ``eps``.

        Args:
            images: a ``B x C x H x W`` batch of (normalised) training images.
            eps: added to the eigenvalues, so that near-constant directions are not blown up.

        Raises:
            ValueError: if the images' channels do not match the layer's, or there are fewer
                patches than patch dimensions (the covariance would be singular).
        """
        k = self.whiten.kernel_size[0]
        if images.dim() != 4 or images.shape[1] != self.whiten.in_channels:
            raise ValueError(f"init_whitening needs a B x {self.whiten.in_channels} x H x W batch, "
                             f"got shape {tuple(images.shape)}")
        patches = image_patches(images.to(self.whiten.weight.device, torch.float64), k)
        dims = patches.shape[1]
        if patches.shape[0] <= dims:
            raise ValueError(f"init_whitening needs more than {dims} patches, got {patches.shape[0]}")
        mean = patches.mean(0)
        centred = patches - mean
        cov = centred.T @ centred / (patches.shape[0] - 1)
        lam, vec = torch.linalg.eigh(cov)  # ascending
        filters = (vec / torch.sqrt(lam.clamp_min(0) + eps)).T.flip(0)  # largest eigenvalue first
        bias = -(filters @ mean)
        w = self.whiten.weight
        w.copy_(torch.cat([filters, -filters]).reshape(w.shape).to(w.dtype))
        assert self.whiten.bias is not None
        self.whiten.bias.copy_(torch.cat([bias, -bias]).to(w.dtype))
        self.whitened.fill_(True)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.act(self.whiten(x)))
        return self.head(x.amax(dim=(2, 3))) * self.logit_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits of shape ``(batch, num_classes)`` (flip-averaged in eval mode when
        ``tta_flip``)."""
        if self.tta_flip and not self.training:
            return 0.5 * (self._logits(x) + self._logits(x.flip(3)))
        return self._logits(x)
