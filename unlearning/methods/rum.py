"""RUM: unlearn the forget set level by level, from the least to the most memorised examples
(Zhao, Kurmanji, Bărbulescu, Triantafillou, Triantafillou, "What makes unlearning hard and what to
do about it", NeurIPS 2024, arXiv 2406.01257; code ``kairanzhao/RUM``).

A meta-method: it wraps other methods.

1. **Levels.** The forget set is ranked by memorisation and cut by rank into three levels, low,
   medium and high (equal thirds by default, :func:`memorisation_levels`). The score is, by
   default, a proxy computed at unlearning time from the original alone: ``1 - p(y | x)``, the
   original's probability of each forget example's label (unaugmented, evaluation mode; high
   confidence = low memorisation; one forward pass over the forget set, counted in the cost).
   Given ``scores_file`` (the ``memorisation.npz`` of ``unlearning memorise``), the score is its
   array ``score_key`` instead (``estimate``, ``confidence_proxy``, ``accuracy_proxy``: higher =
   more memorised in every one).
2. **Sequence.** The levels are unlearned in order, low -> medium -> high, each starting from the
   previous level's model. A level's method is any :class:`~unlearning.modules.UnlearnModule`,
   given as a config section (``class_path`` + ``init_args``) with its budget, or nothing. It runs
   as it would alone (its own optimiser, schedule, hooks and pre-passes), in a Lightning fit of its
   own on the same data module, whose forget set is, for that fit, the level's examples only; the
   retain set is the whole retain set at every level (no forget example of a later level is ever
   trained on as retain; the published code keeps the levels not yet unlearned in its retain set). A method that keeps a frozen original (a teacher) gets the model the
   level starts from, as if it were run alone on that model.

RUM's published recipe (CIFAR-10): nothing on low, Finetune (10 epochs, lr 0.1) on medium, SalUn
(5 epochs, lr 0.1) on high; "RUM^F" runs one method F at every level, in sequence. Both are
configs of this class (see ``configs/unlearn/rum.yaml``).

A level is ``null`` (nothing), or a mapping with the keys

- ``method``: the config section of the method (``class_path``: a short name such as ``SalUn`` or
  a dotted path such as ``unlearning.methods.SalUn``; ``init_args``: its arguments, without
  ``original``, ``oracle`` and ``net_spec``, which RUM supplies), or ``null`` for nothing;
- ``epochs`` or ``steps``: the level's budget (exactly one of the two, for a method);
- ``batches``: at most this many training batches per epoch (an int, or a share of the epoch);
- ``lr``: the method's learning rate (a shorthand for ``method.init_args.lr`` that ``unlearning
  tune`` can reach: the command line sets one key inside a mapping, not two).

Cost: the proxy's forward pass plus every level's cost (its images; the wall time of the whole
fit, which holds the levels' fits). The checkpoint's metadata lists each level's method, size and
cost under ``levels``.

Runs on one device (the levels' fits are not distributed). ``resumable = False``: the levels run
inside the first training step.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch import Trainer

from unlearning.modules.unlearn import UnlearnModule
from unlearning.registry import resolve_class

__all__ = ["LEVELS", "RUM", "Level", "memorisation_levels", "plain"]

#: the levels' names, from the least to the most memorised
LEVELS = ("low", "medium", "high")
#: the keys of a level's mapping
LEVEL_KEYS = ("method", "epochs", "steps", "batches", "lr")
#: the streams a level's method may read (``train`` would hand it the retain set and the level)
LEVEL_STREAMS = frozenset({"retain", "forget", "val"})
#: the arguments RUM gives a level's method itself
SUPPLIED_ARGS = ("original", "oracle", "net_spec")


def plain(value: Any) -> Any:
    """A config value as plain dicts and lists: the command line's parser hands a nested section
    whose ``class_path`` it can import as a namespace (with the class's defaults filled in)."""
    if isinstance(value, argparse.Namespace):
        value = value.as_dict() if hasattr(value, "as_dict") else vars(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def memorisation_levels(scores: np.ndarray, indices: np.ndarray, shares: tuple[float, ...]) -> list[np.ndarray]:
    """Cut examples by the rank of their score into consecutive levels, lowest scores first.

    Ties are broken by index, so the cut is a pure function of its arguments. Level ``i`` takes the
    ranks from ``round(n * sum(shares[:i]))`` to ``round(n * sum(shares[:i + 1]))``.

    Args:
        scores: one score per example (higher = more memorised), finite.
        indices: the examples' indices (same length).
        shares: each level's share of the examples, non-negative, summing to 1.

    Returns:
        The indices of each level, sorted; together a partition of ``indices``.
    """
    scores, indices = np.asarray(scores, dtype=np.float64), np.asarray(indices, dtype=np.int64)
    order = np.lexsort((indices, scores))
    bounds = np.rint(np.cumsum(shares) * order.size).astype(int)
    bounds[-1] = order.size
    return [np.sort(indices[part]) for part in np.split(order, bounds[:-1])]


@dataclasses.dataclass
class Level:
    """One level's method (``None``: nothing) and budget, checked (see the module docs)."""

    name: str
    module: UnlearnModule | None = None
    epochs: int | None = None
    steps: int | None = None
    batches: int | float | None = None


class RUM(UnlearnModule):
    """Unlearn the forget set in levels of memorisation, low -> medium -> high, with a method per
    level (see the module docs).

    Args:
        low: the least memorised level: ``null`` or ``{method, epochs | steps, batches, lr}``.
        medium: the middle level, the same way.
        high: the most memorised level, the same way.
        shares: the levels' shares of the forget set, by rank (three non-negative numbers summing
            to 1; equal thirds if ``None``). A level of share 0 is empty: two levels of halves are
            ``[0.5, 0.5, 0]``.
        scores_file: a ``memorisation.npz`` of ``unlearning memorise`` to rank by; ``None``: the
            original's confidence proxy, computed here.
        score_key: the array of ``scores_file`` to rank by (higher = more memorised).
        **kwargs: see :class:`~unlearning.modules.UnlearnModule` (its optimiser settings are not
            used: every level's method has its own).

    Raises:
        ValueError: on a bad level (naming it and the bad value), bad shares, or a level method
            that cannot be built.
    """

    train_streams: ClassVar[tuple[str, ...]] = ("forget",)
    #: the streams the levels' methods read (through the data module, in their own fits)
    extra_streams: ClassVar[tuple[str, ...]] = ("retain", "val")
    #: the levels run in the first training step, outside the checkpoint
    resumable: ClassVar[bool] = False
    #: init arguments naming a file the result depends on (a cache should key them by content,
    #: as the data scenarios' ``content_args``)
    content_args: ClassVar[tuple[str, ...]] = ("scores_file",)

    def __init__(
        self,
        low: dict[str, Any] | None = None,
        medium: dict[str, Any] | None = {"method": {"class_path": "Finetune", "init_args": {"lr": 0.1}}, "epochs": 10},
        high: dict[str, Any] | None = {"method": {"class_path": "SalUn", "init_args": {"lr": 0.1}}, "epochs": 5},
        shares: list[float] | None = None,
        scores_file: str | None = None,
        score_key: str = "estimate",
        **kwargs: Any,
    ) -> None:
        low, medium, high = plain(low), plain(medium), plain(high)  # saved as plain containers (weights_only loads)
        super().__init__(**kwargs)
        self.automatic_optimization = False
        shares = [1 / 3] * 3 if shares is None else list(shares)
        if len(shares) != len(LEVELS) or any(not np.isfinite(s) or s < 0 for s in shares) or abs(sum(shares) - 1) > 1e-6:
            raise ValueError(f"RUM shares must be {len(LEVELS)} non-negative numbers (low, medium, high) "
                             f"summing to 1, got {shares}")
        self.shares = tuple(float(s) for s in shares)
        self.scores_file, self.score_key = scores_file, score_key
        #: the levels, low to high; their modules are not submodules (nothing of theirs is saved)
        self.levels: list[Level] = [self._level(name, spec) for name, spec in zip(LEVELS, (low, medium, high))]
        #: each level's examples (indices into the training set), set by the fit
        self.level_indices: dict[str, torch.Tensor] = {}
        #: each level's method, size and cost, set by the fit (also in the checkpoint's metadata)
        self.level_report: list[dict[str, Any]] = []

    # ---- configuration ----------------------------------------------------------------------
    def _level(self, name: str, spec: dict[str, Any] | None) -> Level:
        """Check one level's mapping and build its method (on the original's network spec)."""
        where = f"RUM level {name!r}"
        if spec is None:
            return Level(name)
        if not isinstance(spec, dict):
            raise ValueError(f"{where} must be null or a mapping with keys {', '.join(LEVEL_KEYS)}, got {spec!r}")
        unknown = sorted(set(spec) - set(LEVEL_KEYS))
        if unknown:
            raise ValueError(f"{where} has unknown key {unknown[0]!r}: expected some of {', '.join(LEVEL_KEYS)}")
        method = spec.get("method")
        if method is None:
            return Level(name)
        if not isinstance(method, dict) or not isinstance(method.get("class_path"), str) \
                or not set(method) <= {"class_path", "init_args"} or not isinstance(method.get("init_args") or {}, dict):
            raise ValueError(f"{where}: method must be null or a section {{class_path: ..., init_args: {{...}}}}, got {method!r}")
        try:
            cls = resolve_class(method["class_path"], "model")
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None
        if not issubclass(cls, UnlearnModule) or issubclass(cls, RUM):
            raise ValueError(f"{where}: method {method['class_path']!r} is not an unlearning method "
                             "(expected an UnlearnModule other than RUM)")
        streams = set(cls.train_streams) | set(cls.extra_streams)
        if not streams <= LEVEL_STREAMS:
            raise ValueError(f"{where}: {cls.__name__} reads streams {sorted(streams - LEVEL_STREAMS)}: "
                             f"a level's method may read only {sorted(LEVEL_STREAMS)}")
        epochs, steps, batches = spec.get("epochs"), spec.get("steps"), spec.get("batches")
        if (epochs is None) == (steps is None):
            raise ValueError(f"{where} needs a budget: exactly one of epochs or steps, got epochs={epochs!r}, steps={steps!r}")
        for key, value in (("epochs", epochs), ("steps", steps)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{where}: {key} must be an integer >= 1, got {value!r}")
        if batches is not None and (isinstance(batches, bool) or not isinstance(batches, (int, float))
                                    or batches <= 0 or (isinstance(batches, float) and batches > 1)):
            raise ValueError(f"{where}: batches must be an integer >= 1 or a share in (0, 1], got {batches!r}")
        init_args = dict(method.get("init_args") or {})
        supplied = [k for k in SUPPLIED_ARGS if init_args.get(k) is not None]
        for key in SUPPLIED_ARGS:
            init_args.pop(key, None)
        if supplied:
            raise ValueError(f"{where}: init_args sets {supplied[0]!r}, which RUM supplies (the previous level's model)")
        if spec.get("lr") is not None:
            init_args["lr"] = spec["lr"]
        try:
            module = cls(net_spec=self.net_spec, **{**init_args, "log_distributions": False})
        except (TypeError, ValueError) as err:
            raise ValueError(f"{where} ({cls.__name__}): {err}") from None
        return Level(name, module, epochs, steps, batches)

    @property
    def stream_options(self) -> dict[str, dict[str, Any]]:
        """RUM's own training stream: the forget set as one batch (one step runs every level)."""
        if self._trainer is None:
            return {}
        size = max(1, int(self.trainer.datamodule.stream_source("forget")[2].numel()))
        return {"forget": {"batch_size": size, "drop_single": False}}

    def configure_optimizers(self) -> Any:
        """A plain SGD over the network that never receives a gradient (each level's method has its own)."""
        return torch.optim.SGD(self.net.parameters(), lr=self.lr)

    # ---- memorisation -----------------------------------------------------------------------
    def memorisation_scores(self, indices: torch.Tensor) -> np.ndarray:
        """The memorisation score of each forget example (higher = more memorised): from
        ``scores_file``, or ``1 - p(y | x)`` under the current network (the original, before any
        level), in evaluation mode, counted in the cost.

        Args:
            indices: the forget set's indices into the training set, in the forget stream's order.

        Raises:
            ValueError: when the scores file is missing, unreadable, or has no finite score for
                some forget example (naming the file, the key and how many).
        """
        if self.scores_file is not None:
            from unlearning.data.scenarios import ScoreBandForget

            out = ScoreBandForget(self.scores_file, key=self.score_key).scores_of(indices.cpu().numpy())
            missing = int((~np.isfinite(out)).sum())
            if missing:
                raise ValueError(f"scores file {self.scores_file!r} has no finite {self.score_key!r} for {missing} of the "
                                 f"{out.size} forget examples: expected scores of this data split (or another score_key)")
            return out
        was_training = self.net.training
        self.net.eval()
        parts, seen = [], 0
        with torch.no_grad():
            for x, y in self.stream("forget", train=False):
                p = F.softmax(self.net(self.prepare_input(x)).float(), dim=1)
                parts.append(1.0 - p.gather(1, y.view(-1, 1)).squeeze(1))
                seen += int(x.shape[0])
        self.net.train(was_training)
        self.count_images(seen)  # evaluation mode: not counted by forward
        return torch.cat(parts).cpu().double().numpy()

    # ---- the levels ---------------------------------------------------------------------------
    def _level_trainer(self, level: Level) -> Trainer:
        """A quiet trainer of the level's budget on RUM's device and precision, without
        validation, logger or checkpoints."""
        device = self.device
        accelerator = {"cuda": "gpu"}.get(device.type, device.type)
        devices: Any = [device.index or 0] if device.type == "cuda" else 1
        return Trainer(
            accelerator=accelerator, devices=devices, precision=self.trainer.precision,
            max_epochs=level.epochs if level.epochs is not None else -1,
            max_steps=level.steps if level.steps is not None else -1,
            limit_train_batches=level.batches,
            limit_val_batches=0, num_sanity_val_steps=0, logger=False, enable_checkpointing=False,
            enable_progress_bar=False, enable_model_summary=False, default_root_dir=self.trainer.default_root_dir,
            log_every_n_steps=self.trainer.log_every_n_steps,
        )

    def run_level(self, level: Level, forget: torch.Tensor) -> None:
        """Unlearn ``forget`` (the level's examples) with the level's method, starting from
        ``self.net``, and take its result and its cost.

        The data module serves the level's examples as its forget set for the length of the
        level's fit (its ``split`` is swapped and put back)."""
        assert level.module is not None
        child = level.module
        state = self.net.state_dict()
        child.net.load_state_dict(state)
        if child.uses_original:
            child.original_net.load_state_dict(state)
        dm = self.trainer.datamodule
        split, owner = dm.split, dm.trainer
        dm.split = dataclasses.replace(split, forget=forget.to(split.forget.device))
        try:
            self._level_trainer(level).fit(child, datamodule=dm)
        finally:
            dm.split, dm.trainer = split, owner
        self.net.load_state_dict(child.net.state_dict())
        self.count_images(int(child.cost["images_seen"]))

    def run_levels(self) -> None:
        """Rank the forget set, cut it into levels and unlearn them in sequence (low first)."""
        if self.trainer.world_size > 1:
            raise ValueError(f"RUM runs its levels on one device: got {self.trainer.world_size} processes (use devices: 1)")
        indices = self.trainer.datamodule.stream_source("forget")[2].cpu()
        active = [lv.module is not None for lv in self.levels]
        if any(active):
            parts = memorisation_levels(self.memorisation_scores(indices), indices.numpy(), self.shares)
        else:  # nothing to do: no ranking pass either
            parts = [np.zeros(0, dtype=np.int64) for _ in self.levels]
        self.level_indices, self.level_report = {}, []
        for level, part in zip(self.levels, parts):
            forget = torch.from_numpy(part)
            self.level_indices[level.name] = forget
            before = int(self.cost["images_seen"])
            if level.module is not None and forget.numel():
                self.run_level(level, forget)
            self.level_report.append({
                "level": level.name, "examples": int(forget.numel()),
                "method": type(level.module).__name__ if level.module is not None else None,
                "images_seen": int(self.cost["images_seen"]) - before,
                "train_time_s": float(level.module.cost["train_time_s"]) if level.module is not None and forget.numel() else 0.0,
            })

    def training_step(self, batch: dict[str, tuple[torch.Tensor, torch.Tensor]], batch_idx: int) -> None:
        """Run every level (on the first step), then stop the fit. An optimiser step without
        gradients (it changes no weight) counts as the trainer's step, so that the checkpoint
        callbacks save the result as for any method."""
        if not self.level_report:
            self.run_levels()
            for row in self.level_report:
                self.log(f"train/{row['level']}_examples", float(row["examples"]))
                self.log(f"train/{row['level']}_images", float(row["images_seen"]))
        self.optimizers().step()
        self.trainer.should_stop = True

    def checkpoint_meta(self) -> dict[str, Any]:
        """The base metadata, plus each level's method, size and cost (``levels``)."""
        return {**super().checkpoint_meta(), "levels": [dict(row) for row in self.level_report]}
