"""Where images come from: CIFAR-10, CIFAR-100, SVHN, Tiny-ImageNet, any image folder, and
synthetic data.

Every source is decoded once into uint8 tensors (``N x C x H x W``) and cached on disk, keyed by
the source's files (path, size, modification time) and the loading options, so that later runs
load it in about a second; the arrays of the last two sources loaded are also kept in memory for
the life of the process (treat them as read-only).
"""

from __future__ import annotations

import hashlib
import os
import pickle
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from unlearning.data.sizing import as_size, fit_size
from unlearning.utils import atomic_path

__all__ = [
    "CIFAR10_CLASSES",
    "SVHN_CLASSES",
    "SourceArrays",
    "default_cache_dir",
    "load_cifar10",
    "load_cifar100",
    "load_image_folder",
    "load_svhn",
    "load_tiny_imagenet",
    "make_synthetic_images",
]

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
#: SVHN's classes: the digits, label ``d`` for digit ``d`` (the files' label 10 is digit 0)
SVHN_CLASSES = tuple(str(d) for d in range(10))
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
_SUFFIXES = ", ".join(sorted(_IMAGE_SUFFIXES))


@dataclass
class SourceArrays:
    """A data source's labelled examples held in memory: images (uint8) or, for toy sources such
    as the two circles, points (float).

    Attributes:
        train_x: training inputs: uint8 images ``N x C x H x W``, or float points ``N x D``.
        train_y: int64 training labels, ``N``.
        heldout_x: held-out inputs (CIFAR-10's test set), split later into val and test.
        heldout_y: int64 held-out labels.
        classes: class names in label order.
    """

    train_x: torch.Tensor
    train_y: torch.Tensor
    heldout_x: torch.Tensor
    heldout_y: torch.Tensor
    classes: tuple[str, ...]


def default_cache_dir() -> Path:
    """The cache folder: ``$UNLEARNING_CACHE_DIR``, else ``~/.cache/unlearning``."""
    return Path(os.environ.get("UNLEARNING_CACHE_DIR", Path.home() / ".cache" / "unlearning"))


