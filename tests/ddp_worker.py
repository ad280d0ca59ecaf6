"""Run one of the project's modules under 2-process DDP on CPU (``python -m tests.ddp_worker``).

Usage: ``python -m tests.ddp_worker CLASS ARGS_JSON OUT_DIR``; Lightning relaunches this command
once per rank. Each rank writes ``rank<r>.json`` with a float64 sum of every parameter tensor of
the module (identical replicas give identical sums) and its cost; rank 0 also saves the
checkpoint.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import lightning as L
import torch

from tests.synthetic import datamodule
from unlearning.methods import module_class
from unlearning.modules.cost import world_size


def main() -> None:
    name, args, out = sys.argv[1], json.loads(sys.argv[2]), Path(sys.argv[3])
    torch.set_num_threads(1)
    L.seed_everything(0)
    module = module_class(name)(**args)
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_epochs=1, max_steps=6, logger=False,
                        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                        limit_val_batches=0, num_sanity_val_steps=0)
    trainer.fit(module, datamodule())
    # parameters only: BatchNorm running statistics are per rank by design (DDP broadcasts rank 0's)
    sums = {k: float(v.detach().double().sum()) for k, v in module.named_parameters()}
    rank = trainer.global_rank
    (out / f"rank{rank}.json").write_text(json.dumps({"sums": sums, "cost": module.cost, "world": world_size(module)}))
    trainer.save_checkpoint(out / "model.ckpt")


if __name__ == "__main__":
    main()
