"""One short GPU check, for a lent GPU machine's few minutes: training speed and accuracy on CUDA.

Run through ``benchmarks/gpu_check.sh`` (which installs the missing wheels, unpacks the data and
calls this); sections in order of importance, each in a process of its own under a time limit
and a global deadline, each writing its results as it goes (a section cut short keeps what it
measured):

1. ``throughput``: ``benchmarks/throughput.py``'s measurement (its ``run_kit`` and
   ``run_project``, alternating within each repeat, 3 repeats of 60 batches of 128 on a 10k
   subset, after an untimed 3-batch warm-up at each precision) on CUDA, ResNet-18 then the small
   CNN, fp32 and bf16-mixed, settings ``plain`` and ``channels_last`` against the starting kit's
   loop; ``benchmarks/results/throughput_<tag>_{fp32,bf16}.json`` in throughput.py's shape.
2. ``presets``: the CPU preset's original and oracle (``configs/cpu/original.yaml``,
   ``configs/cpu/retrain.yaml``) trained on CUDA in fp32 and bf16-mixed through the score's own
   training (:func:`unlearning.scoring.cached_model.train_cached_model`: no validation, then a test of
   the retain, forget and test streams): wall seconds, training images/s, test accuracy.
3. ``fast``: the fast recipe at full scale (``configs/fast/retrain.yaml``, the oracle, on the 45k
   retain images; ``configs/fast/original.yaml`` on all 50k), the same way.
4. ``parallel``: K = 4, 2, 1 oracles trained at once on the one GPU through the score's
   ``--jobs K`` path (:func:`unlearning.scoring.schedule.train_plan`, K spawned workers), one
   oracle per worker, for the fast oracle (``configs/score/fast.yaml``, 5 epochs instead of 10)
   and the ResNet-18 oracle (``configs/score/full.yaml``, 1 epoch instead of 50; the fast
   oracle's K = 1 is section 3's); models per hour for each K and, from them, the estimated wall
   time of both scores (N = 64).
5. ``compile``: throughput rows of ResNet-18 with ``compile`` and ``compile_cudagraphs``
   (fp32, then bf16-mixed; one repeat: each run compiles anew);
   ``benchmarks/results/throughput_<tag>_compile_{fp32,bf16}.json``.

Sections 2-4 and the estimates go to ``benchmarks/results/gpu_check_<tag>.json``; ``<tag>`` is
``cuda_`` and the GPU's model (``cuda_h200``). Every result file is copied into ``--out`` after
each section. ``--tiny`` runs every section on CPU with a few batches on tiny subsets (a test of
the script; sections 1 and 5 on the small CNN alone).

    bash benchmarks/gpu_check.sh                  # on the GPU machine
    GPU_CHECK_TINY=1 bash benchmarks/gpu_check.sh  # here, on CPU: the same script, tiny
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent

#: (section, time limit in s, the least time worth starting it with), in order of importance
PLAN = [("env", 90, 30), ("throughput", 130, 30), ("presets", 100, 20), ("fast", 110, 20), ("parallel", 150, 30),
        ("compile", 240, 45)]

#: the epochs of the full recipes, for the estimates (configs/retrain.yaml, configs/fast/retrain.yaml,
#: and the score's default method, configs/unlearn/finetune.yaml)
ORACLE_EPOCHS = {"fast": 10, "resnet18": 50}
METHOD_EPOCHS = 5
SCORES = {"fast": "configs/score/fast.yaml", "resnet18": "configs/score/full.yaml"}


def write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")
    tmp.replace(path)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def fmt(v: float | None, digits: int = 4) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def log(msg: str) -> None:
    print(f"[gpu_check {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --------------------------------------------------------------------------------------------
# sections (each runs in its own process)


def quiet() -> None:
    import logging
    import warnings

    from unlearning.utils import silence_lightning_noise

    silence_lightning_noise()
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*(does not have many workers|The number of training batches|"
                            "callbacks returned in|could not find the monitored key|predefined classes).*")


def accelerator(args: argparse.Namespace) -> str:
    return "cpu" if args.tiny else "cuda"


def section_env(args: argparse.Namespace) -> dict[str, Any]:
    """Versions, the device, and the decoded data cache filled once (later sections read it)."""
    import lightning
    import torch

    from unlearning.data.sources import load_cifar10

    env: dict[str, Any] = {
        "python": platform.python_version(), "torch": str(torch.__version__), "lightning": lightning.__version__,
        "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "machine": platform.machine(),
        "cuda_available": torch.cuda.is_available(), "c_compiler": shutil.which("cc") or shutil.which("gcc"),
    }
    for mod in ("jsonargparse", "torchvision", "torchmetrics", "triton"):
        try:
            env[mod] = __import__(mod).__version__
        except Exception as e:  # noqa: BLE001 - only reported
            env[mod] = f"missing ({type(e).__name__})"
    if torch.cuda.is_available():
        env["device"] = torch.cuda.get_device_name(0)
        try:  # only reported: a failure here must not stop the check
            p = torch.cuda.get_device_properties(0)
            env.update(device_count=torch.cuda.device_count(), capability=list(torch.cuda.get_device_capability(0)),
                       memory_gib=round(p.total_memory / 2**30, 1), cuda=torch.version.cuda,
                       cudnn=torch.backends.cudnn.version(), bf16_supported=torch.cuda.is_bf16_supported())
        except Exception as e:  # noqa: BLE001
            env["device_info_error"] = f"{type(e).__name__}: {e}"
    elif not args.tiny:
        raise SystemExit("no CUDA device: this check measures a GPU (use --tiny for the CPU test)")
    t0 = time.perf_counter()
    arrays = load_cifar10(args.root)
    env["data"] = {"train": int(arrays.train_x.shape[0]), "test": int(arrays.heldout_x.shape[0]),
                   "decode_s": time.perf_counter() - t0}
    log(f"env: {json.dumps(env)}")
    return env


def load_throughput_module() -> Any:
    spec = importlib.util.spec_from_file_location("throughput_bench", HERE / "throughput.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def measure_throughput(args: argparse.Namespace, units: list[tuple[str, str]], settings: list[str], repeats: int,
                       name: str) -> dict[str, Any]:
    """``throughput.py``'s loop for each (net, precision), the file of each precision rewritten
    after every measurement: ``throughput_<tag>_<name><fp32|bf16>.json``."""
    import torch

    from unlearning.data import CIFAR10DataModule

    thr = load_throughput_module()
    quiet()
    subset, batches = (512, 3) if args.tiny else (10000, 60)
    dm = CIFAR10DataModule(root=args.root, train_subset=subset)
    dm.setup()
    x, y, idx = dm.stream_source("train")
    x, y = x[idx].cpu(), y[idx].cpu()
    device = accelerator(args)
    files: dict[str, str] = {}
    docs: dict[Path, dict[str, Any]] = {}  # one file per precision, the nets added as they are measured
    for net, precision in units:
        short = "fp32" if precision == "32" else "bf16"
        out = Path(args.results) / f"throughput_{args.tag}_{name}{short}.json"
        doc = docs.setdefault(out, {
            "what": "training images/s, median of repeats, measured alternately in one run",
            "batch_size": 128, "batches": batches, "repeats": repeats, "settings": settings,
            "kit_channels_last": False, "threads": torch.get_num_threads(),
            "device": device if device == "cpu" else torch.cuda.get_device_name(), "precision": precision,
            "torch": str(torch.__version__), "machine": platform.machine(), "results": {},
            "produced_by": "benchmarks/gpu_check.py (throughput.py's run_kit and run_project)",
        })
        rates: dict[str, list[float]] = {"kit": [], **{s: [] for s in settings}}
        errors: dict[str, str] = {}
        t0 = time.perf_counter()  # an untimed warm-up of the device at this precision (CUDA context, kernels)
        thr.run_kit(thr.NETS[net](), x, y, 3, 128, False, device, precision)
        log(f"throughput {net} {precision}: warm-up {time.perf_counter() - t0:.1f} s")

        def save() -> None:
            done = {k: v for k, v in rates.items() if v}
            med = {k: statistics.median(v) for k, v in done.items()}
            entry: dict[str, Any] = {"images_per_s": rates, "median": med,
                                     "ratio": {s: med[s] / med["kit"] for s in settings if s in med and "kit" in med}}
            if errors:
                entry["errors"] = errors
            doc["results"][net] = entry
            write_json(out, doc)
            files[out.name] = str(out)

        for r in range(repeats):
            for side in ["kit", *settings]:
                if side in errors:
                    continue
                torch.manual_seed(r)
                t0 = time.perf_counter()
                try:
                    if side == "kit":
                        rate = thr.run_kit(thr.NETS[net](), x, y, batches, 128, False, device, precision)
                    else:
                        rate = thr.run_project(thr.NETS[net](), args.root, subset, batches, 128, side, device, precision)
                except Exception as e:  # noqa: BLE001 - one setting failing (a compile) keeps the others
                    errors[side] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:500]
                    log(f"throughput {net} {precision} {side}: FAILED {errors[side]}")
                    save()
                    continue
                rates[side].append(rate)
                log(f"throughput {net} {precision} repeat {r} {side}: {rate:.0f} img/s ({time.perf_counter() - t0:.1f} s)")
                save()
        med = doc["results"][net]["median"]
        log(f"throughput {net} {precision}: " + ", ".join(
            f"{k} {v:.0f}" + (f" (x{v / med['kit']:.2f})" if k != "kit" and "kit" in med else "") for k, v in med.items()))
    return {"files": files}


def section_throughput(args: argparse.Namespace) -> dict[str, Any]:
    # the CPU test measures the small CNN alone (ResNet-18 takes seconds a batch there): same code
    nets = ["small_cnn"] if args.tiny else ["resnet18", "small_cnn"]
    units = [(net, precision) for net in nets for precision in ("32", "bf16-mixed")]
    return measure_throughput(args, units, ["plain", "channels_last"], 1 if args.tiny else 3, "")


def section_compile(args: argparse.Namespace) -> dict[str, Any]:
    net = "small_cnn" if args.tiny else "resnet18"  # as above (a ResNet-18 compile takes minutes on two cores)
    return measure_throughput(args, [(net, "32"), (net, "bf16-mixed")], ["compile", "compile_cudagraphs"], 1,
                              "compile_")


def data_section(config: str, args: argparse.Namespace) -> dict[str, Any]:
    """The config's data section, with the data's root and, in the CPU test, tiny subsets."""
    data = yaml.safe_load(Path(config).read_text())["data"]
    data = json.loads(json.dumps(data))
    data["init_args"]["root"] = args.root
    if args.tiny:
        data["init_args"].update(train_subset=400, heldout_subset=400, retain_eval_size=64)
    return data


def tiny_args(args: argparse.Namespace) -> list[str]:
    return ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "3"] if args.tiny else []


def run_fits(args: argparse.Namespace, name: str, fits: list[tuple[str, str, str]]) -> dict[str, Any]:
    """Train each (label, fit config, precision) once, seed 0, as the score trains a model."""
    from unlearning.scoring.cached_model import train_cached_model

    quiet()
    out = Path(args.work) / f"{name}.json"
    results: dict[str, Any] = {}
    for label, config, precision in fits:
        extra = ["--trainer.accelerator", accelerator(args), "--trainer.precision", precision, *tiny_args(args)]
        with tempfile.TemporaryDirectory(prefix="gpu-check-fit-") as tmp:
            t0 = time.perf_counter()
            rec = train_cached_model(config, data_section(config, args), 0, extra, Path(tmp))
            wall = time.perf_counter() - t0
        m, c = rec["metrics"], rec["cost"]
        epochs = 1 if args.tiny else yaml.safe_load(Path(config).read_text())["trainer"]["max_epochs"]
        results[label] = {
            "config": config, "precision": precision, "epochs": epochs, "wall_s": wall, "train_time_s": c["train_time_s"],
            "images": c["images_seen"], "train_images_per_s": c["images_seen"] / max(c["train_time_s"], 1e-9),
            "test_acc": m.get("test_acc"), "retain_acc": m.get("retain_acc"), "forget_acc": m.get("forget_acc"),
            "simple_mia": m.get("simple_mia"), "extra_args": extra,
        }
        r = results[label]
        log(f"{name} {label}: wall {wall:.1f} s, train {r['train_time_s']:.1f} s, {r['train_images_per_s']:.0f} img/s, "
            f"test acc {fmt(r['test_acc'])}, retain {fmt(r['retain_acc'])}, forget {fmt(r['forget_acc'])}")
        write_json(out, results)
    return results


def section_presets(args: argparse.Namespace) -> dict[str, Any]:
    return run_fits(args, "presets", [
        ("original_fp32", "configs/cpu/original.yaml", "32"), ("oracle_fp32", "configs/cpu/retrain.yaml", "32"),
        ("original_bf16", "configs/cpu/original.yaml", "bf16-mixed"),
        ("oracle_bf16", "configs/cpu/retrain.yaml", "bf16-mixed"),
    ])


def section_fast(args: argparse.Namespace) -> dict[str, Any]:
    return run_fits(args, "fast", [
        ("oracle_fp32", "configs/fast/retrain.yaml", "32"), ("original_fp32", "configs/fast/original.yaml", "32"),
        ("oracle_bf16", "configs/fast/retrain.yaml", "bf16-mixed"),
    ])


def section_parallel(args: argparse.Namespace) -> dict[str, Any]:
    """K oracles at once through the score's ``--jobs K`` path, one per worker, into empty caches;
    each model's record (wall, training time, images) kept before its cache is removed. Shortened
    recipes (the fast oracle 5 epochs of its 10, ResNet-18 1 of its 50: the estimates scale the
    training time per epoch)."""
    from tqdm.auto import tqdm

    from unlearning.scoring.cache import RecipeCache
    from unlearning.scoring.cached_model import load_stage_config, stage_recipe
    from unlearning.scoring.schedule import Job, TrainPlan, train_plan

    quiet()
    out = Path(args.work) / "parallel.json"
    ks = [2, 1] if args.tiny else [4, 2, 1]
    epochs = {"fast": 1, "resnet18": 1} if args.tiny else {"fast": 5, "resnet18": 1}
    recipes = {r: ["--trainer.max_epochs", str(e)] for r, e in epochs.items()}
    results: dict[str, Any] = {r: {"score_config": SCORES[r], "recipe_args": a, "epochs": epochs[r], "by_k": {}}
                               for r, a in recipes.items()}
    # interleaved, so that a section cut short still has K = 4 of both recipes; the fast oracle's
    # K = 1 is the ``fast`` section's (the same in-process training, at its full 10 epochs)
    order = [(k, r) for k in ks for r in ("fast", "resnet18") if (k, r) != (1, "fast")]
    tmp = Path(tempfile.mkdtemp(prefix="gpu-check-parallel-"))
    try:
        for k, recipe in order:
            recipe_args = recipes[recipe]
            cfg = yaml.safe_load(Path(SCORES[recipe]).read_text())
            oracle = cfg["oracle"]
            data = data_section(SCORES[recipe], args)
            job_args = ["--trainer.accelerator", accelerator(args), *recipe_args, *tiny_args(args)]
            cache_dir = tmp / f"{recipe}-k{k}"
            cache = RecipeCache(cache_dir, "oracle", stage_recipe(load_stage_config(oracle, "oracle"), job_args, data))
            plan = TrainPlan(data, [Job("oracle", cache, 7000 + s, oracle, tuple(job_args)) for s in range(k)],
                             oracle, None, 0)
            t0 = time.perf_counter()
            train_plan(plan, k, None, cache_dir, tqdm(total=k, disable=True))
            wall = time.perf_counter() - t0
            records = [cache.get(7000 + s).record() for s in range(k)]  # type: ignore[union-attr]
            per = [{"wall_s": r["wall_s"], "train_time_s": r["cost"]["train_time_s"],
                    "images": r["cost"]["images_seen"], "test_acc": r["metrics"].get("test_acc")} for r in records]
            mean_wall = statistics.mean(p["wall_s"] for p in per)
            mean_train = statistics.mean(p["train_time_s"] for p in per)
            results[recipe]["by_k"][str(k)] = {
                "n_models": k, "epochs": epochs[recipe], "plan_wall_s": wall, "models": per,
                "mean_model_wall_s": mean_wall, "mean_train_time_s": mean_train,
                "models_per_hour_measured": 3600 * k / wall,
                "models_per_hour_steady": 3600 * k / mean_wall,
                "gpu_images_per_s": sum(p["images"] for p in per) / max(p["train_time_s"] for p in per),
            }
            log(f"parallel {recipe} K={k}: plan {wall:.1f} s, per model wall {mean_wall:.1f} s "
                f"(train {mean_train:.1f} s), {3600 * k / mean_wall:.0f} models/h steady, "
                f"test acc {fmt(statistics.mean(p['test_acc'] or 0.0 for p in per))}")
            write_json(out, results)
            shutil.rmtree(cache_dir, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return results


SECTIONS = {"env": section_env, "throughput": section_throughput, "presets": section_presets, "fast": section_fast,
            "parallel": section_parallel, "compile": section_compile}


# --------------------------------------------------------------------------------------------
# the orchestrator


def gpu_tag(name: str | None, tiny: bool) -> str:
    """``cuda_h200`` from ``NVIDIA H200``; ``cpu_tiny`` for the CPU test."""
    if tiny:
        return "cpu_tiny"
    m = re.search(r"\b([A-Z]{1,2}\d{2,4}[A-Za-z]?)\b", name or "")
    return f"cuda_{m.group(1).lower()}" if m else "cuda_gpu"


def estimates(parallel: dict[str, Any] | None, fast: dict[str, Any] | None, n: int = 64) -> dict[str, Any]:
    """Wall time of a whole score (1 original, 2N oracles, N method runs) with K workers on one GPU,
    from each K's measured oracle: its overhead (wall less training) plus its training time
    scaled to the full recipe's epochs; a method run as ``METHOD_EPOCHS`` epochs on the retain set,
    the original as the oracle's epochs on 10/9 of the images. The fast oracle's K = 1 is the
    ``fast`` section's fp32 oracle (the same in-process training as ``--jobs 1``)."""
    out: dict[str, Any] = {}
    parallel = json.loads(json.dumps(parallel or {}))
    if "fast" in parallel and "1" not in parallel["fast"]["by_k"] and (fast or {}).get("oracle_fp32"):
        f = fast["oracle_fp32"]  # type: ignore[index]
        parallel["fast"]["by_k"]["1"] = {"epochs": f["epochs"], "mean_model_wall_s": f["wall_s"],
                                         "mean_train_time_s": f["train_time_s"], "source": "fast section, oracle_fp32"}
    for recipe, r in parallel.items():
        rows = {}
        for k, row in sorted(r["by_k"].items(), key=lambda kv: -int(kv[0])):
            k_int = int(k)
            per_epoch = row["mean_train_time_s"] / row["epochs"]
            overhead = row["mean_model_wall_s"] - row["mean_train_time_s"]
            oracle = overhead + ORACLE_EPOCHS[recipe] * per_epoch
            method = overhead + METHOD_EPOCHS * per_epoch
            original = overhead + ORACLE_EPOCHS[recipe] * per_epoch * 10 / 9
            total = (2 * n * oracle + n * method + original) / k_int
            rows[k] = {"measured_epochs": row["epochs"], "source": row.get("source", "parallel section"),
                       "oracle_wall_s": oracle, "oracle_models_per_hour": 3600 * k_int / oracle,
                       "method_wall_s": method, "score_wall_h": total / 3600, "score_wall_min": total / 60}
        out[SCORES[recipe]] = {"n_models": n, "oracle_epochs": ORACLE_EPOCHS[recipe], "by_k": rows}
    if out:
        out["assumptions"] = (
            "per model: overhead (model wall less training time, measured at that K) + the full recipe's epochs x "
            "the measured training time per epoch at that K; methods = configs/unlearn/finetune.yaml's 5 epochs on the "
            "retain set; the original = the oracle's epochs on 50k images; all 2N + N + 1 models spread evenly over K "
            "workers; the score's own evaluation after the trainings, worker start-up and the wait for the original "
            "are left out")
    return out