def _save_atomic(obj: dict, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _to_arrays(d: dict) -> SourceArrays:
    return SourceArrays(d["train_x"], d["train_y"], d["heldout_x"], d["heldout_y"], tuple(d["classes"]))


def _from_arrays(a: SourceArrays) -> dict:
    return {
        "train_x": a.train_x,
        "train_y": a.train_y,
        "heldout_x": a.heldout_x,
        "heldout_y": a.heldout_y,
        "classes": list(a.classes),
    }


# ---- caches ------------------------------------------------------------------------------------

_LOADED: dict[tuple, SourceArrays] = {}


def _remembered(key: tuple, load: Callable[[], SourceArrays]) -> SourceArrays:
    """The arrays of ``key`` from memory, else ``load()``; the last two sources stay in memory."""
    arrays = _LOADED.get(key)
    if arrays is None:
        arrays = load()
        _LOADED[key] = arrays
        while len(_LOADED) > 2:
            _LOADED.pop(next(iter(_LOADED)))
    return arrays


def _cached(cache_dir: Path, prefix: str, root: Path, files: Iterable[Path], options: str,
            build: Callable[[], SourceArrays]) -> SourceArrays:
    """The decoded arrays of ``files`` from ``<cache_dir>/<prefix>-<key>.pt``, else ``build()``'s,
    saved there atomically. The key hashes ``root``, every file's path, size and modification time
    (an edited file, even of the same size, gives a new cache; reading every byte of 60,000 files
    at each start would cost more), and ``options`` (what else changes the arrays)."""
    h = hashlib.sha1(str(root.resolve()).encode())
    if options:
        h.update(f"[{options}]".encode())
    for f in files:
        st = f.stat()
        h.update(f"{f.relative_to(root)}:{st.st_size}:{st.st_mtime_ns};".encode())
    cache = cache_dir / f"{prefix}-{h.hexdigest()[:16]}.pt"
    if cache.is_file():
        return _to_arrays(torch.load(cache, weights_only=True))
    arrays = build()
    _save_atomic(_from_arrays(arrays), cache)
    return arrays


def _download(name: str, target: Path, fetch: Callable[[], object], layouts: str) -> None:
    """Download a torchvision dataset into ``target`` with ``fetch()``; one line if that fails."""
    try:
        fetch()
    except Exception as err:  # noqa: BLE001 - any network failure means the same to the user
        raise FileNotFoundError(
            f"could not download {name} into {str(target)!r} ({type(err).__name__}: {err}); give a local copy "
            f"with --data.init_args.root PATH, where PATH is {layouts}"
        ) from None


# ---- image files -------------------------------------------------------------------------------

def _image_files(folder: Path, root: Path, rel: str, pattern: str) -> list[Path]:
    """The image files of ``folder`` (``rel`` below ``root``), sorted; hidden files are skipped.

    Raises:
        ValueError: if the folder holds a file that is not an image (by its suffix) or no image.
    """
    found = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    other = [p for p in found if p.suffix.lower() not in _IMAGE_SUFFIXES]
    if other:
        raise ValueError(f"image folder {str(root)!r}: {str(other[0])!r} is not an image: expected only "
                         f"image files ({_SUFFIXES}) in {pattern}")
    if not found:
        raise ValueError(f"image folder {str(root)!r}: {rel} holds no image: expected image files "
                         f"({_SUFFIXES}) in every class folder")
    return found


def _list_split(root: Path, split: str) -> tuple[list[Path], list[str]]:
    """The image files of ``root/split/<class>/`` in class order, and the class names.

    Raises:
        ValueError: if the split has no class folder, a class folder holds no image, or a file in
            a class folder is not an image (by its suffix; hidden files such as ``.DS_Store`` are
            skipped), naming the folder or the file.
    """
    split_dir = root / split
    classes = sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise ValueError(f"image folder {str(root)!r}: {split}/ has no class folder: expected {split}/<class>/*.jpg")
    files = []
    for c in classes:
        files += _image_files(split_dir / c, root, f"{split}/{c}/", f"{split}/<class>/")
    return files, classes


def _decode(path: Path) -> np.ndarray:
    """The RGB pixels of an image file.

    Raises:
        ValueError: if the file cannot be decoded as an image, naming it.
    """
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.array(im.convert("RGB"), dtype=np.uint8)
    except Exception as err:  # noqa: BLE001 - PIL raises OSError, ValueError, SyntaxError, ... for a bad file
        text = str(err).splitlines()[0] if str(err) else ""
        reason = type(err).__name__ if not text or str(path) in text else text
        raise ValueError(f"image {str(path)!r} cannot be decoded ({reason}): expected a readable image file "
                         f"({_SUFFIXES})") from None


def _decode_all(files: Sequence[Path], root: Path, size: tuple[int, int] | None, resize_mode: str,
                resize_hint: bool) -> torch.Tensor:
    """The images of ``files`` as one uint8 ``N x 3 x H x W`` tensor, each brought to ``size``
    (see :func:`~unlearning.data.sizing.fit_size`) when one is given.

    Raises:
        ValueError: if a file cannot be decoded, or (without ``size``) the images differ in size:
            the first image of another size than most is named, and with ``resize_hint`` an image
            of the common size too, and the ``image_size`` option.
    """

    def load(path: Path) -> torch.Tensor:
        im = torch.from_numpy(_decode(path)).permute(2, 0, 1)
        if size is None:
            return im
        try:
            return fit_size(im[None], size, resize_mode)[0]
        except ValueError as err:  # an image larger than the size to pad to
            raise ValueError(f"image {str(path)!r}: {err}") from None

    with ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1))) as pool:
        images = list(pool.map(load, files, chunksize=256))
    shapes = Counter(tuple(im.shape[1:]) for im in images)
    if len(shapes) > 1:  # the most common size is the dataset's; name the first image of another
        (h, w), count = shapes.most_common(1)[0]
        bad = next(i for i, im in enumerate(images) if tuple(im.shape[1:]) != (h, w))
        line = (f"image {str(files[bad])!r} is {images[bad].shape[2]}x{images[bad].shape[1]} pixels: "
                f"expected {w}x{h}, the size of the other {count} images of {str(root)!r}")
        if resize_hint:
            good = next(i for i, im in enumerate(images) if tuple(im.shape[1:]) == (h, w))
            line += (f" (e.g. {str(files[good])!r}), or image_size set (--data.init_args.image_size) to bring "
                     "every image to one size")
        raise ValueError(line)
    return torch.stack(images) if images else torch.empty(0, 3, 0, 0, dtype=torch.uint8)


