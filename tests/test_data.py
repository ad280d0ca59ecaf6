"""Data sources, the image-folder cache, batch transforms and the tensor loaders."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import numpy as np
import pytest
import torch

from tests.conftest import CIFAR10_CLASSES, SHARED_CIFAR
from unlearning.data import CIFAR10DataModule, SyntheticImageDataModule, TensorLoader, TwoCircles
from unlearning.data.contract import StreamDeclarations
from unlearning.data.sources import load_cifar10, make_synthetic_images
from unlearning.data.transforms import CIFAR10_MEAN, CIFAR10_STD, ImageTransform, random_crop


@pytest.fixture(scope="module")
def shared_subset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 3 train and 2 test images of each class of the real CIFAR-10 copy."""
    if not SHARED_CIFAR.is_dir():
        pytest.skip(f"the real CIFAR-10 copy is absent ({SHARED_CIFAR} not found)")
    root = tmp_path_factory.mktemp("cifar_part")
    for split, n in (("train", 3), ("test", 2)):
        for c in CIFAR10_CLASSES:
            files = sorted((SHARED_CIFAR / split / c).iterdir())[:n]
            (root / split / c).mkdir(parents=True)
            for f in files:
                shutil.copy(f, root / split / c / f.name)
    return root


def test_image_folder_source_on_real_cifar(shared_subset: Path, tmp_path: Path) -> None:
    from PIL import Image

    a = load_cifar10(shared_subset, cache_dir=tmp_path)
    assert a.classes == CIFAR10_CLASSES
    assert a.train_x.shape == (30, 3, 32, 32) and a.train_x.dtype == torch.uint8
    assert a.heldout_x.shape == (20, 3, 32, 32)
    assert a.train_y.tolist() == [i // 3 for i in range(30)]
    first = sorted((shared_subset / "train" / "bird").iterdir())[0]
    expected = torch.from_numpy(np.array(Image.open(first).convert("RGB"))).permute(2, 0, 1)
    assert torch.equal(a.train_x[6], expected)
    cached = list(tmp_path.glob("imagefolder-*.pt"))
    assert len(cached) == 1
    b = load_cifar10(shared_subset, cache_dir=tmp_path)
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.heldout_y, b.heldout_y)


def test_cache_is_used_and_keyed_by_source(tiny_cifar: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import unlearning.data.sources as sources

    first = load_cifar10(tiny_cifar, cache_dir=tmp_path)
    (cache,) = tmp_path.glob("imagefolder-*.pt")

    def no_decoding(path: Path) -> None:
        raise AssertionError(f"decoded {path} although the cache exists")

    monkeypatch.setattr(sources, "_decode", no_decoding)
    assert load_cifar10(tiny_cifar, cache_dir=tmp_path) is first  # kept in memory by the process
    sources._LOADED.clear()
    again = load_cifar10(tiny_cifar, cache_dir=tmp_path)  # read from the disk cache
    assert again is not first and torch.equal(first.train_x, again.train_x)
    monkeypatch.undo()
    other = tmp_path / "other"
    shutil.copytree(tiny_cifar, other)
    (other / "train" / "cat" / "0000.jpg").unlink()
    arrays = load_cifar10(other, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("imagefolder-*.pt"))) == 2
    assert arrays.train_x.shape[0] == 159


def test_torchvision_batches_layout(tmp_path: Path) -> None:
    import pickle

    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        entry = {"data": rng.integers(0, 255, (4, 3072), dtype=np.uint8), "labels": [0, 1, 2, 9]}
        with open(d / name, "wb") as fh:
            pickle.dump(entry, fh)
    a = load_cifar10(tmp_path, cache_dir=tmp_path / "cache")
    assert a.train_x.shape == (20, 3, 32, 32) and a.heldout_y.tolist() == [0, 1, 2, 9]
    assert a.classes == CIFAR10_CLASSES


def test_missing_local_copy_names_the_accepted_layouts(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="cifar10-jpeg.*cifar-10-batches-py"):
        load_cifar10(tmp_path / "nope", cache_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="no known layout"):
        load_cifar10(tmp_path, cache_dir=tmp_path)