def run_section(name: str, limit: float, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, "-u", str(Path(__file__)), "--section", name, "--root", args.root, "--work", args.work,
           "--results", args.results, "--tag", args.tag] + (["--tiny"] if args.tiny else [])
    log(f"section {name}: start (limit {limit:.0f} s)")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, start_new_session=True)
    status = "ok"
    try:
        rc = proc.wait(timeout=limit)
        if rc != 0:
            status = f"failed (exit code {rc})"
    except subprocess.TimeoutExpired:
        status = f"timed out after {limit:.0f} s (partial results kept)"
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
            try:
                os.killpg(proc.pid, sig)  # the section and its workers: its own process group
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
    seconds = time.perf_counter() - t0
    log(f"section {name}: {status} in {seconds:.1f} s")
    return {"status": status, "seconds": round(seconds, 1), "limit_s": round(limit)}


def copy_out(args: argparse.Namespace) -> None:
    if not args.out:
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for f in sorted(Path(args.results).glob(f"*_{args.tag}*.json")):
        shutil.copy2(f, out / f.name)


def summary_lines(doc: dict[str, Any], results: Path, tag: str) -> list[str]:
    lines = [f"== GPU check {tag}: {doc.get('env', {}).get('device', 'cpu')} "
             f"(torch {doc.get('env', {}).get('torch')}) =="]
    for name, s in doc["sections"].items():
        lines.append(f"section {name:<10} {s['status']} ({s.get('seconds', 0)} s)")
    for short in ("fp32", "bf16", "compile_fp32", "compile_bf16"):
        d = read_json(results / f"throughput_{tag}_{short}.json")
        for net, r in ((d or {}).get("results") or {}).items():
            med = r["median"]
            cells = ", ".join(f"{k} {v:.0f}" + (f" x{r['ratio'][k]:.2f}" if k in r.get("ratio", {}) else "")
                              for k, v in med.items())
            lines.append(f"throughput {short:<12} {net:<9} img/s: {cells}" + (f" ERRORS {r['errors']}" if r.get("errors") else ""))
    fp32, bf16 = (read_json(results / f"throughput_{tag}_{s}.json") or {} for s in ("fp32", "bf16"))
    for net in (fp32.get("results") or {}):
        a, b = fp32["results"][net], ((bf16.get("results") or {}).get(net) or {})
        best = max(a.get("ratio", {}).items(), key=lambda kv: kv[1], default=None)
        line = f"throughput {net}: best fp32 setting over the kit {best[0]} x{best[1]:.2f} (target >= 3)" if best else ""
        if b and "plain" in a.get("median", {}) and "plain" in b.get("median", {}):
            line += f"; bf16-mixed / fp32, plain: x{b['median']['plain'] / a['median']['plain']:.2f}"
            if "channels_last" in a["median"] and "channels_last" in b["median"]:
                line += f", channels_last: x{b['median']['channels_last'] / a['median']['channels_last']:.2f}"
        lines.append(line)
    for sec in ("presets", "fast"):
        for label, r in (doc.get(sec) or {}).items():
            lines.append(f"{sec:<8} {label:<14} wall {r['wall_s']:6.1f} s  train {r['train_time_s']:6.1f} s  "
                         f"{r['train_images_per_s']:7.0f} img/s  test acc {fmt(r['test_acc'])}")
    for recipe, r in (doc.get("parallel") or {}).items():
        for k, row in r["by_k"].items():
            lines.append(f"parallel {recipe:<8} K={k}: plan {row['plan_wall_s']:.1f} s, model wall "
                         f"{row['mean_model_wall_s']:.1f} s, {row['models_per_hour_steady']:.0f} models/h")
    for config, e in (doc.get("estimates") or {}).items():
        if config == "assumptions":
            continue
        for k, row in e["by_k"].items():
            lines.append(f"estimate {config} K={k}: oracle {row['oracle_wall_s']:.1f} s "
                         f"({row['oracle_models_per_hour']:.0f}/h), whole score {row['score_wall_h']:.2f} h")
    return lines