# ---- image folders -----------------------------------------------------------------------------

def load_image_folder(
    root: str | Path,
    cache_dir: str | Path | None = None,
    classes: Sequence[str] | None = None,
    image_size: int | Sequence[int] | None = None,
    resize_mode: str = "resize",
    resize_hint: bool = True,
) -> SourceArrays:
    """Load an image folder: ``train/<class>/*`` (the training set) and ``test/<class>/*`` (the
    held-out set), with the same class folders in both.

    Files are taken in sorted order, class by class; a file's label is its class folder's index in
    ``classes``. Any format PIL reads (``.jpg``, ``.jpeg``, ``.png``, ``.bmp``, ``.webp``) and any
    mode (converted to RGB).

    Args:
        root: the folder holding ``train/`` and ``test/``.
        cache_dir: where the decoded tensors are kept; see :func:`default_cache_dir`.
        classes: the label order: the class folders' names (the sorted names if ``None``, as
            ``torchvision.datasets.ImageFolder`` orders them).
        image_size: bring every image to this size (``int`` or ``[height, width]``) when decoding;
            ``None`` keeps their size, which must then be the same for all.
        resize_mode: ``resize`` or ``pad`` (see :func:`~unlearning.data.sizing.fit_size`).
        resize_hint: name ``image_size`` in the error about images of different sizes (off for a
            dataset whose size is fixed, such as CIFAR-10).

    Returns:
        The images as uint8 tensors.

    Raises:
        FileNotFoundError: if ``root``, ``train/`` or ``test/`` is not a folder.
        ValueError: for an empty class folder, a file that is no image or cannot be decoded,
            classes that differ between ``train/`` and ``test/`` or from ``classes``, and images
            of different sizes without ``image_size``: one line naming the folder or file.
    """
    root = Path(root)
    size = as_size(image_size, resize_mode)
    layout = "a folder holding train/<class>/* and test/<class>/* (image files)"
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {str(root)!r} does not exist: expected {layout}")
    for split in ("train", "test"):
        if not (root / split).is_dir():
            raise FileNotFoundError(f"image folder {str(root)!r} has no {split}/ folder: expected {layout}")
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = ("imagefolder", str(root.resolve()), str(cache_dir.resolve()),
           tuple(classes) if classes is not None else None, size, resize_mode)
    return _remembered(key, lambda: _load_image_folder(root, cache_dir, classes, size, resize_mode, resize_hint))


def _load_image_folder(root: Path, cache_dir: Path, classes: Sequence[str] | None, size: tuple[int, int] | None,
                       resize_mode: str, resize_hint: bool) -> SourceArrays:
    train_files, train_classes = _list_split(root, "train")
    test_files, test_classes = _list_split(root, "test")
    if train_classes != test_classes:
        only = [f"{a}/ has {sorted(set(x) - set(y))}" for a, x, y in
                (("train", train_classes, test_classes), ("test", test_classes, train_classes)) if set(x) - set(y)]
        raise ValueError(f"image folder {str(root)!r}: train/ and test/ hold different classes ({'; '.join(only)} "
                         "that the other lacks): expected the same class folders in both")
    if classes is None:
        classes = train_classes
    elif sorted(classes) != train_classes:
        raise ValueError(f"image folder {str(root)!r} holds the classes {train_classes}: expected the folders "
                         f"{sorted(classes)}")
    order = list(classes)
    files = train_files + test_files
    options = f"classes={','.join(order)};size={size};mode={resize_mode if size else ''}"

    def build() -> SourceArrays:
        x = _decode_all(files, root, size, resize_mode, resize_hint)
        y = torch.tensor([order.index(f.parent.name) for f in files], dtype=torch.long)
        n = len(train_files)
        return SourceArrays(x[:n], y[:n], x[n:], y[n:], tuple(order))

    return _cached(cache_dir, "imagefolder", root, files, options, build)


# ---- torchvision's pickles (CIFAR-10, CIFAR-100) -------------------------------------------------

class _ArrayUnpickler(pickle.Unpickler):
    """Reads a pickle of plain data and numpy arrays only (what the CIFAR pickles hold): any other
    global, which could run code, is refused."""

    ALLOWED = {
        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    }

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"it holds code ({module}.{name})")
        return super().find_class(module, name)


