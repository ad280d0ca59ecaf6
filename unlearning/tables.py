"""Tables: how every report of the project formats numbers and lays out columns.

The comparison of ``unlearning.pipeline``, the score report and the leaderboard all format through
here, so that a number reads the same everywhere (three decimals, ``n/a`` when missing).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["COLUMNS", "csv_table", "fmt_number", "fmt_spread", "markdown_table"]

#: (metric key, column title) of the comparison table of per-run test metrics.
COLUMNS = (
    ("retain_acc", "retain acc"),
    ("forget_acc", "forget acc"),
    ("val_acc", "val acc"),
    ("test_acc", "test acc"),
    ("simple_mia", "simple MIA"),
    ("predictive_mia", "predictive MIA"),
    ("mia_efficacy", "MIA-efficacy"),
    ("cost_time_fraction", "cost (x oracle)"),
)


def fmt_number(v: Any) -> str:
    """Three decimals, or ``n/a`` for a missing or non-finite value."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return f"{v:.3f}"


def fmt_spread(stats: Mapping[str, float] | None) -> str:
    """``mean ± std`` of a summary with those keys (``n/a`` if missing)."""
    if not stats:
        return "n/a"
    return f"{fmt_number(stats.get('mean'))} ± {fmt_number(stats.get('std'))}"


def markdown_table(rows: Mapping[str, Mapping[str, Any]], columns: Sequence[tuple[str, str]] = COLUMNS,
                   first: str = "model") -> str:
    """A Markdown table, one row per entry of ``rows``, one column per ``(key, title)``.

    A cell holding a string is written as is; numbers go through :func:`fmt_number`, missing or
    non-finite ones left blank.
    """
    lines = ["| " + " | ".join([first, *(title for _, title in columns)]) + " |", "|---|" + "---:|" * len(columns)]
    for name, metrics in rows.items():
        cells = []
        for key, _ in columns:
            v = metrics.get(key)
            if isinstance(v, str):
                cells.append(v)
            else:
                cells.append("" if fmt_number(v) == "n/a" else fmt_number(v))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def csv_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """CSV text of flat records (the union of their keys as the header, in first-seen order)."""
    header: list[str] = []
    for r in rows:
        header += [k for k in r if k not in header]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=header, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if v is None or (isinstance(v, float) and not math.isfinite(v)) else v) for k, v in r.items()})
    return buf.getvalue()
