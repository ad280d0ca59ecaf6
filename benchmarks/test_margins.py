"""How far each method test passes (or each control fails) its check, under other CPU arithmetic.

A verdict must not hang on the machine: another vector unit or thread count gives slightly
different floating point, and a test whose margin is smaller than that spread passes on one
machine and fails on another. This runs the method tests (``tests/test_methods.py`` by default)
once per setting of ``ATEN_CPU_CAPABILITY`` (the kernels PyTorch dispatches to: ``default`` =
no vector unit, ``avx2``, ``avx512``) and thread count (``UNLEARNING_TEST_THREADS``), reads the
margin each test records (``record_property("margin", ...)``: positive = passed by that much)
from pytest's JUnit XML, and prints per test the margin under each setting, the smallest, and
the spread (largest - smallest). Writes ``benchmarks/results/test_margins.json``.

    python benchmarks/test_margins.py                       # all settings this CPU offers
    python benchmarks/test_margins.py --capabilities default avx2 --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def cpu_capabilities() -> list[str]:
    """The ``ATEN_CPU_CAPABILITY`` values this CPU can run, lowest first."""
    import torch

    best = torch.backends.cpu.get_cpu_capability().lower()
    order = ["default", "avx2", "avx512"]
    return order[: order.index(best) + 1] if best in order else ["default", best]


def run_setting(capability: str, threads: int, tests: list[str], extra: list[str]) -> dict[str, dict[str, float]]:
    """Run ``tests`` under one setting; ``{test id: {property: value}}`` of what they recorded
    (and ``failed``: 1.0 for a failed test)."""
    env = dict(os.environ, ATEN_CPU_CAPABILITY=capability, UNLEARNING_TEST_THREADS=str(threads))
    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "junit.xml"
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", f"--junitxml={xml}",
                        "-o", "junit_family=xunit1", *tests, *extra], cwd=REPO, env=env, check=False)
        out: dict[str, dict[str, float]] = {}
        for case in ET.parse(xml).getroot().iter("testcase"):
            props = {p.get("name"): float(p.get("value")) for p in case.iter("property")}
            if case.find("failure") is not None or case.find("error") is not None:
                props["failed"] = 1.0
            if props:
                out[case.get("name")] = props
        return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--capabilities", nargs="+", default=None, help="ATEN_CPU_CAPABILITY values (default: all this CPU has)")
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2], help="torch thread counts")
    p.add_argument("--tests", nargs="+", default=["tests/test_methods.py"], help="pytest targets")
    p.add_argument("--pytest-args", nargs=argparse.REMAINDER, default=[], help="more pytest arguments (last)")
    p.add_argument("--out", default="benchmarks/results/test_margins.json")
    args = p.parse_args()
    caps = args.capabilities or cpu_capabilities()

    settings = [(c, t) for c in caps for t in args.threads]
    results: dict[str, dict[str, dict[str, float]]] = {}
    t0 = time.perf_counter()
    for cap, threads in settings:
        name = f"{cap}/{threads}t"
        print(f"== {name}", flush=True)
        results[name] = run_setting(cap, threads, args.tests, args.pytest_args)

    tests = sorted({t for r in results.values() for t in r})
    rows = []
    for test in tests:
        keys = sorted({k for r in results.values() for k in r.get(test, {}) if k != "failed"})
        for key in keys:
            values = {s: r[test][key] for s, r in results.items() if key in r.get(test, {})}
            failed = [s for s, r in results.items() if r.get(test, {}).get("failed")]
            rows.append({"test": test, "property": key, "values": values, "min": min(values.values()),
                         "spread": max(values.values()) - min(values.values()), "failed_under": failed})

    names = [f"{c}/{t}t" for c, t in settings]
    print("\n| test | property | " + " | ".join(names) + " | min | spread |")
    print("|---|---|" + "---:|" * (len(names) + 2))
    for row in rows:
        cells = [f"{row['values'][n]:+.3f}" if n in row["values"] else "-" for n in names]
        print(f"| {row['test']} | {row['property']} | " + " | ".join(cells) + f" | {row['min']:+.3f} | {row['spread']:.3f} |")
    out = REPO / args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"cpu": platform.processor() or platform.machine(), "settings": names,
                               "wall_s": round(time.perf_counter() - t0, 1), "rows": rows}, indent=1))
    print(f"\nwrote {out.relative_to(REPO)} ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