def _read_pickle(path: Path, expected: str, keys: Sequence[str]) -> dict:
    """The dict of one of torchvision's pickles (read as torchvision does, with latin1), checked.

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: if it cannot be unpickled (truncated, not a pickle, holding code), is no dict,
            or lacks one of ``keys``: one line naming it and ``expected``.
    """
    if not path.is_file():
        raise FileNotFoundError(f"{str(path)!r} does not exist: expected {expected}")
    try:
        with open(path, "rb") as fh:
            entry = _ArrayUnpickler(fh, encoding="latin1").load()
    except Exception as err:  # noqa: BLE001 - EOFError, UnpicklingError, ValueError ... for a bad file
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"{str(path)!r} cannot be read ({reason}): expected {expected}") from None
    if not isinstance(entry, dict):
        raise ValueError(f"{str(path)!r} holds a {type(entry).__name__}: expected {expected}")
    missing = [k for k in keys if k not in entry]
    if missing:
        raise ValueError(f"{str(path)!r} has no {missing[0]!r} entry: expected {expected}")
    return entry


def _pickled_images(path: Path, entry: dict, expected: str, label_key: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``N x 3 x 32 x 32`` images and labels of a CIFAR pickle's ``data`` and ``label_key``."""
    data = np.asarray(entry["data"])
    labels = np.asarray(entry[label_key])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or labels.shape != (data.shape[0],):
        raise ValueError(f"{str(path)!r} holds data of shape {list(data.shape)} ({data.dtype}) and "
                         f"{list(labels.shape)} labels: expected {expected}")
    return torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()), torch.from_numpy(labels.astype(np.int64))


