"""Operations one training step dispatches, by precision and memory layout.

Why bf16-mixed can be slower than fp32 on a GPU: ResNet-18 on 32x32 CIFAR images at batch 128 does
28 GFLOP a step (forward and backward, ``torch.utils.flop_counter``), under half a millisecond of an
H100's fp32 arithmetic, yet a step took 15.5 ms (8,250 img/s measured): the step is bound by the
launches of its many small kernels and by the Python that issues them, not by arithmetic. Autocast
adds casts of the inputs and weights of every convolution and linear layer, and channels-last may
add layout conversions; in a launch-bound step, more launches cost more time than lower precision
saves. This script counts them: the operations of one step (forward, backward, optimiser) as they
reach the kernels, and on CUDA the GPU kernels launched, for each precision and layout, with the
same network, batch and optimiser as ``benchmarks/throughput.py``'s kit side.

Prints a table and writes ``benchmarks/results/step_ops.json``.

    python benchmarks/step_ops.py                 # CPU: ATen operations
    python benchmarks/step_ops.py --device cuda   # also the CUDA kernels launched
"""

from __future__ import annotations

import argparse
import collections
import json
import platform
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile
from torch.utils._python_dispatch import TorchDispatchMode

from unlearning.nets import KitResNet18, SmallCNN

NETS = {"resnet18": lambda: KitResNet18(num_classes=10), "small_cnn": lambda: SmallCNN(width=16, hidden=256)}
class _OpCounter(TorchDispatchMode):
    """Counts the operations that reach the kernels (below autograd and autocast: the casts
    autocast inserts and the backward's operations are counted, as each launches work)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: collections.Counter[str] = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        self.ops[str(func.overloadpacket.__name__)] += 1
        return func(*args, **(kwargs or {}))


SETTINGS = (("fp32", False), ("fp32", True), ("bf16-mixed", False), ("bf16-mixed", True))


def count_step(net: torch.nn.Module, batch_size: int, precision: str, channels_last: bool, device: str) -> dict[str, Any]:
    """Operations of one SGD step of ``net`` on a random batch (after two warm-up steps)."""
    net = net.to(device)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(batch_size, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch_size,), device=device)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    autocast = torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=precision == "bf16-mixed")

    def step() -> None:
        with autocast:
            loss = F.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()
    step()
    counter = _OpCounter()
    with counter:
        step()
    casts = sum(counter.ops[k] for k in ("_to_copy", "copy_", "clone"))
    row: dict[str, Any] = {"aten_ops": sum(counter.ops.values()), "copies_and_casts": casts}
    if device == "cuda":
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            step()
            torch.cuda.synchronize()
        row["cuda_kernels"] = sum(1 for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA)
    return row


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nets", nargs="+", default=["resnet18"], choices=list(NETS))
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--out", default="benchmarks/results/step_ops.json")
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device is available")
    results: dict[str, dict[str, Any]] = {}
    for name in args.nets:
        for precision, cl in SETTINGS:
            torch.manual_seed(0)
            key = f"{name} {precision}{' channels-last' if cl else ''}"
            results[key] = count_step(NETS[name](), args.batch_size, precision, cl, args.device)
    cols = ["aten_ops", "copies_and_casts"] + (["cuda_kernels"] if args.device == "cuda" else [])
    total = cols[-1] if args.device == "cuda" else "aten_ops"
    lines = ["| network, precision, layout | " + " | ".join(c.replace("_", " ") for c in cols)
             + f" | {total.replace('_', ' ')} vs fp32 |",
             "|---|" + "---:|" * (len(cols) + 1)]
    for key, row in results.items():
        base = results[f"{key.split()[0]} fp32"][total]
        lines.append(f"| {key} | " + " | ".join(str(row[c]) for c in cols) + f" | {row[total] / base:.2f} |")
    print("\n".join(lines))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"what": "operations of one training step (forward, backward, SGD step) after two warm-up steps, counted below autograd and autocast",
               "batch_size": args.batch_size, "device": args.device, "torch": str(torch.__version__),
               "machine": platform.machine(), "results": results}
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {out}")
    return payload


if __name__ == "__main__":
    main()
