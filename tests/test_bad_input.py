"""A catalogue of bad inputs, each refused through the command line the same way: a non-zero exit
status, one line ``unlearning: error: ...`` that names the bad value and says what was expected
(no traceback, no usage dump), and no result or cache file changed.

Every case runs in a workspace (``tmp_path``) that already holds a good result: a finished run
folder and a score in the output folder, a model in the score cache and a decoded-image cache.
Every file of it (size, modification time and bytes) and every folder must be the same after the
refused command, and no file may appear, unless the case says which may (a cache folder's
``recipe.json`` when the failure comes from training, for instance).
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO, quick_args, run_cli_here

TOY = "configs/toy/original.yaml"
TOY_FINETUNE = "configs/toy/unlearn/finetune.yaml"
CPU = "configs/cpu/original.yaml"
CPU_FINETUNE = "configs/cpu/unlearn/finetune.yaml"
SCORE_TOY = "configs/score/toy.yaml"
SUFFIXES = ".bmp, .jpeg, .jpg, .png, .webp"
ENOSPC = os.strerror(errno.ENOSPC)  # "No space left on device"


# ---- the workspace and the check every case shares -------------------------------------------

def _tree(folder: Path) -> dict[str, tuple[int, int, bytes] | None]:
    """Every folder (``None``) and file (size, modification time, bytes) under ``folder``."""
    out: dict[str, tuple[int, int, bytes] | None] = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        if p.is_dir():
            out[rel + "/"] = None
        else:
            st = p.stat()
            out[rel] = (st.st_size, st.st_mtime_ns, p.read_bytes())
    return out


@dataclass
class Workspace:
    """A case's folder: ``out`` (the output folder, holding a finished run ``good/`` and a score),
    ``cache`` (a score cache with one finished model, and a decoded-image cache file)."""

    root: Path
    out: Path
    cache: Path

    def fit(self, *args: str) -> list[str]:
        """``fit ARGS`` writing a new run ``new`` into the output folder."""
        return ["fit", *args, *quick_args(self.out, "new")]

    def score(self, *args: str) -> list[str]:
        """``score`` of the toy preset into the workspace's cache and output folder."""
        return ["score", "-c", SCORE_TOY, "--progress", "false", "--cache_dir", str(self.cache),
                "--output_dir", str(self.out), *args]


@pytest.fixture()
def ws(tmp_path: Path) -> Workspace:
    out, cache = tmp_path / "out", tmp_path / "cache"
    good = out / "good"
    (good / "checkpoints").mkdir(parents=True)
    (good / "checkpoints" / "last.ckpt").write_bytes(b"weights of a finished run" * 40)
    (good / "checkpoints" / "last.ckpt.finished").write_text('{"size": 1000}')
    (good / "config.yaml").write_text("model: good\n")
    (out / "finetune").mkdir()
    (out / "finetune" / "score.json").write_text('{"final_score": 0.1}\n')
    entry = cache / "oracle-0123456789abcdef" / "seed-0000"
    entry.mkdir(parents=True)
    (entry / "record.json").write_text('{"seed": 0}\n')
    (entry / "model.ckpt").write_bytes(b"a cached model" * 50)
    (cache / "imagefolder-0123456789abcdef.pt").write_bytes(b"decoded images" * 50)
    return Workspace(tmp_path, out, cache)


def refused(args: list[str], line: str | re.Pattern[str], guard: list[Path],
            may_appear: Callable[[str], bool] = lambda rel: False, names: str | None = None) -> str:
    """Run ``unlearning ARGS`` and check the refusal: exit status 2; on stderr exactly one line
    ``unlearning: error: LINE`` (or one matching the pattern ``LINE``), the last one, and no
    traceback; ``names`` (the bad value) in it; nothing under the ``guard`` folders changed, and
    no file appeared there but those ``may_appear`` allows (by path relative to the guard folder).
    Returns the error line."""
    before = {g: _tree(g) for g in guard}
    r = run_cli_here(*args)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("unlearning: error:")]
    assert r.returncode == 2, (r.returncode, r.stderr[-3000:])
    assert len(errors) == 1 and lines[-1] == errors[0], r.stderr[-3000:]  # one line, nothing after it
    assert "Traceback" not in r.stderr + r.stdout and "usage:" not in r.stderr, r.stderr[-3000:]
    if isinstance(line, re.Pattern):
        assert line.fullmatch(errors[0].removeprefix("unlearning: error: ")), (line.pattern, errors[0])
    else:
        assert errors[0] == f"unlearning: error: {line}"
    if names is not None:
        assert names in errors[0]
    for g in guard:
        after = _tree(g)
        changed = sorted(k for k, v in before[g].items() if after.get(k, "gone") != v)
        assert not changed, f"changed or removed under {g}: {changed}"
        new = sorted(k for k in set(after) - set(before[g]) if not may_appear(k))
        assert not new, f"appeared under {g}: {new}"
    return errors[0]