def _load_batches(batch_dir: Path, cache_dir: Path) -> SourceArrays:
    expected = "a batch of torchvision's CIFAR-10 (a pickled dict with 'data', N x 3072 uint8, and 'labels')"

    def read(names: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        parts = [_pickled_images(batch_dir / n, _read_pickle(batch_dir / n, expected, ("data", "labels")),
                                 expected, "labels") for n in names]
        return torch.cat([x for x, _ in parts]), torch.cat([y for _, y in parts])

    def build() -> SourceArrays:
        train_x, train_y = read([f"data_batch_{i}" for i in range(1, 6)])
        test_x, test_y = read(["test_batch"])
        return SourceArrays(train_x, train_y, test_x, test_y, CIFAR10_CLASSES)

    return _cached(cache_dir, "cifar10-batches", batch_dir, sorted(batch_dir.iterdir()), "", build)


_LAYOUTS = (
    "an image folder with train/<class>/*.jpg and test/<class>/*.jpg (e.g. ../shared/data/cifar10-jpeg), "
    "or torchvision's CIFAR-10 batches (a folder holding cifar-10-batches-py/)"
)


def load_cifar10(root: str | Path | None, cache_dir: str | Path | None = None, download: bool = True) -> SourceArrays:
    """Load CIFAR-10 from a local copy, or download it with torchvision.

    The arrays of the last two sources loaded are kept in memory for the life of the process, so
    that many runs in one process (e.g. ``unlearning score``) neither list the image folder nor
    read the decoded cache again. Treat the returned tensors as read-only.

    Args:
        root: an image folder (``train/<class>/*``, ``test/<class>/*``, read by
            :func:`load_image_folder`, in CIFAR-10's label order when it holds exactly CIFAR-10's
            classes), a folder holding torchvision's ``cifar-10-batches-py/`` (or that folder
            itself), or ``None`` to use torchvision's download into ``<cache_dir>/cifar10``.
        cache_dir: where decoded tensors (and downloads) are kept; see :func:`default_cache_dir`.
        download: allow torchvision to download when ``root`` is ``None``.

    Returns:
        The images as uint8 tensors.

    Raises:
        FileNotFoundError: if ``root`` holds neither accepted layout, or the download fails.
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = ("cifar10", str(Path(root).resolve()) if root is not None else None, str(cache_dir.resolve()))
    return _remembered(key, lambda: _load_cifar10(root, cache_dir, download))


def _load_cifar10(root: str | Path | None, cache_dir: Path, download: bool) -> SourceArrays:
    if root is None:
        target = cache_dir / "cifar10"
        batch_dir = target / "cifar-10-batches-py"
        if not batch_dir.is_dir():
            if not download:
                raise FileNotFoundError(f"no CIFAR-10 at {str(target)!r} and download=False; point root at {_LAYOUTS}")
            import torchvision

            _download("CIFAR-10", target, lambda: torchvision.datasets.CIFAR10(str(target), train=True, download=True),
                      _LAYOUTS)
        return _load_batches(batch_dir, cache_dir)
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"CIFAR-10 root {str(root)!r} does not exist; expected {_LAYOUTS}")
    if (root / "train").is_dir() and (root / "test").is_dir():
        names = {p.name for p in (root / "train").iterdir() if p.is_dir()}
        # CIFAR-10's label order is not alphabetical: keep it when the folder holds exactly its classes.
        order = CIFAR10_CLASSES if names == set(CIFAR10_CLASSES) else None
        return _load_image_folder(root, cache_dir, order, None, "resize", resize_hint=False)
    for batch_dir in (root / "cifar-10-batches-py", root):
        if (batch_dir / "data_batch_1").is_file() and (batch_dir / "test_batch").is_file():
            return _load_batches(batch_dir, cache_dir)
    raise FileNotFoundError(f"CIFAR-10 root {str(root)!r} holds no known layout; expected {_LAYOUTS}")


_CIFAR100_LAYOUT = "torchvision's CIFAR-100 (a folder holding cifar-100-python/ with train, test and meta)"
_CIFAR100_LABELS = {"fine": ("fine_labels", "fine_label_names"), "coarse": ("coarse_labels", "coarse_label_names")}


def load_cifar100(root: str | Path | None, cache_dir: str | Path | None = None, label_kind: str = "fine",
                  download: bool = True) -> SourceArrays:
    """Load CIFAR-100 (torchvision's ``cifar-100-python`` layout: the ``train``, ``test`` and
    ``meta`` pickles), or download it with torchvision.

    Args:
        root: a folder holding ``cifar-100-python/`` (or that folder itself), or ``None`` to use
            torchvision's download into ``<cache_dir>/cifar100``.
        cache_dir: where decoded tensors (and downloads) are kept; see :func:`default_cache_dir`.
        label_kind: ``fine`` (100 classes) or ``coarse`` (the 20 superclasses); the class names
            come from ``meta``.
        download: allow torchvision to download when ``root`` is ``None``.

    Returns:
        The images as uint8 tensors, in the files' order.

    Raises:
        FileNotFoundError: if ``root`` or one of the files does not exist, or the download fails.
        ValueError: for an unknown ``label_kind`` or a file that is not one of torchvision's
            CIFAR-100 pickles (truncated, other keys, other shapes).
    """
    if label_kind not in _CIFAR100_LABELS:
        raise ValueError(f"label_kind {label_kind!r} is unknown: expected one of {list(_CIFAR100_LABELS)}")
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if root is None:
        target = cache_dir / "cifar100"
        folder = target / "cifar-100-python"
        if not folder.is_dir():
            if not download:
                raise FileNotFoundError(f"no CIFAR-100 at {str(target)!r} and download=False; point root at "
                                        f"{_CIFAR100_LAYOUT}")
            import torchvision

            _download("CIFAR-100", target,
                      lambda: torchvision.datasets.CIFAR100(str(target), train=True, download=True), _CIFAR100_LAYOUT)
    else:
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"CIFAR-100 root {str(root)!r} does not exist: expected {_CIFAR100_LAYOUT}")
        folder = root / "cifar-100-python" if (root / "cifar-100-python").is_dir() else root
    key = ("cifar100", str(folder.resolve()), str(cache_dir.resolve()), label_kind)
    return _remembered(key, lambda: _load_cifar100(folder, cache_dir, label_kind))


def _load_cifar100(folder: Path, cache_dir: Path, label_kind: str) -> SourceArrays:
    label_key, names_key = _CIFAR100_LABELS[label_kind]
    names = ("train", "test", "meta")
    if not any((folder / n).is_file() for n in names):
        raise FileNotFoundError(f"CIFAR-100 root {str(folder)!r} holds no train, test or meta file: expected "
                                f"{_CIFAR100_LAYOUT}")
    for n in names:
        if not (folder / n).is_file():
            raise FileNotFoundError(f"{str(folder / n)!r} does not exist: expected {_CIFAR100_LAYOUT}")
    meta_expected = "torchvision's CIFAR-100 meta pickle (a dict with 'fine_label_names' and 'coarse_label_names')"

    def build() -> SourceArrays:
        classes = tuple(str(c) for c in _read_pickle(folder / "meta", meta_expected, (names_key,))[names_key])
        parts = []
        for split in ("train", "test"):
            path = folder / split
            what = (f"torchvision's CIFAR-100 {split} pickle (a dict with 'data', N x 3072 uint8, 'fine_labels' "
                    "and 'coarse_labels')")
            x, y = _pickled_images(path, _read_pickle(path, what, ("data", label_key)), what, label_key)
            if y.numel() and not 0 <= int(y.min()) <= int(y.max()) < len(classes):
                raise ValueError(f"{str(path)!r} has {label_kind} labels in [{int(y.min())}, {int(y.max())}]: "
                                 f"expected labels in [0, {len(classes) - 1}] (the {names_key} of meta)")
            parts += [x, y]
        return SourceArrays(*parts, classes)

    return _cached(cache_dir, f"cifar100-{label_kind}", folder, [folder / n for n in names], "", build)


# ---- SVHN ----------------------------------------------------------------------------------------

_SVHN_LAYOUT = "torchvision's SVHN (a folder holding train_32x32.mat and test_32x32.mat)"


def load_svhn(root: str | Path | None, cache_dir: str | Path | None = None, download: bool = True,
              use_extra: bool = False) -> SourceArrays:
    """Load SVHN's cropped digits (torchvision's ``train_32x32.mat`` and ``test_32x32.mat``, and
    ``extra_32x32.mat`` when asked), or download them with torchvision. Label 10 of the files is
    digit 0, as torchvision maps it.

    Args:
        root: the folder holding the ``.mat`` files, or ``None`` to use torchvision's download
            into ``<cache_dir>/svhn``.
        cache_dir: where decoded tensors (and downloads) are kept; see :func:`default_cache_dir`.
        download: allow torchvision to download when ``root`` is ``None``.
        use_extra: the training split is ``train`` followed by ``extra`` (531,131 easier digits;
            73,257 + 531,131 images in that order), as SVHN's papers that "use the extra set" train.

    Returns:
        The images as uint8 tensors, in the files' order; classes ``"0"`` to ``"9"``.

    Raises:
        FileNotFoundError: if ``root`` or one of the files does not exist, or the download fails.
        ValueError: for a file that is no readable ``.mat`` file of SVHN's keys and shapes.
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    splits = ("train", "test", "extra") if use_extra else ("train", "test")
    if root is None:
        folder = cache_dir / "svhn"
        if not all((folder / f"{s}_32x32.mat").is_file() for s in splits):
            if not download:
                raise FileNotFoundError(f"no SVHN at {str(folder)!r} and download=False; point root at {_SVHN_LAYOUT}")
            import torchvision

            def fetch() -> None:
                for split in splits:
                    torchvision.datasets.SVHN(str(folder), split=split, download=True)

            _download("SVHN", folder, fetch, _SVHN_LAYOUT)
    else:
        folder = Path(root)
        if not folder.is_dir():
            raise FileNotFoundError(f"SVHN root {str(folder)!r} does not exist: expected {_SVHN_LAYOUT}")
    key = ("svhn", str(folder.resolve()), str(cache_dir.resolve()), use_extra)
    return _remembered(key, lambda: _load_svhn(folder, cache_dir, use_extra))


