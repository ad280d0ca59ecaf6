"""Training throughput: the project's fast path against the starting kit's input pipeline.

Both sides train the same network with the same batch size and optimiser on the same CIFAR-10
images, for the same number of batches, measured alternately in one run:

- ``project``: ``Classifier`` + ``CIFAR10DataModule`` (the whole set as one uint8 tensor, crop +
  flip + normalisation on whole batches) under a Lightning ``Trainer``;
- ``kit``: the starting kit's pipeline: a ``Dataset`` that makes a PIL image per example,
  torchvision ``RandomCrop(32, 4)``, ``RandomHorizontalFlip``, ``ToTensor``, ``Normalize``, a
  ``DataLoader`` with 2 workers, and a plain PyTorch loop.

The project side is measured in each ``--settings`` entry: ``plain``, ``channels_last`` (the
``ChannelsLast`` callback), ``compile`` (the ``CompileNetwork`` callback: ``torch.compile`` with
inductor; its compilation falls in the untimed first batch), ``compile_cudagraphs`` (the same in
mode ``reduce-overhead``: on CUDA a step's kernels replay as one CUDA graph, the remedy for a step
bound by kernel launches, see ``benchmarks/step_ops.py``) and either compile with
``+channels_last``; the kit side is the kit's loop as it ships (no compile, default layout), so
each ratio is the setting's speed-up over the starting kit on the same network, batch size,
precision and threads.

Prints a table and writes ``benchmarks/results/throughput.json``.

    python benchmarks/throughput.py --root ../shared/data/cifar10-jpeg --settings plain channels_last compile
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
import torchvision.transforms as T
from PIL import Image

from unlearning.callbacks import ChannelsLast, CompileNetwork
from unlearning.data import CIFAR10DataModule
from unlearning.data.transforms import CIFAR10_MEAN, CIFAR10_STD
from unlearning.modules import Classifier
from unlearning.nets import KitResNet18, SmallCNN
from unlearning.utils import silence_lightning_noise

NETS = {
    "small_cnn": lambda: SmallCNN(width=16, hidden=256),
    "resnet18": lambda: KitResNet18(num_classes=10),
}


class KitDataset(torch.utils.data.Dataset):
    """What torchvision's CIFAR10 does per item: uint8 HWC array -> PIL image -> transforms."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x = x.permute(0, 2, 3, 1).contiguous().numpy()
        self.y = y.tolist()
        self.transform = T.Compose([
            T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(CIFAR10_MEAN, CIFAR10_STD),
        ])

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(Image.fromarray(self.x[i])), self.y[i]


def run_kit(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batches: int, batch_size: int,
            channels_last: bool, device: str = "cpu", precision: str = "32") -> float:
    loader = torch.utils.data.DataLoader(KitDataset(x, y), batch_size=batch_size, shuffle=True, num_workers=2,
                                         persistent_workers=False)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    net = net.to(device)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    net.train()
    it = iter(loader)
    xb, yb = next(it)  # worker start-up is not counted
    start, n = time.perf_counter(), 0
    autocast = torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=precision == "bf16-mixed")
    for _ in range(batches):
        xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
        if channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with autocast:
            loss = F.cross_entropy(net(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        n += xb.shape[0]
        xb, yb = next(it)
    if device == "cuda":
        torch.cuda.synchronize()
    return n / (time.perf_counter() - start)


class _EpochTimer(L.Callback):
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):  # noqa: ANN001
        if batch_idx == 1:  # the first batch is warm-up, as on the kit side
            self.start, self.n = time.perf_counter(), 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):  # noqa: ANN001
        if batch_idx >= 1:
            if torch.cuda.is_available() and pl_module.device.type == "cuda":
                torch.cuda.synchronize()
            self.n += sum(v[0].shape[0] for v in batch.values())
            self.rate = self.n / (time.perf_counter() - self.start)


SETTINGS = ("plain", "channels_last", "compile", "compile+channels_last", "compile_cudagraphs",
            "compile_cudagraphs+channels_last")


def run_project(net: torch.nn.Module, root: str, subset: int, batches: int, batch_size: int, setting: str,
                device: str = "cpu", precision: str = "32") -> float:
    dm = CIFAR10DataModule(root=root, train_subset=subset, augment=True, batch_size=batch_size)
    module = Classifier(net=net, log_distributions=False, scheduler="none")
    timer = _EpochTimer()
    parts = setting.split("+")
    speed = [ChannelsLast()] if "channels_last" in parts else []
    if "compile" in parts:
        speed.append(CompileNetwork())
    if "compile_cudagraphs" in parts:  # CUDA graphs: one launch replays a step's kernels
        speed.append(CompileNetwork(mode="reduce-overhead"))
    trainer = L.Trainer(max_epochs=1, limit_train_batches=batches + 1, limit_val_batches=0, accelerator=device,
                        devices=1, precision=precision,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[*speed, timer])
    trainer.fit(module, dm)
    return timer.rate


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default="../shared/data/cifar10-jpeg")
    p.add_argument("--nets", nargs="+", default=list(NETS), choices=list(NETS))
    p.add_argument("--batches", type=int, default=30, help="timed batches per measurement")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--subset", type=int, default=10000)
    p.add_argument("--settings", nargs="+", default=["plain"], choices=SETTINGS, help="the project side's settings")
    p.add_argument("--kit-channels-last", action="store_true", help="the kit's loop in channels-last layout too")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--precision", default="32", choices=["32", "bf16-mixed"])
    p.add_argument("--out", default="benchmarks/results/throughput.json")
    args = p.parse_args()
    silence_lightning_noise()

    dm = CIFAR10DataModule(root=args.root, train_subset=args.subset)
    dm.setup()
    x, y, idx = dm.stream_source("train")
    x, y = x[idx].cpu(), y[idx].cpu()
    results = {}
    for name in args.nets:
        rates: dict[str, list[float]] = {"kit": [], **{s: [] for s in args.settings}}
        for r in range(args.repeats):  # alternating: a change of load hits every side
            torch.manual_seed(r)
            rates["kit"].append(run_kit(NETS[name](), x, y, args.batches, args.batch_size, args.kit_channels_last,
                                        args.device, args.precision))
            for setting in args.settings:
                torch.manual_seed(r)
                rates[setting].append(run_project(NETS[name](), args.root, args.subset, args.batches, args.batch_size,
                                                  setting, args.device, args.precision))
        med = {k: statistics.median(v) for k, v in rates.items()}
        results[name] = {"images_per_s": rates, "median": med,
                         "ratio": {s: med[s] / med["kit"] for s in args.settings}}
        for s in args.settings:
            print(f"{name} {s}: project {med[s]:.0f} img/s, kit {med['kit']:.0f} img/s, ratio {med[s] / med['kit']:.2f}")

    print()
    print("| network | project setting | project (img/s) | kit (img/s) | ratio |")
    print("|---|---|---:|---:|---:|")
    for name, r in results.items():
        for s in args.settings:
            print(f"| {name} | {s} | {r['median'][s]:.0f} | {r['median']['kit']:.0f} | {r['ratio'][s]:.2f} |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "what": "training images/s, median of repeats, measured alternately in one run",
        "batch_size": args.batch_size, "batches": args.batches, "repeats": args.repeats,
        "settings": args.settings, "kit_channels_last": args.kit_channels_last, "threads": torch.get_num_threads(),
        "device": args.device if args.device == "cpu" else torch.cuda.get_device_name(), "precision": args.precision,
        "torch": str(torch.__version__), "machine": platform.machine(), "results": results,
    }, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