def _permissions_enforced(tmp: Path) -> bool:
    """Whether a folder of mode 0o500 refuses a new file here (not as root, who may write anywhere)."""
    probe = tmp / "probe"
    probe.mkdir()
    probe.chmod(0o500)
    try:
        (probe / "x").write_text("")
    except PermissionError:
        return True
    finally:
        probe.chmod(0o700)
        shutil.rmtree(probe)
    return False


@pytest.fixture()
def read_only(tmp_path: Path) -> Iterator[Path]:
    """A folder this user cannot write to (mode 0o500); the case is skipped where permissions are
    not enforced (running as root)."""
    if os.geteuid() == 0 and not _permissions_enforced(tmp_path):
        pytest.skip("running as root: permissions are not enforced, a read-only folder cannot be made")
    ro = tmp_path / "read-only"
    ro.mkdir()
    (ro / "kept.txt").write_text("was here before")
    ro.chmod(0o500)
    yield ro
    ro.chmod(0o700)


@pytest.fixture()
def data(ws: Workspace, tiny_cifar: Path) -> Path:
    """A copy of the tiny CIFAR-10 image folder in the workspace, for a case to spoil."""
    root = ws.root / "data"
    shutil.copytree(tiny_cifar, root)
    return root


def _cpu_fit(ws: Workspace, root: Path, *args: str) -> list[str]:
    """The CPU preset on an image folder, with the workspace's decoded-image cache."""
    return ws.fit("-c", CPU, "--data.init_args.root", str(root), "--data.init_args.train_subset", "null",
                  "--data.init_args.cache_dir", str(ws.cache), *args)


@dataclass
class Scored:
    """A finished toy score (N = 2): its cache and its output folder (``finetune/score.json``)."""

    cache: Path
    out: Path

    def args(self, *extra: str, method_args: tuple[str, ...] = ()) -> list[str]:
        return ["score", "-c", SCORE_TOY, "--n_models", "2", "--progress", "false", "--cache_dir", str(self.cache),
                "--output_dir", str(self.out), "--recipe_args", json.dumps(["--trainer.max_epochs", "3"]),
                "--method_args", json.dumps(["--trainer.max_epochs", "1", *method_args]), *extra]

    def model(self, kind: str) -> Path:
        """The checkpoint of the cached original or of the first oracle (a two-circles MLP)."""
        return next(self.cache.glob(f"{kind}-*/seed-0000/model.ckpt"))


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> Scored:
    from unlearning.cli import main

    root = tmp_path_factory.mktemp("scored")
    done = Scored(root / "cache", root / "out")
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        assert main(done.args()) is not None
    finally:
        os.chdir(cwd)
    assert (done.out / "finetune" / "score.json").is_file()
    return done


# ---- checkpoints -------------------------------------------------------------------------------

def test_an_original_that_is_a_text_file_is_named(ws: Workspace) -> None:
    bad = ws.root / "x.ckpt"
    bad.write_text("101 not a checkpoint\n")
    refused(ws.fit("-c", TOY_FINETUNE, "--model.init_args.original", str(bad)),
            f"{str(bad)!r} is not a checkpoint: expected a file written by torch.save (the .ckpt of `unlearning fit`)",
            [ws.root], names=str(bad))


def test_a_missing_original_is_named(ws: Workspace) -> None:
    bad = ws.root / "runs" / "nope.ckpt"
    refused(ws.fit("-c", TOY_FINETUNE, "--model.init_args.original", str(bad)),
            f"checkpoint {str(bad)!r} does not exist: expected a .ckpt file or the run folder of `unlearning fit`",
            [ws.root], names=str(bad))


