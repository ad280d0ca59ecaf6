"""A callback for the kill-and-resume tests: it writes where training is and slows it down, so
that a test can kill a real ``unlearning fit`` in the middle of a chosen epoch."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback


class Beacon(Callback):
    """After every training batch, write ``"<epoch> <batch>"`` to ``path`` and sleep ``sleep`` s.

    Args:
        path: the file to write.
        sleep: seconds to wait after each batch (gives a test time to kill the run mid-epoch).
    """

    def __init__(self, path: str, sleep: float = 0.0) -> None:
        self.path, self.sleep = Path(path), sleep

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(f"{trainer.current_epoch} {batch_idx}")
        tmp.replace(self.path)
        time.sleep(self.sleep)
