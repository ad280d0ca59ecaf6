"""``unlearning import``: a model trained elsewhere as the original of every later stage.

A user's network (a spec: one of the project's nets, or another library's model by name, see
:class:`~unlearning.nets.TorchvisionNet` and :class:`~unlearning.nets.TimmNet`) and its trained
weights (a ``state_dict`` saved by ``torch.save``, alone or inside a dict under ``state_dict``,
``model``, ``net`` or ``model_state_dict``) become a :class:`~unlearning.modules.Classifier`
checkpoint, which every command takes as the original (``--model.init_args.original PATH``,
``unlearning score --original PATH``). On the way the weights are loaded safely
(``weights_only``: a file holding pickled code is refused and nothing in it runs), checked
against the network (missing, unexpected and mis-shaped entries named) and against the data
(number of classes), and the model is evaluated on the split: its accuracy on the training set,
retain, forget, val and test. An original far from its training accuracy (near chance) was most
likely trained on differently prepared inputs, and is reported with a hint rather than scored.

Example::

    unlearning import --net TorchvisionNet --net.name resnet18 --net.num_classes 10 \\
        --data CIFAR10DataModule --data.init_args.root PATH --weights resnet18.pt --output original.ckpt
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from jsonargparse import ActionConfigFile, ArgumentParser
from lightning.pytorch import LightningDataModule
from torch import nn

import unlearning.data  # noqa: F401 - short class names of the data modules
from unlearning.build import ConfigParser, NetworkHelpFormatter
from unlearning.data.base import UnlearningDataModule
from unlearning.nets import build_net, net_num_classes
from unlearning.nets.weights import STATE_DICT_KEYS, check_state_dict, extract_state_dict, load_weights
from unlearning.registry import resolve_class
from unlearning.utils import check_writable

__all__ = [
    "STATE_DICT_KEYS", "check_state_dict", "evaluate_split", "extract_state_dict", "import_parser", "main",
    "run_import", "write_classifier_checkpoint",
]

#: the streams evaluated, in the order printed (``train`` = retain + forget)
IMPORT_STREAMS = ("train", "retain", "forget", "val", "test")


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@torch.no_grad()
def evaluate_split(net: nn.Module, dm: UnlearningDataModule, batch_size: int = 256,
                   device: torch.device | None = None, progress: bool = True) -> dict[str, float]:
    """The network's accuracy on every stream of the split, in eval mode, on the data module's
    evaluation inputs (its ``eval_transform``: normalisation, no augmentation).

    The training set is predicted once: retain and forget are its parts (all of them, not the
    sample ``retain_eval_size`` of a fit's evaluation).

    Args:
        net: the network.
        dm: a data module (set up here if it is not).
        batch_size: evaluation batch size.
        device: where to run (default CPU).
        progress: a progress bar (on a terminal, for more than a few batches).

    Returns:
        ``{"train_acc", "retain_acc", "forget_acc", "val_acc", "test_acc"}`` (NaN for an empty stream).

    Raises:
        ValueError: if the network's outputs are not one logit per class of the data.
    """
    from tqdm.auto import tqdm

    device = device or torch.device("cpu")
    dm.setup("validate")
    assert dm.split is not None and dm.arrays is not None
    classes = dm.arrays.classes
    net = net.to(device).eval()
    jobs = [(name, *dm.stream_source(name)) for name in ("train", "val", "test")]
    total = sum(math.ceil(idx.numel() / batch_size) for *_, idx in jobs)
    bar = tqdm(total=total, desc="unlearning import: evaluating", unit="batch",
               disable=not progress or total < 20, leave=False)
    correct: dict[str, torch.Tensor] = {}
    for name, x, y, idx in jobs:
        hits = torch.zeros(int(x.shape[0]), dtype=torch.bool)
        for start in range(0, idx.numel(), batch_size):
            rows = idx[start:start + batch_size]
            logits = net(dm.eval_transform(x[rows]).to(device))
            if logits.dim() != 2 or logits.shape[1] != len(classes):
                names = ", ".join(map(str, classes[:10])) + (", ..." if len(classes) > 10 else "")
                raise ValueError(f"the network outputs {tuple(logits.shape[1:])} per image: expected one logit for "
                                 f"each of the data's {len(classes)} classes ({names})")
            hits[rows.cpu()] = (logits.argmax(1) == y[rows].to(device)).cpu()
            bar.update()
        correct[name] = hits
    bar.close()
    s = dm.split

    def acc(part: torch.Tensor, which: str) -> float:
        return float(correct[which][part.cpu()].float().mean()) if part.numel() else math.nan

    return {"train_acc": acc(s.train, "train"), "retain_acc": acc(s.retain, "train"),
            "forget_acc": acc(s.forget, "train"), "val_acc": acc(s.val, "val"), "test_acc": acc(s.test, "test")}


def chance_hint(accuracy: dict[str, float], num_classes: int) -> str | None:
    """A hint when the model is near chance on its own training set, else ``None``.

    Near chance: a training accuracy below ``1/C + 0.1 * (1 - 1/C)`` (0.19 for 10 classes), far
    from what a trained model gets on the images it was trained on.
    """
    chance = 1.0 / num_classes
    train = accuracy.get("train_acc", math.nan)
    if math.isnan(train) or train >= chance + 0.1 * (1 - chance):
        return None
    return (f"hint: training accuracy {train:.3f} is near chance ({chance:.3f} for {num_classes} classes) on the data "
            "the model should have been trained on: check that the data module prepares images as the model's "
            "training did (normalisation mean/std, image size, channel order), that its classes are in the same "
            "order, and that the weights are the trained ones")


def write_classifier_checkpoint(net: nn.Module, num_classes: int, output: Path) -> None:
    """Write ``net`` as a :class:`~unlearning.modules.Classifier` checkpoint (the format of
    ``unlearning fit``'s, with the network spec and the project's metadata), through Lightning.

    Args:
        net: the network, with its weights.
        num_classes: its number of classes.
        output: the ``.ckpt`` path.
    """
    from lightning.pytorch import Trainer

    from unlearning.modules.classifier import Classifier

    module = Classifier(net=net.cpu(), num_classes=num_classes)
    trainer = Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False)
    trainer.strategy.connect(module)
    module.trainer = trainer
    output.parent.mkdir(parents=True, exist_ok=True)
    trainer.save_checkpoint(output, weights_only=False)


def run_import(
    net: dict[str, Any],
    data: dict[str, Any],
    weights: str,
    output: str,
    key: str | None = None,
    strip_prefix: list[str] | str | None = None,
    overwrite: bool = False,
    batch_size: int = 256,
    device: str = "auto",
    progress: bool = True,
) -> dict[str, Any]:
    """Import a network's weights trained elsewhere as an original ``Classifier`` checkpoint.

    Args:
        net: the network's spec, ``{"class_path", "init_args"}`` (e.g. ``TorchvisionNet`` with
            ``{name: resnet18, num_classes: 10, cifar_stem: true}``), the architecture the weights
            were trained with.
        data: the data module's spec: the dataset and split the model is unlearned on. The model
            must have been trained on the dataset's whole training split (in its canonical order)
            with the same input preparation as the data module's evaluation.
        weights: a file saved by ``torch.save``: a ``state_dict``, or a dict holding one (see ``key``).
            Loaded with ``weights_only=True``: a file holding pickled code is refused.
        output: the checkpoint to write (``.ckpt``).
        key: the entry of the file that holds the ``state_dict``; default: the file itself, or the
            first of ``state_dict``, ``model``, ``net``, ``model_state_dict`` that holds one.
        strip_prefix: a key prefix to remove (e.g. ``module.`` of ``DataParallel``), or a list of
            them, removed in order (``[module., model.]``).
        overwrite: replace an existing ``output``.
        batch_size: evaluation batch size.
        device: where to evaluate: ``auto`` (a GPU if there is one), ``cpu``, ``cuda``, ``cuda:1``, ...
        progress: a progress bar for a long evaluation (on a terminal).

    Returns:
        ``{"output", "num_classes", "accuracy": {...}, "hint"}``.

    Raises:
        FileNotFoundError: if the weights file does not exist.
        FileExistsError: if ``output`` exists and ``overwrite`` is false.
        ValueError: on an output not ending in ``.ckpt``, a file that is no checkpoint or holds
            code, no ``state_dict`` found, keys or shapes that do not fit the network, or another
            number of classes than the data's.
    """
    out = Path(output)
    if out.suffix != ".ckpt":
        raise ValueError(f"output must be a .ckpt file (the commands take an original by that suffix), got {output!r}")
    if out.exists() and not overwrite:
        raise FileExistsError(f"output {output!r} exists: choose another path or pass --overwrite true")
    if not Path(weights).is_file():
        raise FileNotFoundError(f"weights file {weights!r} does not exist")
    check_writable(out.parent, "the output folder")
    strip = [strip_prefix] if isinstance(strip_prefix, str) else list(strip_prefix or [])
    network = build_net(net)
    load_weights(network, weights, strip, key=key)
    init = dict(data.get("init_args") or {})
    dm = resolve_class(str(data.get("class_path")), "data")(**init)
    if not isinstance(dm, UnlearningDataModule):
        raise ValueError(f"data class {data.get('class_path')!r} is not an UnlearningDataModule: it has no split to evaluate")
    recorded = net_num_classes(network)
    if recorded is not None and recorded != dm.num_classes:
        raise ValueError(f"the network {type(network).__name__} has {recorded} classes: expected the data's "
                         f"{dm.num_classes} ({data.get('class_path')})")
    accuracy = evaluate_split(network, dm, batch_size=batch_size, device=_device(device), progress=progress)
    num_classes = dm.num_classes
    write_classifier_checkpoint(network, num_classes, out)
    hint = chance_hint(accuracy, num_classes)
    return {"output": str(out), "num_classes": num_classes, "accuracy": accuracy, "hint": hint}


def import_parser() -> ArgumentParser:
    """The parser of ``unlearning import``."""

    parser = ConfigParser(prog="unlearning import", default_meta=False, formatter_class=NetworkHelpFormatter, description=(
        "Import a model trained elsewhere (a network spec and a state_dict file) as the original: "
        "check its weights against the network and the data, print its accuracy on train, retain, "
        "forget, val and test, and write a Classifier checkpoint that every command takes as original."))
    parser.add_argument("-c", "--config", action=ActionConfigFile, help="a config (YAML)")
    parser.add_subclass_arguments(nn.Module, "net", required=True, instantiate=False,
                                  help="the network the weights were trained with (e.g. TorchvisionNet)")
    parser.add_subclass_arguments(LightningDataModule, "data", required=True, instantiate=False,
                                  help="the dataset and split the model is unlearned on")
    parser.add_function_arguments(run_import, skip={"net", "data"}, as_group=False)
    return parser


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Parse ``argv`` and run the import, printing the accuracies (and a hint near chance).

    Returns:
        What :func:`run_import` returns.
    """
    cfg = import_parser().parse_args(argv).as_dict()
    for k in ("config", "__path__"):
        cfg.pop(k, None)
    result = run_import(**cfg)
    acc = result["accuracy"]
    print("unlearning import: " + ", ".join(f"{s} acc {acc[f'{s}_acc']:.4f}" for s in IMPORT_STREAMS), flush=True)
    if result["hint"]:
        print(f"unlearning import: {result['hint']}", flush=True)
    print(f"unlearning import: wrote {result['output']} ({result['num_classes']} classes); use it as the original, "
          f"e.g. --model.init_args.original {result['output']}", flush=True)
    return result
