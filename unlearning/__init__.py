"""unlearning: a PyTorch Lightning framework for machine unlearning on image classifiers."""

__version__ = "0.1.0"