def test_an_original_folder_without_a_checkpoint_is_named(ws: Workspace) -> None:
    bad = ws.root / "empty-run"
    bad.mkdir()
    refused(ws.fit("-c", TOY_FINETUNE, "--model.init_args.original", str(bad)),
            f"{str(bad)!r} is a folder without checkpoints/last.ckpt: expected a .ckpt file or the run folder "
            "of `unlearning fit`", [ws.root], names=str(bad))


_MLP = "MLP(depth=2, hidden=32, in_features=2, num_classes=2)"
_CNN = "SmallCNN(hidden=256, in_channels=3, num_classes=10, width=16)"


@pytest.mark.parametrize("subcommand", ["test", "fit"])
def test_a_checkpoint_of_another_network_than_the_configs_is_refused(
    ws: Workspace, tiny_cifar: Path, scored: Scored, subcommand: str
) -> None:
    """LightningCLI would silently build the checkpoint's network (its hyperparameters replace the
    config's) and fail on the images, or resume another model than the config's."""
    ckpt = scored.model("original")
    args = ["-c", CPU, "--data.init_args.root", str(tiny_cifar), "--data.init_args.train_subset", "null",
            "--ckpt_path", str(ckpt), *quick_args(ws.out, "new")]
    refused([subcommand, *args],
            f"checkpoint {str(ckpt)!r} holds a {_MLP} network: expected the config's {_CNN} (--model.init_args.net); "
            "give a checkpoint of that network, or its own config", [ws.root, scored.cache], names=str(ckpt))


