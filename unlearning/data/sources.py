"""Where images come from: CIFAR-10 (torchvision batches or an image folder) and synthetic data.

Every source is decoded once into uint8 tensors (``N x C x H x W``) and cached on disk, keyed by
the source, so that later runs load it in about a second.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from unlearning.utils import atomic_path

__all__ = [
    "CIFAR10_CLASSES",
    "ImageArrays",
    "default_cache_dir",
    "load_cifar10",
    "make_synthetic_images",
]

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


@dataclass
class ImageArrays:
    """A labelled image dataset held in memory.

    Attributes:
        train_x: uint8 training images, ``N x C x H x W``.
        train_y: int64 training labels, ``N``.
        heldout_x: uint8 held-out images (CIFAR-10's test set), split later into val and test.
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


def _to_arrays(d: dict) -> ImageArrays:
    return ImageArrays(d["train_x"], d["train_y"], d["heldout_x"], d["heldout_y"], tuple(d["classes"]))


def _from_arrays(a: ImageArrays) -> dict:
    return {
        "train_x": a.train_x,
        "train_y": a.train_y,
        "heldout_x": a.heldout_x,
        "heldout_y": a.heldout_y,
        "classes": list(a.classes),
    }


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
    suffixes = ", ".join(sorted(_IMAGE_SUFFIXES))
    files = []
    for c in classes:
        found = sorted(p for p in (split_dir / c).iterdir() if p.is_file() and not p.name.startswith("."))
        other = [p for p in found if p.suffix.lower() not in _IMAGE_SUFFIXES]
        if other:
            raise ValueError(f"image folder {str(root)!r}: {str(other[0])!r} is not an image: expected only "
                             f"image files ({suffixes}) in {split}/<class>/")
        if not found:
            raise ValueError(f"image folder {str(root)!r}: {split}/{c}/ holds no image: expected image files "
                             f"({suffixes}) in every class folder")
        files += found
    return files, classes


def _decode(path: Path) -> np.ndarray:
    """The RGB pixels of an image file.

    Raises:
        ValueError: if the file cannot be decoded as an image, naming it.
    """
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except Exception as err:  # noqa: BLE001 - PIL raises OSError, ValueError, SyntaxError, ... for a bad file
        text = str(err).splitlines()[0] if str(err) else ""
        reason = type(err).__name__ if not text or str(path) in text else text
        raise ValueError(f"image {str(path)!r} cannot be decoded ({reason}): expected a readable image file "
                         f"({', '.join(sorted(_IMAGE_SUFFIXES))})") from None


def _load_image_folder(root: Path, cache_dir: Path) -> ImageArrays:
    train_files, train_classes = _list_split(root, "train")
    test_files, test_classes = _list_split(root, "test")
    if train_classes != test_classes:
        only = [f"{a}/ has {sorted(set(x) - set(y))}" for a, x, y in
                (("train", train_classes, test_classes), ("test", test_classes, train_classes)) if set(x) - set(y)]
        raise ValueError(f"image folder {str(root)!r}: train/ and test/ hold different classes ({'; '.join(only)} "
                         "that the other lacks): expected the same class folders in both")
    # CIFAR-10's label order is not alphabetical: keep it when the folder holds exactly its classes.
    classes = list(CIFAR10_CLASSES) if set(train_classes) == set(CIFAR10_CLASSES) else train_classes
    # keyed by every file's path, size and modification time: an edited file, even of the same
    # size, gives a new cache (reading every byte of 60,000 files at each start would cost more)
    h = hashlib.sha1(str(root.resolve()).encode())
    for f in train_files + test_files:
        st = f.stat()
        h.update(f"{f.relative_to(root)}:{st.st_size}:{st.st_mtime_ns};".encode())
    cache = cache_dir / f"imagefolder-{h.hexdigest()[:16]}.pt"
    if cache.is_file():
        return _to_arrays(torch.load(cache, weights_only=True))

    files = train_files + test_files
    with ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1))) as pool:
        images = list(pool.map(_decode, files, chunksize=256))
    shapes = Counter(im.shape for im in images)
    if len(shapes) > 1:  # the most common size is the dataset's; name the first image of another
        (h, w, _), count = shapes.most_common(1)[0]
        bad = next(i for i, im in enumerate(images) if im.shape[:2] != (h, w))
        raise ValueError(f"image {str(files[bad])!r} is {images[bad].shape[1]}x{images[bad].shape[0]} pixels: "
                         f"expected {w}x{h}, the size of the other {count} images of {str(root)!r}")

    def stack(part: slice) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.from_numpy(np.stack(images[part])).permute(0, 3, 1, 2).contiguous()
        y = torch.tensor([classes.index(f.parent.name) for f in files[part]], dtype=torch.long)
        return x, y

    train_x, train_y = stack(slice(0, len(train_files)))
    test_x, test_y = stack(slice(len(train_files), None))
    arrays = ImageArrays(train_x, train_y, test_x, test_y, tuple(classes))
    _save_atomic(_from_arrays(arrays), cache)
    return arrays