def _read_svhn(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    import scipy.io

    expected = "SVHN's .mat file (X: 32 x 32 x 3 x N uint8, y: N x 1 labels 1-10)"
    try:
        mat = scipy.io.loadmat(str(path), variable_names=["X", "y"])
    except Exception as err:  # noqa: BLE001 - scipy raises ValueError, OSError, TypeError ... for a bad file
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"{str(path)!r} cannot be read ({reason}): expected {expected}") from None
    if "X" not in mat or "y" not in mat:
        raise ValueError(f"{str(path)!r} has no {'X' if 'X' not in mat else 'y'!r} variable: expected {expected}")
    x, y = np.asarray(mat["X"]), np.asarray(mat["y"]).reshape(-1)
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[2] != 3 or y.shape != (x.shape[3],):
        raise ValueError(f"{str(path)!r} holds X of shape {list(x.shape)} ({x.dtype}) and {y.size} labels: "
                         f"expected {expected}")
    if y.size and not (1 <= y.min() and y.max() <= 10):
        raise ValueError(f"{str(path)!r} has labels in [{int(y.min())}, {int(y.max())}]: expected {expected}")
    # as torchvision reads them: H x W x C x N -> N x C x H x W, and label 10 -> digit 0
    images = torch.from_numpy(np.ascontiguousarray(np.transpose(x, (3, 2, 0, 1))))
    return images, torch.from_numpy((y % 10).astype(np.int64))


