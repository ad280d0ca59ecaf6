"""Pack an image folder into one file and unpack it elsewhere, byte for byte (for a machine that
cannot see the shared data folder, such as a lent GPU machine; see ``benchmarks/gpu_check.sh``).

The pack is an uncompressed ``.npz`` holding every file's bytes end to end (``blob``), their
offsets (``offsets``, one more than the files) and their relative paths (``paths``: the UTF-8 text
of the paths, one per line, zlib-compressed). JPEGs do not compress further, and a zip or tar of
60,000 small files would add 7-30 MB of headers; this adds under 1 MB.

    python benchmarks/gpu_data.py pack ../shared/data/cifar10-jpeg .gpu/cifar10-jpeg.npz
    python benchmarks/gpu_data.py unpack .gpu/cifar10-jpeg.npz OUT_DIR
    python benchmarks/gpu_data.py compare ../shared/data/cifar10-jpeg OUT_DIR
"""

from __future__ import annotations

import argparse
import hashlib
import os
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np


def list_files(root: Path, splits: list[str] | None = None) -> list[str]:
    """The relative paths of the (non-hidden) files under ``root``, sorted; only under the given
    top-level folders when ``splits`` is given."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel = Path(dirpath).relative_to(root)
        if splits is not None and rel.parts and rel.parts[0] not in splits:
            dirnames[:] = []
            continue
        out += [(rel / f).as_posix() for f in filenames if not f.startswith(".")]
    if splits is not None:
        out = [p for p in out if "/" in p]
    return sorted(out)


def pack(root: Path, dest: Path, splits: list[str] | None = None) -> None:
    paths = list_files(root, splits)
    if not paths:
        raise SystemExit(f"no file under {root}")
    data = [(root / p).read_bytes() for p in paths]
    offsets = np.zeros(len(data) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(d) for d in data])
    blob = np.frombuffer(b"".join(data), dtype=np.uint8)
    names = np.frombuffer(zlib.compress("\n".join(paths).encode(), 9), dtype=np.uint8)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp.npz")
    np.savez(tmp, blob=blob, offsets=offsets, paths=names)
    tmp.replace(dest)
    print(f"packed {len(paths)} files ({offsets[-1] / 1e6:.2f} MB) into {dest} ({dest.stat().st_size / 1e6:.2f} MB)")


def unpack(src: Path, root: Path, threads: int = 16) -> None:
    start = time.perf_counter()
    with np.load(src) as z:
        blob, offsets = z["blob"], z["offsets"]
        paths = zlib.decompress(z["paths"].tobytes()).decode().split("\n")
    if len(paths) + 1 != len(offsets):
        raise SystemExit(f"{src}: {len(paths)} paths but {len(offsets) - 1} offsets")
    for d in sorted({os.path.dirname(p) for p in paths}):
        (root / d).mkdir(parents=True, exist_ok=True)
    mv = memoryview(blob)

    def write(i: int) -> None:
        with open(root / paths[i], "wb") as f:
            f.write(mv[offsets[i]:offsets[i + 1]])

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(write, range(len(paths)), chunksize=512))
    print(f"unpacked {len(paths)} files ({offsets[-1] / 1e6:.2f} MB) into {root} in {time.perf_counter() - start:.1f} s")


def digest(root: Path, splits: list[str] | None = None) -> tuple[int, str]:
    """How many files and one SHA-1 over every relative path and its bytes, in path order."""
    h = hashlib.sha1()
    paths = list_files(root, splits)
    for p in paths:
        h.update(p.encode() + b"\0" + (root / p).read_bytes() + b"\0")
    return len(paths), h.hexdigest()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("pack", help="pack an image folder into one .npz")
    a.add_argument("root", type=Path)
    a.add_argument("dest", type=Path)
    a.add_argument("--splits", nargs="+", default=None, help="only these top-level folders (e.g. test)")
    a = sub.add_parser("unpack", help="rebuild the folder from a pack")
    a.add_argument("src", type=Path)
    a.add_argument("root", type=Path)
    a.add_argument("--threads", type=int, default=16)
    a = sub.add_parser("compare", help="check that two folders hold the same files, byte for byte")
    a.add_argument("a", type=Path)
    a.add_argument("b", type=Path)
    a.add_argument("--splits", nargs="+", default=None)
    args = p.parse_args()
    if args.cmd == "pack":
        pack(args.root, args.dest, args.splits)
    elif args.cmd == "unpack":
        unpack(args.src, args.root, args.threads)
    else:
        da, db = digest(args.a, args.splits), digest(args.b, args.splits)
        print(f"{args.a}: {da[0]} files, sha1 {da[1]}\n{args.b}: {db[0]} files, sha1 {db[1]}")
        if da != db:
            raise SystemExit("the folders differ")
        print("identical")


if __name__ == "__main__":
    main()
