"""Plain ``nn.Module`` networks, each rebuildable from a checkpoint's spec."""

from unlearning.nets.base import Net, build_net, net_spec
from unlearning.nets.cnn import SmallCNN
from unlearning.nets.fast import FastCifarNet
from unlearning.nets.mlp import MLP
from unlearning.nets.resnet import CifarResNet, KitResNet18

__all__ = ["MLP", "CifarResNet", "FastCifarNet", "KitResNet18", "Net", "SmallCNN", "build_net", "net_spec"]