@pytest.fixture(scope="module")
def cnn10(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint of the project's own (a small CNN of 10 classes), untrained: what these cases
    read of it is its network and its number of classes."""
    import lightning as L

    from unlearning.modules import Classifier
    from unlearning.nets import SmallCNN

    path = tmp_path_factory.mktemp("cnn10") / "original.ckpt"
    module = Classifier(net=SmallCNN(num_classes=10, width=4, hidden=16), num_classes=10)
    trainer = L.Trainer(logger=False, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False)
    trainer.strategy.connect(module)
    module.trainer = trainer
    trainer.save_checkpoint(path, weights_only=True)
    return path


@pytest.fixture()
def three_classes(ws: Workspace, tiny_cifar: Path) -> Path:
    """The tiny image folder with only its first three classes (airplane, automobile, bird)."""
    root = ws.root / "three"
    for split in ("train", "test"):
        for c in ("airplane", "automobile", "bird"):
            shutil.copytree(tiny_cifar / split / c, root / split / c)
    return root


def test_an_original_of_another_number_of_classes_than_the_data_is_refused(
    ws: Workspace, three_classes: Path, cnn10: Path
) -> None:
    """A 10-class original on 3-class data would train and report without a complaint."""
    ckpt = cnn10
    refused(ws.fit("-c", CPU_FINETUNE, "--data.init_args.root", str(three_classes), "--data.init_args.train_subset",
                   "null", "--model.init_args.original", str(ckpt), "--model.init_args.oracle", "null"),
            f"Finetune: the original checkpoint {str(ckpt)!r} has 10 classes: expected the data's 3 "
            "(airplane, automobile, bird)", [ws.root, ckpt.parent], names=str(ckpt))


def test_an_oracle_of_another_number_of_classes_than_the_original_is_refused(
    ws: Workspace, tiny_cifar: Path, cnn10: Path, scored: Scored
) -> None:
    original, oracle = cnn10, scored.model("oracle")
    refused(ws.fit("-c", CPU_FINETUNE, "--data.init_args.root", str(tiny_cifar), "--data.init_args.train_subset",
                   "null", "--model.init_args.original", str(original), "--model.init_args.oracle", str(oracle)),
            f"oracle checkpoint {str(oracle)!r} has 2 classes: expected the 10 of the original checkpoint "
            f"{str(original)!r}", [ws.root, cnn10.parent, scored.cache], names=str(oracle))


# ---- image folders -----------------------------------------------------------------------------

def _no_images(root: Path) -> None:
    for f in root.rglob("*.jpg"):
        f.unlink()


def _no_class_folders(root: Path) -> None:
    shutil.rmtree(root / "train")
    (root / "train").mkdir()


def _corrupt(root: Path) -> None:
    (root / "train" / "cat" / "0003.jpg").write_bytes(b"these bytes are not a JPEG")


def _notes(root: Path) -> None:
    (root / "train" / "cat" / "notes.txt").write_text("where these images came from")


def _wrong_size(root: Path) -> None:
    from PIL import Image

    Image.fromarray(np.zeros((40, 40, 3), dtype=np.uint8)).save(root / "test" / "dog" / "0005.jpg")


def _class_missing_from_test(root: Path) -> None:
    shutil.rmtree(root / "test" / "truck")


def _no_layout(root: Path) -> None:
    shutil.rmtree(root / "train")
    shutil.rmtree(root / "test")
    (root / "images").mkdir()


@pytest.mark.parametrize(
    ("spoil", "line"),
    [
        pytest.param(_no_images, "image folder '{root}': train/airplane/ holds no image: expected image files "
                     f"({SUFFIXES}) in every class folder", id="empty-class-folders"),
        pytest.param(_no_class_folders, "image folder '{root}': train/ has no class folder: expected "
                     "train/<class>/*.jpg", id="no-class-folders"),
        pytest.param(_corrupt, "image '{root}/train/cat/0003.jpg' cannot be decoded (UnidentifiedImageError): "
                     f"expected a readable image file ({SUFFIXES})", id="corrupt-image"),
        pytest.param(_notes, "image folder '{root}': '{root}/train/cat/notes.txt' is not an image: expected only "
                     f"image files ({SUFFIXES}) in train/<class>/", id="non-image-file"),
        pytest.param(_wrong_size, "image '{root}/test/dog/0005.jpg' is 40x40 pixels: expected 32x32, the size of "
                     "the other 239 images of '{root}'", id="image-of-another-size"),
        pytest.param(_class_missing_from_test, "image folder '{root}': train/ and test/ hold different classes "
                     "(train/ has ['truck'] that the other lacks): expected the same class folders in both",
                     id="classes-differ"),
        pytest.param(_no_layout, "CIFAR-10 root '{root}' holds no known layout; expected an image folder with "
                     "train/<class>/*.jpg and test/<class>/*.jpg (e.g. ../shared/data/cifar10-jpeg), or "
                     "torchvision's CIFAR-10 batches (a folder holding cifar-10-batches-py/)", id="no-layout"),
    ],
)
def test_a_bad_image_folder_is_refused_naming_the_file(
    ws: Workspace, data: Path, spoil: Callable[[Path], None], line: str
) -> None:
    """Nothing is decoded into the cache from a folder that is refused."""
    spoil(data)
    expected = line.format(root=data)
    refused(_cpu_fit(ws, data), expected, [ws.root], names=str(data))


def test_a_missing_data_root_is_named(ws: Workspace) -> None:
    bad = ws.root / "no-such-data"
    refused(_cpu_fit(ws, bad),
            f"CIFAR-10 root {str(bad)!r} does not exist; expected an image folder with train/<class>/*.jpg and "
            "test/<class>/*.jpg (e.g. ../shared/data/cifar10-jpeg), or torchvision's CIFAR-10 batches (a folder "
            "holding cifar-10-batches-py/)", [ws.root], names=str(bad))


# ---- the forget set ----------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("fraction", "line"),
    [("0", "forget_fraction must be in (0, 1), got 0.0"), ("1", "forget_fraction must be in (0, 1), got 1.0"),
     ("1.5", "forget_fraction must be in (0, 1), got 1.5")],
    ids=["0", "1", "1.5"],
)
def test_a_forget_fraction_outside_0_1_is_refused(ws: Workspace, fraction: str, line: str) -> None:
    refused(ws.fit("-c", TOY, "--data.init_args.forget_fraction", fraction), line, [ws.root])


@pytest.mark.parametrize(
    ("classes", "line"),
    [
        ("[unicorn]", ("unknown forget class 'unicorn': expected one of ['airplane', 'automobile', 'bird', 'cat', "
                       "'deer', 'dog', 'frog', 'horse', 'ship', 'truck']")),
        ("[10]", "unknown forget class 10: expected an id in [0, 9]"),
    ],
    ids=["name", "index-10-of-10"],
)
def test_an_unknown_forget_class_is_refused(ws: Workspace, tiny_cifar: Path, classes: str, line: str) -> None:
    refused(ws.fit("-c", CPU, "--data.init_args.root", str(tiny_cifar), "--data.init_args.train_subset", "null",
                   "--data.init_args.forget_classes", classes), line, [ws.root])


_FILE = "forget index file '{f}'"
_RANGE = "is out of range: expected indices in [0, 199] (the training set has 200 examples)"
_ARRAY = "expected an integer array"
_ONCE = "expected every index once"
_INTEGERS = "expected integer indices into the training set, separated by whitespace or commas"


@pytest.mark.parametrize(
    ("name", "content", "line"),
    [
        ("range.txt", "3 17 200 5", f"{_FILE}: index 200 (entry 2) {_RANGE}"),
        ("negative.txt", "3, -4, 5", f"{_FILE}: index -4 (entry 1) {_RANGE}"),
        ("duplicate.txt", "3\n17\n9\n17\n", f"{_FILE}: index 17 is listed more than once (entry 3 repeats it): {_ONCE}"),
        ("word.txt", "3 17 x9", f"{_FILE} must hold integers: entry 2 is 'x9': {_INTEGERS}"),
        ("fraction.txt", "3 17.5", f"{_FILE} must hold integers: entry 1 is '17.5': {_INTEGERS}"),
        ("floats.npy", np.array([3.0, 17.0]), f"{_FILE} must hold integers, got dtype float64: {_ARRAY}"),
        ("missing.txt", None, f"{_FILE} does not exist: expected a .npy file or a text file of integer indices"),
    ],
    ids=["out-of-range", "negative", "duplicate", "non-integer", "decimal", "npy-of-floats", "missing"],
)
def test_a_bad_forget_index_file_is_refused_naming_the_entry(
    ws: Workspace, name: str, content: str | np.ndarray | None, line: str
) -> None:
    f = ws.root / name
    if isinstance(content, np.ndarray):
        np.save(f, content)
    elif content is not None:
        f.write_text(content)
    refused(ws.fit("-c", TOY, "--data.init_args.forget_index_file", str(f)), line.format(f=f), [ws.root],
            names=str(f))


# ---- configs -----------------------------------------------------------------------------------

def test_an_unknown_config_key_is_named(ws: Workspace) -> None:
    refused(ws.fit("-c", TOY_FINETUNE, "--model.init_args.lrr", "0.1"),
            "--model (unlearning.methods.Finetune): Option 'lrr' is not accepted (see --help)", [ws.root],
            names="lrr")


# ---- unlearning score --------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--n_models", "1"], "n_models must be >= 2 (the metric compares samples of N models), got 1"),
        (["--seeds", ""], "seeds must be 'START:STOP' or 'K' (non-negative integers), got ''"),
        (["--seeds", "5:2"], "seeds must be a non-empty range START:STOP with 0 <= START < STOP, got '5:2'"),
    ],
    ids=["n-models-1", "seeds-empty", "seeds-reversed"],
)
def test_a_bad_score_request_is_refused(ws: Workspace, args: list[str], line: str) -> None:
    refused(ws.score(*args), line, [ws.root])


def test_a_method_config_that_is_no_fit_config_is_named(ws: Workspace) -> None:
    bad = ws.root / "method.yaml"
    bad.write_text("lr: 0.1\n")
    refused(ws.score("--method", str(bad)),
            f"method config {str(bad)!r} is not a fit config: expected a 'model' section", [ws.root], names=str(bad))


# ---- folders that cannot be written ------------------------------------------------------------

def _read_only_line(what: str, path: Path, ro: Path) -> str:
    return (f"{what} {str(path)!r} is not writable ({str(ro)!r} is read-only for this user): "
            "expected a folder this user can write to")


def test_an_unwritable_score_output_folder_is_refused_before_training(ws: Workspace, read_only: Path) -> None:
    out = read_only / "scores"
    refused(["score", "-c", SCORE_TOY, "--n_models", "2", "--progress", "false", "--cache_dir", str(ws.cache),
             "--output_dir", str(out)], _read_only_line("output folder", out, read_only), [ws.root], names=str(out))


def test_an_unwritable_score_cache_folder_is_refused_before_training(ws: Workspace, read_only: Path) -> None:
    cache = read_only / "cache"
    refused(["score", "-c", SCORE_TOY, "--n_models", "2", "--progress", "false", "--cache_dir", str(cache),
             "--output_dir", str(ws.out)], _read_only_line("cache folder", cache, read_only), [ws.root],
            names=str(cache))


def test_an_unwritable_run_folder_is_refused_before_training(ws: Workspace, read_only: Path) -> None:
    refused(["fit", "-c", TOY, *quick_args(read_only / "runs", "new")],
            _read_only_line("run folder", read_only / "runs" / "new", read_only), [ws.root], names=str(read_only))


def test_an_unwritable_decoded_image_cache_is_named(ws: Workspace, data: Path, read_only: Path) -> None:
    target = re.escape(str(read_only / "decoded")) + r"/imagefolder-[0-9a-f]{16}\.pt"
    refused(_cpu_fit(ws, data, "--data.init_args.cache_dir", str(read_only / "decoded")),
            re.compile(f"cannot write '{target}': Permission denied: expected a folder this user can write to; "
                       "nothing was written under that name"), [ws.root], names=str(read_only / "decoded"))


# ---- a full disk -------------------------------------------------------------------------------

def _full_disk(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """A disk that fills up while a file called ``name`` is written (or its temporary twin,
    ``.tmp-NAME...``), through ``Path.write_text`` (JSON) or ``torch.save`` (tensors): half of its
    bytes land, then the write fails with ENOSPC and, as ``write(2)`` does, names no file."""
    import io

    import torch

    write_text, save = Path.write_text, torch.save

    def hit(target: object) -> bool:
        return isinstance(target, (str, Path)) and name in Path(target).name

    def full_write_text(self: Path, text: str, *args: object, **kwargs: object) -> int:
        if not hit(self):
            return write_text(self, text, *args, **kwargs)
        write_text(self, text[: len(text) // 2], *args, **kwargs)
        raise OSError(errno.ENOSPC, ENOSPC)

    def full_save(obj: object, f: object, *args: object, **kwargs: object) -> None:
        if not hit(f):
            return save(obj, f, *args, **kwargs)
        buf = io.BytesIO()
        save(obj, buf, *args, **kwargs)
        Path(f).write_bytes(buf.getvalue()[: buf.tell() // 2])
        raise OSError(errno.ENOSPC, ENOSPC)

    monkeypatch.setattr(Path, "write_text", full_write_text)
    monkeypatch.setattr(torch, "save", full_save)


def _full_disk_line(path_pattern: str) -> re.Pattern[str]:
    return re.compile(f"cannot write '{path_pattern}': {ENOSPC}: expected free space on its disk; "
                      "nothing was written under that name")


def test_a_full_disk_while_caching_decoded_images_leaves_no_cache_file(
    ws: Workspace, data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _full_disk(monkeypatch, "imagefolder-")
    refused(_cpu_fit(ws, data), _full_disk_line(re.escape(str(ws.cache)) + r"/imagefolder-[0-9a-f]{16}\.pt"),
            [ws.root], names="imagefolder-")


def test_a_full_disk_while_writing_score_json_keeps_the_last_score(
    scored: Scored, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The score is computed from the cache (nothing to train) and its ``score.json`` fails half
    way: the previous ``score.json`` stays, whole, and no temporary file is left."""
    target = scored.out / "finetune" / "score.json"
    good = target.read_bytes()
    _full_disk(monkeypatch, "score.json")
    refused(scored.args(), _full_disk_line(re.escape(str(target))), [scored.cache], names=str(target))
    assert target.read_bytes() == good
    json.loads(good)
    assert not [p for p in scored.out.rglob("*") if p.name.startswith(".tmp-")]


def test_a_full_disk_while_caching_a_model_leaves_no_entry(
    ws: Workspace, scored: Scored, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A method run (a new learning rate, so a new cache entry) is trained and its ``record.json``
    fails half way: no seed folder, complete or not, is left in the cache (only the new recipe's
    folder, its ``recipe.json`` and its seed's lock), and the score's output is untouched."""
    _full_disk(monkeypatch, "record.json")
    cache = re.escape(str(scored.cache))
    line = _full_disk_line(cache + r"/method-[0-9a-f]{16}/\.tmp-[^/']+/record\.json")

    def recipe_folder(rel: str) -> bool:
        parts = Path(rel).parts
        return parts[0].startswith("method-") and (len(parts) == 1 or (
            len(parts) == 2 and (parts[1] == "recipe.json" or parts[1].endswith(".lock"))))

    refused(scored.args("--name", "lr002", "--output_dir", str(ws.out), method_args=("--model.init_args.lr", "0.02")),
            line, [ws.root, scored.cache], may_appear=recipe_folder,
            names="record.json")
