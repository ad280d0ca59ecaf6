"""Helpers of the example and benchmark scripts: a parser that passes unknown arguments on to
every stage (with ``-v``/``--verbose``), checks of positive flags, and an entry point that turns
bad input into one line."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["add_verbose_flag", "require_positive", "run_script", "script_parser"]

_PASS_THROUGH_HELP = (
    "Any other --key value argument is passed to every `unlearning fit` stage and to the evaluation "
    "(e.g. --trainer.precision bf16-mixed); see `unlearning fit --help`."
)


class _Verbose(argparse.Action):
    """``-v``: sets ``UNLEARNING_VERBOSE=1`` as soon as it is parsed, which every stage (and every
    ``unlearning`` command the script runs in-process or in a subprocess) reads."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        os.environ["UNLEARNING_VERBOSE"] = "1"
        setattr(namespace, self.dest, True)


def add_verbose_flag(parser: argparse.ArgumentParser) -> None:
    """Add ``-v``/``--verbose`` to a script's parser: Lightning's own output (model summaries,
    seeds, devices, tips), which the stages hide otherwise, as ``unlearning -v`` shows it.

    Args:
        parser: the script's parser; parsing ``-v`` sets ``UNLEARNING_VERBOSE=1`` in this process.
    """
    parser.add_argument("-v", "--verbose", action=_Verbose, nargs=0, default=False,
                        help="show Lightning's own output (model summaries, seeds, devices, tips), hidden "
                             "otherwise; the same as UNLEARNING_VERBOSE=1")


def script_parser(doc: str, out: str, cifar_root: bool = False) -> argparse.ArgumentParser:
    """The argument parser of a script (an example) that passes the arguments it does not know on
    to every stage: parse it with ``parse_known_args``.

    Args:
        doc: the script's docstring; its first line is the description.
        out: default of ``--out``, the output folder.
        cifar_root: add ``--root``, a local copy of CIFAR-10 (default: torchvision downloads it).

    Returns:
        The parser, with ``--out`` (and ``--root``), ``-v`` and an epilog about the passed-on
        arguments.
    """
    p = argparse.ArgumentParser(description=doc.strip().splitlines()[0], epilog=_PASS_THROUGH_HELP)
    if cifar_root:
        p.add_argument("--root", default=None,
                       help="local CIFAR-10: an image folder or torchvision's batches (default: download)")
    p.add_argument("--out", default=out, help=f"output folder (default: {out})")
    add_verbose_flag(p)
    return p


def require_positive(args: argparse.Namespace, *names: str) -> None:
    """Check that the flags ``names`` (attribute names of ``args``) are at least 1 where given.

    Raises:
        ValueError: naming the first flag below 1, e.g. ``--train-subset must be >= 1, got 0``.
    """
    for name in names:
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}")


def run_script(main_fn: Callable[[], Any], prog: str) -> None:
    """Entry point of a script (an example, a benchmark): run ``main_fn()``; errors in what the
    user asked for (``ValueError``, ``FileNotFoundError``) are printed as one line,
    ``<prog>: error: ...`` (the first line of the innermost cause), with exit status 2. Set
    ``UNLEARNING_DEBUG=1`` for the traceback.
    """
    try:
        main_fn()
    except (ValueError, FileNotFoundError) as err:
        if os.environ.get("UNLEARNING_DEBUG"):
            raise
        cause: BaseException = err
        while cause.__cause__ is not None:
            cause = cause.__cause__
        lines = [ln.strip() for ln in str(cause).splitlines() if ln.strip()]
        print(f"{prog}: error: {lines[0] if lines else type(cause).__name__}", file=sys.stderr)
        sys.exit(2)
