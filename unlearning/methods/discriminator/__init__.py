"""Discriminator (GAN-style) unlearning: the model learns to fool a membership attacker."""

from unlearning.methods.discriminator.method import DiscriminatorUnlearn, RetainFreeDiscriminator
from unlearning.methods.discriminator.nets import MembershipDiscriminator

__all__ = ["DiscriminatorUnlearn", "MembershipDiscriminator", "RetainFreeDiscriminator"]