def test_random_crop_is_a_shifted_window_of_the_padded_image() -> None:
    x = torch.randint(0, 255, (64, 3, 8, 8), dtype=torch.uint8)
    g = torch.Generator().manual_seed(0)
    out = random_crop(x, 2, generator=g)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(64):
        windows = [padded[i, :, a : a + 8, b : b + 8] for a in range(5) for b in range(5)]
        assert any(torch.equal(out[i], w) for w in windows)
    assert not torch.equal(out, x)  # some crop moved


def test_transform_normalises_like_torchvision() -> None:
    import torchvision.transforms.v2.functional as TF

    x = torch.randint(0, 255, (4, 3, 32, 32), dtype=torch.uint8)
    ours = ImageTransform(augment=False)(x)
    ref = TF.normalize(x.float() / 255, list(CIFAR10_MEAN), list(CIFAR10_STD))
    torch.testing.assert_close(ours, ref)


def test_tensor_loader_shards_cover_every_example_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import unlearning.data.loaders as loaders

    x = torch.arange(103).float()
    y = torch.arange(103)
    idx = torch.arange(103)
    seen = []
    for rank in (0, 1, 2):
        monkeypatch.setattr(loaders, "_rank_world", lambda r=rank: (r, 3))
        loader = TensorLoader(x, y, idx, batch_size=10)
        batches = list(loader)
        assert len(batches) == len(loader)
        seen += [int(v) for _, yb in batches for v in yb]
    assert sorted(seen) == list(range(103))
    # training shards are padded to equal length and reshuffled on each pass
    lens = []
    for rank in (0, 1, 2):
        monkeypatch.setattr(loaders, "_rank_world", lambda r=rank: (r, 3))
        loader = TensorLoader(x, y, idx, batch_size=10, shuffle=True, seed=1)
        first = torch.cat([yb for _, yb in loader])
        second = torch.cat([yb for _, yb in loader])
        lens.append(len(first))
        assert not torch.equal(first, second)
    assert len(set(lens)) == 1


