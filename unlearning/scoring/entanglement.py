"""How entangled each scenario's forget set is with its retain set, for the method x scenario matrix.

Zhao et al. (NeurIPS 2024) found unlearning harder the more the forget set is entangled with the
retain set in the original's embedding space. For every scenario of a matrix, the entanglement
score (:func:`~unlearning.metrics.memorisation.entanglement_score`: the spread within retain and
forget over the spread between their means) is computed on the penultimate features of the
original every method started from, once per scenario; the features of the training set are
computed once per original and shared by the scenarios.

The original is found through the cache entries that the scenario's ``leaderboard.json`` names
(:func:`original_checkpoint`), never by recomputing a recipe, so a matrix scored by older code is
read as it was scored. :func:`refresh_matrix` rewrites the matrix files of a finished run with the
entanglement, training nothing::

    python -m unlearning.scoring.entanglement runs/leaderboard/scenarios_cpu
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import warnings
from pathlib import Path
from typing import Any

import torch

from unlearning.metrics.memorisation import entanglement_score, penultimate_features
from unlearning.modules.checkpoint import load_net
from unlearning.scoring.cache import MODEL_FILE
from unlearning.scoring.cached_model import score_datamodule
from unlearning.scoring.matrix import fmt_entanglement, scenario_data, write_matrix

__all__ = ["main", "matrix_entanglement", "original_checkpoint", "refresh_matrix", "scenario_entanglement"]

#: the features of a training set under an original: ``{(checkpoint, training rows): N x D}``
FeatureStore = dict[tuple[str, bytes], torch.Tensor]


def original_checkpoint(board: dict[str, Any], cache_dir: str | Path | None = None) -> Path:
    """The checkpoint of the original that a leaderboard's methods started from, found through the
    cache entries their scores record.

    Args:
        board: a ``leaderboard.json`` payload.
        cache_dir: the model cache (default: the one the scores name).

    Returns:
        The checkpoint's path.

    Raises:
        ValueError: when the board names no method or the checkpoint is not in the cache.
    """
    methods = board.get("methods") or {}
    if not methods:
        raise ValueError("the leaderboard names no method: expected the leaderboard.json of a finished run")
    cache = next(iter(methods.values()))["cache"]
    original = str(cache["original"])
    if original.endswith(".ckpt"):  # a given checkpoint, not a cached training
        path = Path(original)
    else:
        root = Path(cache_dir if cache_dir is not None else cache["dir"])
        if not (root / original).is_dir():
            raise ValueError(f"the original's cache folder {str(root / original)!r} does not exist: expected the "
                             "cache the leaderboard was scored into (give its cache_dir)")
        recipe = root / cache["method"] / "recipe.json"  # a method's recipe names its original's seed
        seed = json.loads(recipe.read_text())["recipe"].get("original_seed") if recipe.is_file() else None
        seeds = sorted((root / original).glob("seed-*")) if seed is None else [root / original / f"seed-{int(seed):04d}"]
        if len(seeds) != 1:
            raise ValueError(f"cannot tell the original's seed in {str(root / original)!r}: expected the method "
                             f"cache's recipe.json or one seed folder, found {len(seeds)} seed folders")
        path = seeds[0] / MODEL_FILE
    if not path.is_file():
        raise ValueError(f"the original checkpoint {str(path)!r} does not exist: expected the cache the "
                         "leaderboard was scored into (give its cache_dir)")
    return path


def scenario_entanglement(data: dict[str, Any], checkpoint: str | Path, store: FeatureStore | None = None) -> float:
    """The entanglement score of a scenario's forget set against its retain set in the original's
    penultimate features.

    Args:
        data: the scenario's data section (:func:`~unlearning.scoring.matrix.scenario_data`).
        checkpoint: the original's checkpoint.
        store: keeps the features of each (checkpoint, training set) between calls, so that the
            scenarios of one setting run the original once.

    Returns:
        The score (``inf`` when the two sets have the same mean).
    """
    dm = score_datamodule(data)
    dm.setup("fit")
    rows = dm.split.train
    key = (str(checkpoint), rows.numpy().tobytes())
    store = {} if store is None else store
    if key not in store:
        net, _ = load_net(checkpoint)
        size = int(getattr(dm, "eval_batch_size", 256))
        x = dm.arrays.train_x
        store[key] = penultimate_features(net, (x[rows[b : b + size]] for b in range(0, rows.numel(), size)),
                                          dm.eval_transform)
    feats = store[key]
    in_forget = torch.isin(rows, dm.split.forget)
    return entanglement_score(feats[~in_forget], feats[in_forget])


def matrix_entanglement(datas: dict[str, dict[str, Any]], boards: dict[str, dict[str, Any]],
                        cache_dir: str | Path | None = None, strict: bool = True) -> dict[str, float]:
    """Each scenario's :func:`scenario_entanglement`, its original found by :func:`original_checkpoint`.

    Args:
        datas: each scenario's data section.
        boards: each scenario's ``leaderboard.json`` payload.
        cache_dir: the model cache (default: the one the scores name).
        strict: raise when a scenario's entanglement cannot be computed; ``False``: warn and give
            it ``NaN`` (a leaderboard that trained for hours still writes its matrix, and
            :func:`refresh_matrix` can fill the value in later).

    Returns:
        ``{scenario: entanglement}``, for the scenarios of ``boards``.

    Raises:
        ValueError: with ``strict``, when an original is not in the cache.
    """
    store: FeatureStore = {}
    out = {}
    for name, board in boards.items():
        try:
            out[name] = scenario_entanglement(datas[name], original_checkpoint(board, cache_dir), store)
        except (ValueError, OSError, RuntimeError) as err:
            if strict:
                raise
            warnings.warn(f"scenario {name!r}: no entanglement ({err}); the matrix is written without it "
                          "(python -m unlearning.scoring.entanglement fills it in later)", stacklevel=2)
            out[name] = math.nan
    return out


def refresh_matrix(output_dir: str | Path, cache_dir: str | Path | None = None, root: str | None = None,
                   dest: str | Path | None = None) -> dict[str, Any]:
    """Rewrite the matrix of a finished ``unlearning leaderboard --scenarios`` run from its files:
    each scenario's ``leaderboard.json``, the setting in ``scenarios.json`` and the cached original
    (for the entanglement). Nothing is trained or scored again.

    Args:
        output_dir: the run's output folder (``scenarios.json`` and a folder per scenario).
        cache_dir: the model cache (default: the one the scores name).
        root: where the data lives, replacing the data section's ``root`` (for a run made in
            another folder); ``None`` keeps it.
        dest: where to write ``scenarios.json``, ``.md`` and ``.png`` (default: ``output_dir``).

    Returns:
        The new content of ``scenarios.json``.

    Raises:
        ValueError: naming the file when ``scenarios.json`` or a scenario's ``leaderboard.json`` is
            missing, or the original is not in the cache.
    """
    out = Path(output_dir)
    summary = out / "scenarios.json"
    if not summary.is_file():
        raise ValueError(f"{str(summary)!r} does not exist: expected the output folder of unlearning leaderboard "
                         "with scenarios")
    old = json.loads(summary.read_text())
    data = copy.deepcopy((old.get("config") or {}).get("data"))
    if not isinstance(data, dict) or not data.get("class_path") or not old.get("scenarios"):
        raise ValueError(f"{str(summary)!r} records no data section or no scenarios: expected the matrix of "
                         "unlearning leaderboard run from its command line")
    if root is not None:
        data["init_args"] = {**dict(data.get("init_args") or {}), "root": root}
    # in the matrix's order (its rows'): the scenarios' mapping was written with sorted keys
    names = list(dict.fromkeys([r["scenario"] for r in old.get("rows") or []] + list(old["scenarios"])))
    boards = {}
    for name in names:
        path = out / name / "leaderboard.json"
        if not path.is_file():
            raise ValueError(f"scenario {name!r} has no {str(path)!r}: expected a finished leaderboard per scenario")
        boards[name] = json.loads(path.read_text())
    datas = {name: scenario_data(data, old["scenarios"][name]) for name in names}
    setting = {k: old[k] for k in ("n_models", "seed_base", "cost_limit", "scenarios", "config") if k in old}
    return write_matrix(Path(dest) if dest is not None else out, boards, setting,
                        matrix_entanglement(datas, boards, cache_dir))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """``python -m unlearning.scoring.entanglement OUTPUT_DIR``: :func:`refresh_matrix` from the
    command line; prints each scenario's entanglement.

    Returns:
        The new content of ``scenarios.json``.
    """
    p = argparse.ArgumentParser(prog="python -m unlearning.scoring.entanglement", description=(
        "Rewrite scenarios.json, .md and .png of a finished method x scenario matrix from its leaderboards and "
        "the cached original, with each scenario's entanglement; trains nothing."))
    p.add_argument("output_dir", help="the matrix's folder (holding scenarios.json)")
    p.add_argument("--cache_dir", default=None, help="the model cache (default: the one the scores name)")
    p.add_argument("--root", default=None, help="where the data lives, if not where the run found it")
    p.add_argument("--dest", default=None, help="write the three files here instead of into output_dir")
    args = p.parse_args(argv)
    payload = refresh_matrix(args.output_dir, args.cache_dir, args.root, args.dest)
    print("entanglement: " + ", ".join(f"{s} {fmt_entanglement(v)}" for s, v in payload["entanglement"].items()),
          flush=True)
    return payload


if __name__ == "__main__":
    main()
