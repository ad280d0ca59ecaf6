"""Datasets beyond CIFAR-10 (CIFAR-100, SVHN, Tiny-ImageNet, any image folder), each read from small
files a test writes in exactly the dataset's on-disk format; the batch sizing; the bad inputs; a
``fit`` of an original and of a method through the command line; the CIFAR-100 presets."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from tests.conftest import REPO, quick_args, read_scalars, run_cli_here
from unlearning.data import (
    CIFAR100DataModule,
    ImageFolderDataModule,
    SVHNDataModule,
    TinyImageNetDataModule,
)
from unlearning.data.sizing import fit_size
from unlearning.data.sources import load_cifar100, load_image_folder, load_svhn, load_tiny_imagenet

# ---- writers of each dataset's on-disk format --------------------------------------------------

FINE = tuple(f"fine{i:02d}" for i in range(100))
COARSE = tuple(f"coarse{i:02d}" for i in range(20))


def _dump(obj: object, path: Path, protocol: int | str) -> None:
    """Pickle ``obj`` with ``protocol``; ``"numpy1"``: protocol 2 naming numpy 1's module
    ``numpy.core.multiarray``, as the files torchvision downloads do."""
    data = pickle.dumps(obj, protocol=2 if protocol == "numpy1" else protocol)
    if protocol == "numpy1":
        data = data.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
    path.write_bytes(data)


def write_cifar100(root: Path, n_train: int = 60, n_test: int = 40, protocol: int | str = 2, seed: int = 0) -> Path:
    """``root/cifar-100-python/{train,test,meta}`` as torchvision's: pickled dicts with ``data``
    (N x 3072 uint8), ``fine_labels`` and ``coarse_labels`` (lists of int), ``filenames``,
    ``batch_label``; ``meta`` with ``fine_label_names`` and ``coarse_label_names``. Fine label i
    belongs to superclass ``(7 * i) % 20`` (not i // 5, so that a mix-up shows)."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for name, n in (("train", n_train), ("test", n_test)):
        fine = [int(v) for v in rng.integers(0, 100, n)]
        entry = {
            "filenames": [f"img_{i}.png" for i in range(n)],
            "batch_label": f"{name}ing batch 1 of 1",
            "fine_labels": fine,
            "coarse_labels": [(7 * f) % 20 for f in fine],
            "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        }
        _dump(entry, folder / name, protocol)
    _dump({"fine_label_names": list(FINE), "coarse_label_names": list(COARSE)}, folder / "meta", protocol)
    return folder


def read_pickle(path: Path) -> dict:
    with open(path, "rb") as fh:
        return pickle.load(fh)


def write_svhn(root: Path, n_train: int = 30, n_test: int = 20, seed: int = 0, n_extra: int = 0) -> Path:
    """``train_32x32.mat`` and ``test_32x32.mat`` (and ``extra_32x32.mat`` when ``n_extra``) as
    SVHN's: ``X`` of 32 x 32 x 3 x N uint8 (HWCN) and ``y`` of N x 1 uint8 labels 1..10 (10 is digit 0)."""
    import scipy.io

    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name, n in (("train", n_train), ("test", n_test), ("extra", n_extra)):
        if n == 0:
            continue
        y = np.concatenate([np.arange(1, 11), rng.integers(1, 11, n - 10)]).astype(np.uint8).reshape(n, 1)
        x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
        scipy.io.savemat(root / f"{name}_32x32.mat", {"X": x, "y": y})
    return root


WNIDS = ("n09999999", "n01443537", "n02085620", "n01629819")  # wnids.txt is not sorted
WORDS = {"n01443537": "goldfish, Carassius auratus", "n01629819": "European fire salamander, Salamandra salamandra",
         "n02085620": "Chihuahua", "n09999999": "goldfish", "n00000001": "entity"}


def _color(label: int) -> tuple[int, int, int]:
    return 40 + 50 * label, 200 - 40 * label, 30 * label


def write_tiny_imagenet(root: Path, per_class: int = 5, val_per_class: int = 3, size: int = 64) -> Path:
    """The ``tiny-imagenet-200`` layout: ``wnids.txt``, ``words.txt`` (tab-separated, more wnids
    than the dataset's), ``train/<wnid>/images/<wnid>_<i>.JPEG`` with ``train/<wnid>/<wnid>_boxes.txt``,
    ``val/images/val_<i>.JPEG`` and ``val/val_annotations.txt`` (file, wnid, box), a ``test/``
    folder without labels. Each class's images have one colour (by sorted wnid), a few grayscale."""
    from PIL import Image

    top = root / "tiny-imagenet-200"
    top.mkdir(parents=True)
    (top / "wnids.txt").write_text("".join(f"{w}\n" for w in WNIDS))
    (top / "words.txt").write_text("".join(f"{w}\t{t}\n" for w, t in WORDS.items()))
    order = sorted(WNIDS)
    for w in WNIDS:
        images = top / "train" / w / "images"
        images.mkdir(parents=True)
        lines = []
        for i in range(per_class):
            Image.new("RGB", (size, size), _color(order.index(w))).save(images / f"{w}_{i}.JPEG")
            lines.append(f"{w}_{i}.JPEG\t0\t0\t{size - 1}\t{size - 1}\n")
        (top / "train" / w / f"{w}_boxes.txt").write_text("".join(lines))
    (top / "val" / "images").mkdir(parents=True)
    lines = []
    for i in range(val_per_class * len(WNIDS)):
        w = WNIDS[(3 * i) % len(WNIDS)]
        im = Image.new("RGB", (size, size), _color(order.index(w)))
        (im.convert("L") if i == 0 else im).save(top / "val" / "images" / f"val_{i}.JPEG")
        lines.append(f"val_{i}.JPEG\t{w}\t1\t2\t40\t50\n")
    (top / "val" / "val_annotations.txt").write_text("".join(lines))
    (top / "test" / "images").mkdir(parents=True)
    Image.new("RGB", (size, size)).save(top / "test" / "images" / "test_0.JPEG")
    return top


def write_image_folder(root: Path, sizes: dict[str, tuple[int, int]], n_train: int = 4, n_test: int = 2) -> Path:
    """``train/<class>/*.png`` and ``test/<class>/*.png``; class ``c``'s images are ``sizes[c]``
    (width, height) pixels of random noise."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test)):
        for c, (w, h) in sizes.items():
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / split / c / f"{i}.png")
    return root


def one_line(err: pytest.ExceptionInfo, *names: object) -> str:
    """The error's message, checked to be one line naming every one of ``names``."""
    text = str(err.value)
    assert "\n" not in text, text
    for name in names:
        assert str(name) in text, (name, text)
    return text


# ---- CIFAR-100 -----------------------------------------------------------------------------------

@pytest.mark.parametrize("protocol", [2, 5, "numpy1"])
def test_cifar100_reads_torchvisions_pickles(tmp_path: Path, protocol: int | str) -> None:
    folder = write_cifar100(tmp_path / "data", protocol=protocol)
    train, test = read_pickle(folder / "train"), read_pickle(folder / "test")
    assert (b"numpy.core.multiarray\n" in (folder / "train").read_bytes()) == (protocol == "numpy1")
    fine = load_cifar100(tmp_path / "data", tmp_path / "cache")
    assert fine.classes == FINE
    assert fine.train_x.shape == (60, 3, 32, 32) and fine.train_x.dtype == torch.uint8
    assert fine.heldout_x.shape == (40, 3, 32, 32)
    assert torch.equal(fine.train_x[7], torch.from_numpy(train["data"][7].reshape(3, 32, 32)))  # CHW rows
    assert fine.train_y.tolist() == train["fine_labels"] and fine.heldout_y.tolist() == test["fine_labels"]
    coarse = load_cifar100(folder, tmp_path / "cache", label_kind="coarse")  # the folder itself also works
    assert coarse.classes == COARSE
    assert coarse.train_y.tolist() == train["coarse_labels"] != train["fine_labels"]
    assert torch.equal(coarse.train_x, fine.train_x)
    assert len(list((tmp_path / "cache").glob("cifar100-*.pt"))) == 2  # one cache per label kind


def test_cifar100_module_forgets_a_class_by_name(tmp_path: Path) -> None:
    write_cifar100(tmp_path, n_train=200)
    labels = read_pickle(tmp_path / "cifar-100-python" / "train")["fine_labels"]
    name = FINE[labels[0]]
    dm = CIFAR100DataModule(root=str(tmp_path), cache_dir=str(tmp_path / "cache"), forget_classes=[name])
    dm.setup()
    s = dm.split
    assert dm.num_classes == 100
    assert s.forget.tolist() == [i for i, y in enumerate(labels) if y == labels[0]]
    assert not set(s.forget.tolist()) & set(s.retain.tolist())
    assert sorted(s.forget.tolist() + s.retain.tolist()) == list(range(200))
    assert not set(s.val.tolist()) & set(s.test.tolist())
    coarse = CIFAR100DataModule(root=str(tmp_path), cache_dir=str(tmp_path / "cache"), label_kind="coarse",
                                forget_classes=[COARSE[(7 * labels[0]) % 20]])
    coarse.setup()
    assert coarse.num_classes == 20
    assert set(coarse.split.forget.tolist()) > set(s.forget.tolist())  # the superclass holds five classes


# ---- SVHN ----------------------------------------------------------------------------------------

def test_svhn_reads_the_mat_files_and_maps_label_10_to_digit_0(tmp_path: Path) -> None:
    import scipy.io

    write_svhn(tmp_path / "svhn")
    mat = scipy.io.loadmat(tmp_path / "svhn" / "train_32x32.mat")
    a = load_svhn(tmp_path / "svhn", tmp_path / "cache")
    assert a.classes == tuple("0123456789")
    assert a.train_x.shape == (30, 3, 32, 32) and a.heldout_x.shape == (20, 3, 32, 32)
    assert a.train_y[:10].tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 0]
    assert a.train_y.tolist() == [int(v) % 10 for v in mat["y"].reshape(-1)]
    # upright: pixel (row, column) of image i is X[row, column, :, i]
    assert torch.equal(a.train_x[4], torch.from_numpy(mat["X"][:, :, :, 4]).permute(2, 0, 1))


def test_svhn_extra_follows_train_in_the_training_split(tmp_path: Path) -> None:
    import scipy.io

    write_svhn(tmp_path / "svhn", n_extra=12)
    extra = scipy.io.loadmat(tmp_path / "svhn" / "extra_32x32.mat")
    plain = load_svhn(tmp_path / "svhn", tmp_path / "cache")
    both = load_svhn(tmp_path / "svhn", tmp_path / "cache", use_extra=True)
    assert plain.train_x.shape[0] == 30 and both.train_x.shape[0] == 42
    assert torch.equal(both.train_x[:30], plain.train_x) and torch.equal(both.heldout_y, plain.heldout_y)
    assert both.train_y[30:].tolist() == [int(v) % 10 for v in extra["y"].reshape(-1)]
    assert torch.equal(both.train_x[30 + 5], torch.from_numpy(extra["X"][:, :, :, 5]).permute(2, 0, 1))
    dm = SVHNDataModule(root=str(tmp_path / "svhn"), cache_dir=str(tmp_path / "cache2"), use_extra=True,
                        forget_index_file=str(_write(tmp_path / "f.txt", "1 31 41\n")))
    dm.setup()
    assert dm.split.forget.tolist() == [1, 31, 41] and len(dm.split.retain) == 39
    write_svhn(tmp_path / "no_extra")
    with pytest.raises(FileNotFoundError, match="extra_32x32.mat"):
        load_svhn(tmp_path / "no_extra", tmp_path / "cache", use_extra=True)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_svhn_module_serves_disjoint_streams_and_an_index_file(tmp_path: Path) -> None:
    write_svhn(tmp_path)
    index = tmp_path / "forget.txt"
    index.write_text("0 3 9 17\n")
    dm = SVHNDataModule(root=str(tmp_path), cache_dir=str(tmp_path / "cache"), forget_index_file=str(index))
    dm.setup()
    assert dm.split.forget.tolist() == [0, 3, 9, 17]
    assert len(dm.split.retain) == 26 and not set(dm.split.retain.tolist()) & {0, 3, 9, 17}
    x, y = next(iter(dm.stream_loader("forget", train=False)))
    assert x.dtype == torch.float32 and y.tolist() == [1, 4, 0, int(dm.arrays.train_y[17])]
    by_name = SVHNDataModule(root=str(tmp_path), cache_dir=str(tmp_path / "cache"), forget_classes=["0"])
    by_name.setup()
    assert by_name.split.forget.tolist() == (dm.arrays.train_y == 0).nonzero().flatten().tolist()


# ---- Tiny-ImageNet -------------------------------------------------------------------------------

def test_tiny_imagenet_reads_the_standard_layout(tmp_path: Path) -> None:
    top = write_tiny_imagenet(tmp_path)
    a = load_tiny_imagenet(tmp_path, tmp_path / "cache")  # a folder holding tiny-imagenet-200/
    assert a.train_x.shape == (20, 3, 64, 64) and a.heldout_x.shape == (12, 3, 64, 64)
    # labels by sorted wnid; names from words.txt (first name), the wnid added where two share one
    assert a.classes == ("goldfish n01443537", "European fire salamander", "Chihuahua", "goldfish n09999999")
    assert a.train_y.tolist() == [i // 5 for i in range(20)]
    order = sorted(WNIDS)
    assert a.heldout_y.tolist() == [order.index(WNIDS[(3 * i) % 4]) for i in range(12)]  # annotation order
    colours = torch.tensor([_color(y) for y in a.heldout_y.tolist()], dtype=torch.float32)
    seen = a.heldout_x.float().mean(dim=(2, 3))
    assert (seen[1:] - colours[1:]).abs().max() < 4  # each image where its annotation says (JPEG is lossy)
    assert seen[0, 0] == seen[0, 1] == seen[0, 2]  # the grayscale image, as RGB
    wnids = load_tiny_imagenet(top, tmp_path / "cache", class_names="wnids")
    assert wnids.classes == tuple(order) and torch.equal(wnids.train_x, a.train_x)


def test_tiny_imagenet_module_forgets_by_name_and_resizes_batches(tmp_path: Path) -> None:
    write_tiny_imagenet(tmp_path)
    dm = TinyImageNetDataModule(root=str(tmp_path), cache_dir=str(tmp_path / "cache"),
                                forget_classes=["Chihuahua"], image_size=32, augment=True)
    dm.setup()
    assert dm.split.forget.tolist() == list(range(10, 15))
    x, _ = next(iter(dm.stream_loader("retain", train=True, batch_size=4)))
    assert x.shape == (4, 3, 32, 32)
    x, _ = next(iter(dm.stream_loader("val", train=False)))
    assert x.shape[1:] == (3, 32, 32)


# ---- image folders and sizes ---------------------------------------------------------------------

def test_image_folder_resizes_images_of_any_size_in_sorted_class_order(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "data", {"zebra": (40, 30), "ant": (24, 24), "moth": (20, 36)})
    a = load_image_folder(root, tmp_path / "cache", image_size=16)
    assert a.classes == ("ant", "moth", "zebra")
    assert a.train_x.shape == (12, 3, 16, 16) and a.heldout_x.shape == (6, 3, 16, 16)
    assert a.train_y.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    from PIL import Image

    first_zebra = torch.from_numpy(np.array(Image.open(root / "train" / "zebra" / "0.png"))).permute(2, 0, 1)
    assert torch.equal(a.train_x[8], fit_size(first_zebra[None], (16, 16))[0])
    padded = load_image_folder(root, tmp_path / "cache", image_size=[40, 48], resize_mode="pad")
    assert padded.train_x.shape == (12, 3, 40, 48)
    assert torch.equal(padded.train_x[8, :, 5:35, 4:44], first_zebra)  # centred, zeros around
    assert padded.train_x[8, :, :5].sum() == 0
    dm = ImageFolderDataModule(root=str(root), cache_dir=str(tmp_path / "cache"), image_size=16,
                               forget_classes=["moth"])
    dm.setup()
    assert dm.split.forget.tolist() == [4, 5, 6, 7] and dm.num_classes == 3


@pytest.mark.parametrize("size", [(64, 64), (24, 40)])
def test_augmentation_and_sizing_work_at_any_size(size: tuple[int, int]) -> None:
    from unlearning.data import ImageDataModule

    dm = ImageDataModule(augment=True)
    x = torch.randint(0, 256, (8, 3, *size), dtype=torch.uint8)
    out = dm.train_transform(x)
    assert out.shape == x.shape and out.dtype == torch.float32
    assert not torch.equal(out, dm.eval_transform(x))  # augmented
    # the size belongs to the model: the batch is brought to it before augmentation
    sized = ImageDataModule(image_size=[48, 20], augment=True)
    assert sized.train_transform(x).shape == (8, 3, 48, 20) and sized.eval_transform(x).shape == (8, 3, 48, 20)
    pad = ImageDataModule(image_size=80, resize_mode="pad", augment=False)
    y = pad.eval_transform(x)
    top, left = (80 - size[0]) // 2, (80 - size[1]) // 2
    inside = y[:, :, top:top + size[0], left:left + size[1]]
    torch.testing.assert_close(inside, ImageDataModule(augment=False).eval_transform(x))


# ---- bad input -----------------------------------------------------------------------------------

def test_wrong_roots_are_named(tmp_path: Path) -> None:
    bad = tmp_path / "nope"
    for load, layout in ((load_cifar100, "cifar-100-python"), (load_svhn, "train_32x32.mat"),
                         (load_tiny_imagenet, "tiny-imagenet-200"), (load_image_folder, "train/<class>")):
        with pytest.raises(FileNotFoundError) as err:
            load(bad, tmp_path / "cache")
        one_line(err, repr(str(bad)), "does not exist", layout)
    with pytest.raises(FileNotFoundError) as err:  # a folder, but no layout
        load_cifar100(tmp_path, tmp_path / "cache")
    one_line(err, "holds no train, test or meta file", "cifar-100-python/")


def test_missing_files_are_named(tmp_path: Path) -> None:
    folder = write_cifar100(tmp_path / "c100")
    (folder / "meta").unlink()
    with pytest.raises(FileNotFoundError) as err:
        load_cifar100(folder, tmp_path / "cache")
    one_line(err, repr(str(folder / "meta")), "does not exist")
    write_svhn(tmp_path / "svhn")
    (tmp_path / "svhn" / "test_32x32.mat").unlink()
    with pytest.raises(FileNotFoundError) as err:
        load_svhn(tmp_path / "svhn", tmp_path / "cache")
    one_line(err, repr(str(tmp_path / "svhn" / "test_32x32.mat")), "does not exist")
    top = write_tiny_imagenet(tmp_path / "tiny")
    (top / "val" / "images" / "val_5.JPEG").unlink()
    with pytest.raises(FileNotFoundError) as err:
        load_tiny_imagenet(top, tmp_path / "cache")
    one_line(err, repr(str(top / "val" / "images" / "val_5.JPEG")), "line 6")
    (top / "val" / "val_annotations.txt").unlink()
    with pytest.raises(FileNotFoundError) as err:
        load_tiny_imagenet(top, tmp_path / "cache")
    one_line(err, repr(str(top / "val" / "val_annotations.txt")), "does not exist")
    root = write_image_folder(tmp_path / "folder", {"a": (8, 8)})
    import shutil

    shutil.rmtree(root / "test")
    with pytest.raises(FileNotFoundError) as err:
        load_image_folder(root, tmp_path / "cache")
    one_line(err, repr(str(root)), "has no test/ folder")


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def test_corrupt_files_are_named(tmp_path: Path) -> None:
    folder = write_cifar100(tmp_path / "c100")
    _truncate(folder / "train")
    with pytest.raises(ValueError) as err:
        load_cifar100(folder, tmp_path / "cache")
    one_line(err, repr(str(folder / "train")), "cannot be read", "CIFAR-100 train pickle")
    with open(folder / "train", "wb") as fh:  # other shapes
        pickle.dump({"data": np.zeros((4, 1024), np.uint8), "fine_labels": [0] * 4, "coarse_labels": [0] * 4}, fh)
    with pytest.raises(ValueError) as err:
        load_cifar100(folder, tmp_path / "cache")
    one_line(err, repr(str(folder / "train")), "[4, 1024]", "N x 3072 uint8")
    with open(folder / "train", "wb") as fh:  # a fine label past meta's 100 names
        pickle.dump({"data": np.zeros((2, 3072), np.uint8), "fine_labels": [3, 100], "coarse_labels": [0, 0]}, fh)
    with pytest.raises(ValueError) as err:
        load_cifar100(folder, tmp_path / "cache")
    one_line(err, repr(str(folder / "train")), "fine labels in [3, 100]", "expected labels in [0, 99]")
    write_svhn(tmp_path / "svhn")
    _truncate(tmp_path / "svhn" / "train_32x32.mat")
    with pytest.raises(ValueError) as err:
        load_svhn(tmp_path / "svhn", tmp_path / "cache")
    one_line(err, repr(str(tmp_path / "svhn" / "train_32x32.mat")), "cannot be read", "32 x 32 x 3 x N")
    top = write_tiny_imagenet(tmp_path / "tiny")
    bad = top / "train" / WNIDS[2] / "images" / f"{WNIDS[2]}_3.JPEG"
    bad.write_bytes(b"not a JPEG at all")
    with pytest.raises(ValueError) as err:
        load_tiny_imagenet(top, tmp_path / "cache")
    one_line(err, repr(str(bad)), "cannot be decoded")
    assert not list((tmp_path / "cache").glob("*.pt"))  # nothing cached from a refused source


def test_a_pickle_holding_code_is_refused(tmp_path: Path) -> None:
    import os

    folder = write_cifar100(tmp_path)

    class Payload:
        def __reduce__(self) -> tuple:
            return os.getcwd, ()

    with open(folder / "meta", "wb") as fh:
        pickle.dump({"fine_label_names": Payload(), "coarse_label_names": []}, fh)
    with pytest.raises(ValueError) as err:
        load_cifar100(folder, tmp_path / "cache")
    one_line(err, repr(str(folder / "meta")), "holds code (posix.getcwd)")


def test_empty_class_folders_are_named(tmp_path: Path) -> None:
    top = write_tiny_imagenet(tmp_path / "tiny")
    for f in (top / "train" / WNIDS[1] / "images").iterdir():
        f.unlink()
    with pytest.raises(ValueError) as err:
        load_tiny_imagenet(top, tmp_path / "cache")
    one_line(err, f"train/{WNIDS[1]}/images/ holds no image")
    root = write_image_folder(tmp_path / "folder", {"a": (8, 8), "b": (8, 8)})
    for f in (root / "test" / "b").iterdir():
        f.unlink()
    with pytest.raises(ValueError) as err:
        load_image_folder(root, tmp_path / "cache")
    one_line(err, repr(str(root)), "test/b/ holds no image")


def test_images_of_mixed_sizes_need_an_image_size(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "data", {"a": (12, 12), "b": (12, 12), "c": (10, 14)})
    dm = ImageFolderDataModule(root=str(root), cache_dir=str(tmp_path / "cache"))
    with pytest.raises(ValueError) as err:
        dm.setup()
    one_line(err, repr(str(root / "train" / "c" / "0.png")), "10x14 pixels", repr(str(root / "train" / "a" / "0.png")),
             "image_size")
    with pytest.raises(ValueError) as err:  # padding cannot shrink
        load_image_folder(root, tmp_path / "cache", image_size=12, resize_mode="pad")
    one_line(err, repr(str(root / "train" / "c" / "0.png")), "10x14 pixels cannot be padded to image_size 12x12")
    small = SVHNDataModule(root=str(write_svhn(tmp_path / "svhn")), cache_dir=str(tmp_path / "svhn-cache"),
                           image_size=24, resize_mode="pad")
    with pytest.raises(ValueError) as err:  # the same at the batch level, before training starts
        small.setup()
    one_line(err, f"SVHNDataModule at {str(tmp_path / 'svhn')!r}", "32x32 pixels cannot be padded to image_size 24x24")
    with pytest.raises(ValueError) as err:
        ImageFolderDataModule(root=str(root), image_size=0)
    one_line(err, "image_size 0")
    with pytest.raises(ValueError) as err:
        ImageFolderDataModule(root=str(root), image_size=12, resize_mode="crop")
    one_line(err, "resize_mode 'crop'", "'resize', 'pad'")
    assert not list((tmp_path / "cache").glob("*.pt"))


# ---- the command line ------------------------------------------------------------------------------

TINY_ORIGINAL = {
    "seed_everything": 0,
    "trainer": {"accelerator": "cpu", "devices": 1, "max_epochs": 1,
                "logger": {"class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                           "init_args": {"save_dir": "runs", "name": "original", "version": ""}}},
    "model": {"class_path": "Classifier", "init_args": {
        "net": {"class_path": "unlearning.nets.SmallCNN", "init_args": {"num_classes": 20, "width": 8, "hidden": 32}},
        "num_classes": 20, "lr": 0.05}},
    "data": {"class_path": "CIFAR100DataModule", "init_args": {
        "root": None, "label_kind": "coarse", "forget_classes": ["coarse03"], "image_size": 40, "resize_mode": "pad",
        "augment": True, "batch_size": 32, "eval_batch_size": 64, "retain_eval_size": 100}},
}


def test_fit_an_original_and_a_method_on_cifar100_through_the_cli(tmp_path: Path) -> None:
    """``unlearning fit`` of a tiny original (SmallCNN, 1 epoch, 300 images) on CIFAR-100's coarse
    labels, padded to 40x40 and augmented, then of Finetune from it, forgetting a superclass."""
    write_cifar100(tmp_path / "data", n_train=300, n_test=100)
    data = dict(TINY_ORIGINAL["data"], init_args={**TINY_ORIGINAL["data"]["init_args"], "root": str(tmp_path / "data"),
                                                 "cache_dir": str(tmp_path / "cache")})
    original_cfg = tmp_path / "original.yaml"
    original_cfg.write_text(yaml.safe_dump({**TINY_ORIGINAL, "data": data}))
    args = quick_args(tmp_path, "original")
    args = args[: args.index("--trainer.limit_train_batches")] + args[args.index("--trainer.limit_train_batches") + 2:]
    fit = run_cli_here("fit", "-c", str(original_cfg), *args)
    assert fit.returncode == 0, fit.stderr[-3000:]
    ckpt = tmp_path / "original" / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    steps = max(s for s, _ in read_scalars(tmp_path / "original")["train/loss"])
    assert steps >= 8  # the whole epoch: 300 images in batches of 32 (logged every step)
    method_cfg = tmp_path / "finetune.yaml"
    method = {**TINY_ORIGINAL, "data": data,
              "model": {"class_path": "Finetune", "init_args": {"original": str(ckpt), "lr": 0.01}}}
    method_cfg.write_text(yaml.safe_dump(method))
    un = run_cli_here("fit", "-c", str(method_cfg), *quick_args(tmp_path, "finetune"))
    assert un.returncode == 0, un.stderr[-3000:]
    assert (tmp_path / "finetune" / "checkpoints" / "last.ckpt").is_file()
    scalars = read_scalars(tmp_path / "finetune")
    for stream in ("retain", "forget", "val", "test"):
        assert f"val/{stream}_acc" in scalars, sorted(scalars)


def test_a_bad_root_is_one_line_on_the_command_line(tmp_path: Path) -> None:
    bad = tmp_path / "no-such-folder"
    out = run_cli_here("fit", "-c", "configs/cifar100/original.yaml", "--data.init_args.root", str(bad),
                       *quick_args(tmp_path))
    assert out.returncode == 2, out.stderr[-3000:]
    assert out.stderr.strip().splitlines()[-1] == (
        f"unlearning: error: CIFAR-100 root {str(bad)!r} does not exist: expected torchvision's CIFAR-100 "
        "(a folder holding cifar-100-python/ with train, test and meta)")
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("name", ["original", "retrain"])
def test_cifar100_presets_parse(name: str) -> None:
    path = f"configs/cifar100/{name}.yaml"
    out = run_cli_here("fit", "-c", path, "--print_config")
    assert out.returncode == 0, out.stderr[-3000:]
    cfg = yaml.safe_load(out.stdout)
    assert cfg["data"]["class_path"].endswith("CIFAR100DataModule")
    assert cfg["model"]["class_path"].endswith({"original": "Classifier", "retrain": "RetrainOracle"}[name])
    init = cfg["model"]["init_args"]
    assert init["num_classes"] == 100 and init["net"]["init_args"]["num_classes"] == 100
    assert init["net"]["class_path"].endswith("KitResNet18")
    same = yaml.safe_load((REPO / "configs" / f"{name}.yaml").read_text())  # the CIFAR-10 preset's recipe
    for key in ("lr", "momentum", "weight_decay", "scheduler"):
        assert init[key] == same["model"]["init_args"][key]


def test_score_a_method_on_an_image_folder(tmp_path: Path) -> None:
    """The whole ``score`` path on one of the new data modules: the CPU preset's original, oracle
    and Finetune recipes (one epoch each) on a 10-class image folder of 32x32 PNGs, N = 2."""
    from unlearning.cli import main

    classes = {f"class{i}": (32, 32) for i in range(10)}
    root = write_image_folder(tmp_path / "folder", classes, n_train=20, n_test=6)
    data = {"class_path": "ImageFolderDataModule", "init_args": {
        "root": str(root), "cache_dir": str(tmp_path / "cache"), "image_size": 32, "augment": False,
        "batch_size": 32, "forget_classes": ["class3"], "train_subset": None}}
    result = main(["score", "-c", "configs/score/cpu.yaml", "--data", json.dumps(data), "--n_models", "2",
                   "--recipe_args", '["--trainer.max_epochs", "1"]', "--progress", "false",
                   "--method", "configs/score/methods/finetune.yaml",
                   "--cache_dir", str(tmp_path / "models"), "--output_dir", str(tmp_path / "out")])
    assert result["num_forget"] == 20 and result["timings"]["models_trained"] == 7
    assert (tmp_path / "out" / "finetune" / "score.json").is_file()
    assert 0.0 <= result["unlearned"]["test_acc"]["mean"] <= 1.0