def _load_batches(batch_dir: Path, cache_dir: Path) -> ImageArrays:
    h = hashlib.sha1(str(batch_dir.resolve()).encode())
    for f in sorted(batch_dir.iterdir()):
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns};".encode())
    cache = cache_dir / f"cifar10-batches-{h.hexdigest()[:16]}.pt"
    if cache.is_file():
        return _to_arrays(torch.load(cache, weights_only=True))

    def read(names: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = [], []
        for name in names:
            with open(batch_dir / name, "rb") as fh:
                entry = pickle.load(fh, encoding="latin1")  # torchvision's own format, read the same way
            xs.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.extend(entry["labels"])
        return torch.from_numpy(np.concatenate(xs)), torch.tensor(ys, dtype=torch.long)

    train_x, train_y = read([f"data_batch_{i}" for i in range(1, 6)])
    test_x, test_y = read(["test_batch"])
    arrays = ImageArrays(train_x, train_y, test_x, test_y, CIFAR10_CLASSES)
    _save_atomic(_from_arrays(arrays), cache)
    return arrays


_LAYOUTS = (
    "an image folder with train/<class>/*.jpg and test/<class>/*.jpg (e.g. ../shared/data/cifar10-jpeg), "
    "or torchvision's CIFAR-10 batches (a folder holding cifar-10-batches-py/)"
)


def load_cifar10(root: str | Path | None, cache_dir: str | Path | None = None, download: bool = True) -> ImageArrays:
    """Load CIFAR-10 from a local copy, or download it with torchvision.

    The arrays of the last two sources loaded are kept in memory for the life of the process, so
    that many runs in one process (e.g. ``unlearning score``) neither list the image folder nor
    read the decoded cache again. Treat the returned tensors as read-only.

    Args:
        root: an image folder (``train/<class>/*``, ``test/<class>/*``), a folder holding
            torchvision's ``cifar-10-batches-py/`` (or that folder itself), or ``None`` to use
            torchvision's download into ``<cache_dir>/cifar10``.
        cache_dir: where decoded tensors (and downloads) are kept; see :func:`default_cache_dir`.
        download: allow torchvision to download when ``root`` is ``None``.

    Returns:
        The images as uint8 tensors.

    Raises:
        FileNotFoundError: if ``root`` holds neither accepted layout, or the download fails.
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = (str(Path(root).resolve()) if root is not None else None, str(cache_dir.resolve()))
    arrays = _LOADED.get(key)
    if arrays is None:
        arrays = _load_cifar10(root, cache_dir, download)
        _LOADED[key] = arrays
        while len(_LOADED) > 2:
            _LOADED.pop(next(iter(_LOADED)))
    return arrays


_LOADED: dict[tuple[str | None, str], ImageArrays] = {}


def _load_cifar10(root: str | Path | None, cache_dir: Path, download: bool) -> ImageArrays:
    if root is None:
        target = cache_dir / "cifar10"
        batch_dir = target / "cifar-10-batches-py"
        if not batch_dir.is_dir():
            if not download:
                raise FileNotFoundError(f"no CIFAR-10 at {str(target)!r} and download=False; point root at {_LAYOUTS}")
            try:
                import torchvision

                torchvision.datasets.CIFAR10(str(target), train=True, download=True)
            except Exception as err:  # noqa: BLE001 - any network failure means the same to the user
                raise FileNotFoundError(
                    f"could not download CIFAR-10 ({type(err).__name__}: {err}); give a local copy with "
                    f"--data.init_args.root PATH, where PATH is {_LAYOUTS}"
                ) from None
        return _load_batches(batch_dir, cache_dir)
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"CIFAR-10 root {str(root)!r} does not exist; expected {_LAYOUTS}")
    if (root / "train").is_dir() and (root / "test").is_dir():
        return _load_image_folder(root, cache_dir)
    for batch_dir in (root / "cifar-10-batches-py", root):
        if (batch_dir / "data_batch_1").is_file() and (batch_dir / "test_batch").is_file():
            return _load_batches(batch_dir, cache_dir)
    raise FileNotFoundError(f"CIFAR-10 root {str(root)!r} holds no known layout; expected {_LAYOUTS}")


def make_synthetic_images(
    num_train: int = 512,
    num_heldout: int = 256,
    num_classes: int = 10,
    image_size: int = 32,
    signal: float = 0.35,
    seed: int = 0,
) -> ImageArrays:
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
    return ImageArrays(train_x, train_y, heldout_x, heldout_y, tuple(f"class{i}" for i in range(num_classes)))