def _load_svhn(folder: Path, cache_dir: Path, use_extra: bool = False) -> SourceArrays:
    files = [folder / f"{s}_32x32.mat" for s in (("train", "test", "extra") if use_extra else ("train", "test"))]
    for f in files:
        if not f.is_file():
            layout = _SVHN_LAYOUT.replace("test_32x32.mat", "test_32x32.mat, and extra_32x32.mat for use_extra")
            raise FileNotFoundError(f"{str(f)!r} does not exist: expected {layout if use_extra else _SVHN_LAYOUT}")

    def build() -> SourceArrays:
        train_x, train_y = _read_svhn(files[0])
        test_x, test_y = _read_svhn(files[1])
        if use_extra:
            extra_x, extra_y = _read_svhn(files[2])
            train_x, train_y = torch.cat([train_x, extra_x]), torch.cat([train_y, extra_y])
        return SourceArrays(train_x, train_y, test_x, test_y, SVHN_CLASSES)

    return _cached(cache_dir, "svhn-extra" if use_extra else "svhn", folder, files, "", build)


# ---- Tiny-ImageNet -------------------------------------------------------------------------------

_TINY_LAYOUT = ("the tiny-imagenet-200 folder (wnids.txt, train/<wnid>/images/*.JPEG, val/images/*.JPEG and "
                "val/val_annotations.txt) or a folder holding it")


def load_tiny_imagenet(root: str | Path, cache_dir: str | Path | None = None,
                       class_names: str = "words") -> SourceArrays:
    """Load Tiny-ImageNet (the standard ``tiny-imagenet-200`` layout); its labelled ``val`` split is
    the held-out set (the unlabelled ``test`` split is not read).

    Labels follow the sorted wnids (as ``torchvision.datasets.ImageFolder`` on ``train/`` gives
    them). Training images are taken class by class in sorted file order, held-out images in the
    order of ``val/val_annotations.txt``.

    Args:
        root: the ``tiny-imagenet-200`` folder or a folder holding it.
        cache_dir: where decoded tensors are kept; see :func:`default_cache_dir`.
        class_names: ``words``: each class is named by the first name ``words.txt`` gives its
            wnid (followed by the wnid where two classes would share a name; the wnid itself if
            ``words.txt`` is absent or lacks it); ``wnids``: by its wnid.

    Returns:
        The images as uint8 tensors (64 x 64 pixels in the standard copy).

    Raises:
        FileNotFoundError: if ``root``, ``wnids.txt``, a class folder, ``val/val_annotations.txt``
            or an image it names does not exist.
        ValueError: for an empty class folder, a file that is no image or cannot be decoded, an
            annotation line of another form or of an unknown wnid, or images of different sizes.
    """
    if class_names not in ("words", "wnids"):
        raise ValueError(f"class_names {class_names!r} is unknown: expected 'words' or 'wnids'")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"Tiny-ImageNet root {str(root)!r} does not exist: expected {_TINY_LAYOUT}")
    if not (root / "wnids.txt").is_file() and (root / "tiny-imagenet-200").is_dir():
        root = root / "tiny-imagenet-200"
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = ("tiny-imagenet", str(root.resolve()), str(cache_dir.resolve()), class_names)
    return _remembered(key, lambda: _load_tiny_imagenet(root, cache_dir, class_names))


def _tiny_class_names(root: Path, wnids: list[str], class_names: str) -> tuple[str, ...]:
    words: dict[str, str] = {}
    if class_names == "words" and (root / "words.txt").is_file():
        for line in (root / "words.txt").read_text(encoding="utf-8").splitlines():
            wnid, _, text = line.partition("\t")
            words[wnid.strip()] = text.split(",")[0].strip()
    names = [words.get(w) or w for w in wnids]
    counts = Counter(names)
    return tuple(n if counts[n] == 1 or n == w else f"{n} {w}" for n, w in zip(names, wnids))


