"""Plain ``nn.Module`` networks, each rebuildable from a checkpoint's spec: the project's own, and
torchvision's or timm's models by name."""

from unlearning.nets.base import Net, build_net, net_num_classes, net_spec, weights_module
from unlearning.nets.cnn import SmallCNN
from unlearning.nets.external import MissingExtraError, TimmNet, TorchvisionNet
from unlearning.nets.fast import FastCifarNet
from unlearning.nets.mlp import MLP
from unlearning.nets.resnet import CifarResNet, KitResNet18

__all__ = [
    "MLP", "CifarResNet", "FastCifarNet", "KitResNet18", "MissingExtraError", "Net", "SmallCNN", "TimmNet",
    "TorchvisionNet", "build_net", "net_num_classes", "net_spec", "weights_module",
]