@pytest.mark.parametrize("world", [2, 3])
def test_training_shards_are_disjoint_and_cover_every_example_once_per_pass(
    world: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every rank reads its own part of one seeded permutation: over the ranks, each example once
    per pass (plus the few repeated to pad the shards to equal length, as DistributedSampler does)."""
    import unlearning.data.loaders as loaders

    n = 103
    pad = (-n) % world  # 1 on 2 ranks, 2 on 3 ranks
    x, y = torch.arange(n).float(), torch.arange(n)
    ranks = []
    for rank in range(world):
        monkeypatch.setattr(loaders, "_rank_world", lambda r=rank: (r, world))
        ranks.append(TensorLoader(x, y, torch.arange(n), batch_size=8, shuffle=True, seed=5))
    passes = []
    for _ in range(2):
        seen = []
        for rank, loader in enumerate(ranks):
            monkeypatch.setattr(loaders, "_rank_world", lambda r=rank: (r, world))
            seen.append([int(v) for _, yb in loader for v in yb])
        flat = [v for part in seen for v in part]
        assert sorted(set(flat)) == list(range(n))  # every example
        assert len(flat) == n + pad and len({len(part) for part in seen}) == 1  # once, but the padding
        passes.append(seen)
    assert passes[0] != passes[1]  # a new permutation at every pass


def test_decode_cache_notices_a_changed_file_of_the_same_size(tmp_path: Path) -> None:
    """An image rewritten with other pixels but the same byte size (BMP files of one shape always
    have one size) is decoded again, not served from the stale cache."""
    import os

    from PIL import Image

    import unlearning.data.sources as sources

    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for c in CIFAR10_CLASSES:
            (tmp_path / "data" / split / c).mkdir(parents=True)
            Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(tmp_path / "data" / split / c / "0.bmp")
    first = load_cifar10(tmp_path / "data", cache_dir=tmp_path / "cache")
    target = tmp_path / "data" / "train" / "cat" / "0.bmp"
    size, mtime = target.stat().st_size, target.stat().st_mtime_ns
    Image.fromarray(np.zeros((32, 32, 3), dtype=np.uint8)).save(target)
    os.utime(target, ns=(mtime + 2_000_000_000, mtime + 2_000_000_000))  # a later write, as a real edit
    assert target.stat().st_size == size
    sources._LOADED.clear()
    second = load_cifar10(tmp_path / "data", cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("imagefolder-*.pt"))) == 2, "the stale cache was used"
    cat = CIFAR10_CLASSES.index("cat")
    assert second.train_x[cat].sum() == 0 and first.train_x[cat].sum() > 0


def test_synthetic_images_are_learnable_shapes() -> None:
    a = make_synthetic_images(100, 50, num_classes=5)
    assert a.train_x.shape == (100, 3, 32, 32) and a.train_x.dtype == torch.uint8
    assert set(a.train_y.tolist()) == set(range(5))
    dm = SyntheticImageDataModule(num_train=100, num_heldout=50, num_classes=5, forget_fraction=0.2)
    dm.setup()
    assert dm.num_classes == 5 and len(dm.split.forget) == 20


def test_two_circles_points_lie_in_their_discs() -> None:
    dm = TwoCircles(num_train=200, num_heldout=100, num_outliers=0)
    dm.setup()
    a = dm.arrays
    centers = torch.tensor([[-5.0, 5.0], [5.0, 5.0]])
    dist = (a.train_x - centers[a.train_y]).norm(dim=1)
    assert (dist <= 2.0 + 1e-5).all()
    with_outliers = TwoCircles(num_train=200, num_outliers=10)
    with_outliers.setup()
    out = with_outliers.arrays
    far = (out.train_x - centers[out.train_y]).norm(dim=1) > 2.0
    assert int(far.sum()) == 10


def test_datamodule_rejects_bad_class_before_training(tiny_cifar: Path) -> None:
    dm = CIFAR10DataModule(root=str(tiny_cifar), forget_classes=["zebra"])
    with pytest.raises(ValueError, match="unknown forget class 'zebra'"):
        dm.setup()


def test_eval_streams_are_asked_for_through_an_init_argument() -> None:
    """A score asks for its evaluation streams through ``eval_streams`` (issue 26): the loaders
    are exactly those streams in that order; the default is all four; an unknown one is refused."""
    assert len(TwoCircles(num_train=200, num_heldout=100).test_dataloader()) == 4
    dm = TwoCircles(num_train=200, num_heldout=100, eval_streams=["forget", "test"])
    forget, test = dm.stream_source("forget")[2], dm.stream_source("test")[2]
    loaders = dm.test_dataloader()
    assert [len(loader.indices) for loader in loaders] == [forget.numel(), test.numel()]
    with pytest.raises(ValueError, match="eval_streams must be some of"):
        TwoCircles(eval_streams=["train"])


class _Declares(StreamDeclarations):
    train_streams: ClassVar[tuple[str, ...]] = ("retain", "forget")
    stream_mode: ClassVar[str] = "min_size"

    @property
    def stream_options(self) -> dict[str, dict[str, Any]]:
        return {"forget": {"batch_size": 7, "drop_single": False}}


def test_the_data_module_serves_what_the_module_declares_and_the_defaults_to_others() -> None:
    dm = SyntheticImageDataModule(num_train=200, num_heldout=40, image_size=8, batch_size=16)
    dm.setup()
    dm.trainer = SimpleNamespace(lightning_module=_Declares(), current_epoch=0)
    loader = dm.train_dataloader()
    assert list(loader.iterables) == ["retain", "forget"]
    forget, retain = loader.iterables["forget"], loader.iterables["retain"]
    assert (forget.batch_size, forget.drop_single, retain.batch_size, retain.drop_single) == (7, False, 16, True)
    assert len(forget) < len(retain) and sum(1 for _ in loader) == len(forget)  # min_size: the shorter one ends it
    dm.trainer = SimpleNamespace(lightning_module=torch.nn.Linear(1, 1), current_epoch=0)  # declares nothing
    loader = dm.train_dataloader()
    assert list(loader.iterables) == ["train"] and sum(1 for _ in loader) == len(loader.iterables["train"])
    assert loader.iterables["train"].batch_size == 16