def orchestrate(args: argparse.Namespace) -> None:
    start = time.time()
    deadline = args.deadline or (start + args.budget_s)
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    Path(args.work).mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {"what": "one GPU check (benchmarks/gpu_check.py): see its docstring", "tiny": args.tiny,
                           "started": time.strftime("%Y-%m-%d %H:%M:%S"), "sections": {}}
    summary_path = None
    for name, limit, least in PLAN:
        left = deadline - time.time() - 10  # room to write and copy
        if left < least:
            doc["sections"][name] = {"status": f"skipped ({left:.0f} s left, needs {least})"}
            log(f"section {name}: skipped, {left:.0f} s left")
        else:
            doc["sections"][name] = run_section(name, min(limit, left), args)
        if name == "env":
            env = read_json(Path(args.work) / "env.json") or {}
            doc["env"] = env
            args.tag = gpu_tag(env.get("device"), args.tiny)
            if not doc["sections"]["env"]["status"].startswith("ok"):
                log("the env section failed: no further section is run")
                summary_path = results / f"gpu_check_{args.tag}.json"
                write_json(summary_path, doc)
                break
        elif name in ("presets", "fast", "parallel"):
            doc[name] = read_json(Path(args.work) / f"{name}.json")
            if name == "parallel":
                doc["estimates"] = estimates(doc["parallel"], doc.get("fast"))
        doc["wall_s"] = round(time.time() - start, 1)
        summary_path = results / f"gpu_check_{args.tag}.json"
        write_json(summary_path, doc)
        copy_out(args)
    copy_out(args)
    print("\n".join(summary_lines(doc, results, args.tag)), flush=True)
    if summary_path is not None:
        log(f"wrote {summary_path} and the throughput files in {results}" + ("; copied into the --out folder" if args.out else ""))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", required=True, help="CIFAR-10 image folder")
    p.add_argument("--results", default="benchmarks/results", help="where the result files go")
    p.add_argument("--out", default=None, help="a folder to copy the result files into after each section")
    p.add_argument("--work", default=None, help="scratch folder for the sections' results (default: a temp folder)")
    p.add_argument("--budget-s", type=float, default=470, help="seconds for all sections (from now)")
    p.add_argument("--deadline", type=float, default=None, help="Unix time by which all sections end (overrides --budget-s)")
    p.add_argument("--tiny", action="store_true", help="CPU test of the script: few batches, tiny subsets")
    p.add_argument("--section", choices=list(SECTIONS), help=argparse.SUPPRESS)
    p.add_argument("--tag", default="cpu_tiny", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.section:
        os.environ.setdefault("PYTHONUNBUFFERED", "1")
        result = SECTIONS[args.section](args)
        if args.section == "env":
            write_json(Path(args.work) / "env.json", result)
        return
    if args.work is None:
        args.work = tempfile.mkdtemp(prefix="gpu-check-work-")
    orchestrate(args)


if __name__ == "__main__":
    main()