def _load_tiny_imagenet(root: Path, cache_dir: Path, class_names: str) -> SourceArrays:
    wnids_file = root / "wnids.txt"
    if not wnids_file.is_file():
        raise FileNotFoundError(f"{str(wnids_file)!r} does not exist: expected {_TINY_LAYOUT}")
    wnids = sorted({w.strip() for w in wnids_file.read_text().split() if w.strip()})
    if not wnids:
        raise ValueError(f"{str(wnids_file)!r} lists no wnid: expected one wnid (e.g. n01443537) a line")
    train_files: list[Path] = []
    train_labels: list[int] = []
    for label, wnid in enumerate(wnids):
        folder = root / "train" / wnid / "images"
        if not folder.is_dir():
            raise FileNotFoundError(f"Tiny-ImageNet class folder {str(folder)!r} does not exist: expected "
                                    f"train/<wnid>/images/ for every wnid of wnids.txt")
        found = _image_files(folder, root, f"train/{wnid}/images/", "train/<wnid>/images/")
        train_files += found
        train_labels += [label] * len(found)
    annotations = root / "val" / "val_annotations.txt"
    if not annotations.is_file():
        raise FileNotFoundError(f"{str(annotations)!r} does not exist: expected {_TINY_LAYOUT}")
    index = {w: i for i, w in enumerate(wnids)}
    val_files: list[Path] = []
    val_labels: list[int] = []
    for number, line in enumerate(annotations.read_text().splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2 or fields[1].strip() not in index:
            raise ValueError(f"{str(annotations)!r} line {number} ({line.strip()[:60]!r}): expected "
                             "'<file>\\t<wnid>\\t...' with a wnid of wnids.txt")
        path = root / "val" / "images" / fields[0].strip()
        if not path.is_file():
            raise FileNotFoundError(f"{str(path)!r} (line {number} of {str(annotations)!r}) does not exist: "
                                    "expected the image files of val_annotations.txt in val/images/")
        val_files.append(path)
        val_labels.append(index[fields[1].strip()])
    if not val_files:
        raise ValueError(f"{str(annotations)!r} lists no image: expected one '<file>\\t<wnid>\\t...' line an image")
    classes = _tiny_class_names(root, wnids, class_names)
    files = train_files + val_files
    listed = [wnids_file, annotations]
    if class_names == "words" and (root / "words.txt").is_file():
        listed.append(root / "words.txt")

    def build() -> SourceArrays:
        x = _decode_all(files, root, None, "resize", resize_hint=False)
        n = len(train_files)
        return SourceArrays(x[:n], torch.tensor(train_labels), x[n:], torch.tensor(val_labels), classes)

    return _cached(cache_dir, f"tiny-imagenet-{class_names}", root, listed + files, "", build)


# ---- synthetic -----------------------------------------------------------------------------------

def make_synthetic_images(
    num_train: int = 512,
    num_heldout: int = 256,
    num_classes: int = 10,
    image_size: int = 32,
    signal: float = 0.35,
    seed: int = 0,
) -> SourceArrays:
    """CIFAR-shaped synthetic images that a small CNN learns, and memorises, in seconds.

    Each class has a smooth random prototype; each image is ``signal * prototype + (1 - signal) *
    noise`` with its own noise. The class signal is learnable, while the per-image noise lets a
    model memorise its training images (a train/test gap, like a real original model).

    Args:
        num_train: training images.
        num_heldout: held-out images (later split into val and test).
        num_classes: number of classes.
        image_size: height and width.
        signal: weight of the class prototype, in (0, 1].
        seed: seed of the prototypes, the noise and the labels.

    Returns:
        The images as uint8 tensors.
    """
    if not 0.0 < signal <= 1.0:
        raise ValueError(f"signal must be in (0, 1], got {signal}")
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(num_classes, 3, 4, 4, generator=g)
    protos = torch.nn.functional.interpolate(coarse, size=image_size, mode="bilinear", align_corners=False)

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.arange(n) % num_classes
        y = y[torch.randperm(n, generator=g)]
        noise = torch.rand(n, 3, image_size, image_size, generator=g)
        x = signal * protos[y] + (1 - signal) * noise
        return (x * 255).round().clamp(0, 255).to(torch.uint8), y.long()

    train_x, train_y = draw(num_train)
    heldout_x, heldout_y = draw(num_heldout)
    return SourceArrays(train_x, train_y, heldout_x, heldout_y, tuple(f"class{i}" for i in range(num_classes)))
