"""Tests for trainables.data: on-disk formats, splits, cache and on-device batching."""

from __future__ import annotations

import gzip
import pickle
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch

from raynas.experiment.config_rules import DATASET_CLASSES
from trainables.data import (
    DATASETS,
    DatasetNotFound,
    DataSplits,
    batches,
    clear_cache,
    load_dataset,
)

Arrays = tuple[np.ndarray, np.ndarray]  # (uint8 NCHW images, 0-based labels)


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    clear_cache()
    yield
    clear_cache()


def _images(rng: np.random.Generator, n: int, c: int, size: int) -> np.ndarray:
    return rng.integers(0, 256, size=(n, c, size, size), dtype=np.uint8)


def _labels(rng: np.random.Generator, n: int, classes: int) -> np.ndarray:
    return rng.permutation(np.arange(n) % classes).astype(np.int64)


def _dump(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        pickle.dump(obj, fh, protocol=2)  # the protocol of the official CIFAR files


def _write_cifar10(root: Path, rng: np.random.Generator) -> tuple[int, Arrays]:
    folder = root / "cifar-10-batches-py"
    for i in range(1, 6):
        x, y = _images(rng, 10, 3, 32), _labels(rng, 10, 10)
        _dump(folder / f"data_batch_{i}", {"data": x.reshape(10, -1), "labels": y.tolist()})
    tx, ty = _images(rng, 20, 3, 32), _labels(rng, 20, 10)
    _dump(folder / "test_batch", {"data": tx.reshape(20, -1), "labels": ty.tolist()})
    _dump(folder / "batches.meta", {"label_names": [f"c{i}" for i in range(10)]})
    return 50, (tx, ty)


def _write_cifar100(root: Path, rng: np.random.Generator) -> tuple[int, Arrays]:
    # The official files are Python 2 pickles whose keys load as str with encoding="latin1";
    # bytes keys (as written by re-pickling with encoding="bytes") must work too.
    folder = root / "cifar-100-python"
    for split, n in (("train", 200), ("test", 30)):
        x, y = _images(rng, n, 3, 32), _labels(rng, n, 100)
        entry = {b"data": x.reshape(n, -1), b"fine_labels": y.tolist(), b"coarse_labels": [0] * n}
        _dump(folder / split, entry)
    _dump(folder / "meta", {b"fine_label_names": [b"x"] * 100})
    return 200, (x, y)


def _write_idx(path: Path, array: np.ndarray, compress: bool) -> None:
    header = (0x0800 + array.ndim).to_bytes(4, "big")
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)


def _write_fashion_mnist(root: Path, rng: np.random.Generator) -> tuple[int, Arrays]:
    folder = root / "FashionMNIST" / "raw"
    folder.mkdir(parents=True)
    # Train files gzipped, test files plain: both forms must be readable.
    for prefix, n, compress in (("train", 40, True), ("t10k", 20, False)):
        x, y = _images(rng, n, 1, 28), _labels(rng, n, 10)
        _write_idx(folder / f"{prefix}-images-idx3-ubyte", x[:, 0], compress)
        _write_idx(folder / f"{prefix}-labels-idx1-ubyte", y, compress)
    return 40, (x, y)


def _write_svhn(root: Path, rng: np.random.Generator) -> tuple[int, Arrays]:
    root.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", 30), ("test", 20)):
        x, y = _images(rng, n, 3, 32), _labels(rng, n, 10)
        mat_y = np.where(y == 0, 10, y).reshape(n, 1)  # SVHN stores digit 0 as label 10
        scipy.io.savemat(root / f"{split}_32x32.mat", {"X": x.transpose(2, 3, 1, 0), "y": mat_y})
    return 30, (x, y)


def _write_imagenet16(root: Path, rng: np.random.Generator) -> tuple[int, Arrays]:
    folder = root / "ImageNet16"
    kept = 0
    for name in [f"train_data_batch_{i}" for i in range(1, 11)] + ["val_data"]:
        n = 30
        x = _images(rng, n, 3, 16)
        y = np.concatenate([_labels(rng, 24, 120) + 1, rng.integers(121, 1001, size=6)])
        _dump(folder / name, {"data": x.reshape(n, -1), "labels": y.tolist(), "mean": None})
        kept += 24
    keep = y <= 120
    return kept - 24, (x[keep], y[keep] - 1)


WRITERS: dict[str, Callable[[Path, np.random.Generator], tuple[int, Arrays]]] = {
    "cifar10": _write_cifar10,
    "cifar100": _write_cifar100,
    "fashion_mnist": _write_fashion_mnist,
    "svhn": _write_svhn,
    "imagenet16": _write_imagenet16,
}
SHAPES = {
    "cifar10": ((3, 32, 32), 10, "crop_flip"),
    "cifar100": ((3, 32, 32), 100, "crop_flip"),
    "fashion_mnist": ((1, 28, 28), 10, "none"),
    "svhn": ((3, 32, 32), 10, "crop"),
    "imagenet16": ((3, 16, 16), 120, "crop_flip"),
}


@pytest.fixture(scope="module")
def disk() -> Iterator[dict[str, tuple[Path, int, Arrays]]]:
    """Every on-disk dataset written once: name -> (root, official train size, test arrays)."""
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="raynas-data-"))
    rng = np.random.default_rng(1234)
    out = {}
    for name, write in WRITERS.items():
        root = base / name
        n_train, test = write(root, rng)
        out[name] = (root, n_train, test)
    yield out
    shutil.rmtree(base)


def _standardise(a: torch.Tensor | np.ndarray) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(a, dtype=np.float64)).transpose(0, 1).reshape(a.shape[1], -1)
    return (t - t.mean(1, keepdim=True)) / t.std(1, keepdim=True)


def _check_splits(d: DataSplits, shape: tuple[int, ...], classes: int) -> None:
    assert d.input_shape == shape
    assert d.num_classes == classes
    assert d.test_x is not None and d.test_y is not None
    for x, y in ((d.train_x, d.train_y), (d.val_x, d.val_y), (d.test_x, d.test_y)):
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert tuple(x.shape[1:]) == shape and x.shape[0] == y.shape[0]
        assert int(y.min()) >= 0 and int(y.max()) < classes


@pytest.mark.parametrize("name", list(WRITERS))
def test_on_disk_formats_load(name: str, disk: dict[str, tuple[Path, int, Arrays]]) -> None:
    root, n_train, (test_x, test_y) = disk[name]
    shape, classes, augment = SHAPES[name]
    d = load_dataset(name, root=str(root), val_fraction=0.2, seed=0)
    _check_splits(d, shape, classes)
    assert d.augment == augment
    assert len(d.train_y) + len(d.val_y) == n_train
    assert len(d.val_y) == round(0.2 * n_train)
    # The official test split is kept in file order; pixels are an affine map of the raw bytes
    # per channel, which also checks the (C, H, W) layout.
    assert d.test_y is not None and d.test_x is not None
    assert torch.equal(d.test_y, torch.as_tensor(test_y))
    assert torch.allclose(_standardise(d.test_x), _standardise(test_x), atol=1e-4)
    # Normalised with training statistics.
    channel_mean = d.train_x.mean(dim=(0, 2, 3))
    channel_std = d.train_x.std(dim=(0, 2, 3), correction=0)
    assert torch.allclose(channel_mean, torch.zeros_like(channel_mean), atol=1e-4)
    assert torch.allclose(channel_std, torch.ones_like(channel_std), atol=1e-3)


@pytest.mark.parametrize("name", ["cifar10", "svhn", "imagenet16"])
def test_split_is_seeded(name: str, disk: dict[str, tuple[Path, int, Arrays]]) -> None:
    root = str(disk[name][0])
    first = load_dataset(name, root=root, seed=3)
    assert load_dataset(name, root=root, seed=3) is first  # cached
    clear_cache()
    again = load_dataset(name, root=root, seed=3)
    assert again is not first
    for a, b in ((first.train_x, again.train_x), (first.val_y, again.val_y)):
        assert torch.equal(a, b)
    other = load_dataset(name, root=root, seed=4)
    assert not torch.equal(first.val_x, other.val_x)


def test_validation_split_is_stratified(disk: dict[str, tuple[Path, int, Arrays]]) -> None:
    d = load_dataset("cifar10", root=str(disk["cifar10"][0]), val_fraction=0.2)
    # 5 examples per class in train+val; 20% of 50 = 10 => one per class.
    assert torch.bincount(d.val_y, minlength=10).tolist() == [1] * 10


def test_limit_caps_training_examples(disk: dict[str, tuple[Path, int, Arrays]]) -> None:
    root = str(disk["cifar10"][0])
    d = load_dataset("cifar10", root=root, limit=20, val_fraction=0.25, seed=1)
    assert (len(d.train_y), len(d.val_y)) == (15, 5)
    assert d.test_y is not None and len(d.test_y) == 20  # the test split is not limited
    clear_cache()
    again = load_dataset("cifar10", root=root, limit=20, val_fraction=0.25, seed=1)
    assert torch.equal(d.train_x, again.train_x)


def test_limit_is_a_stratified_subsample(disk: dict[str, tuple[Path, int, Arrays]]) -> None:
    root = str(disk["cifar10"][0])  # 5 examples of each class
    d = load_dataset("cifar10", root=root, limit=20, val_fraction=0.5, seed=2)
    kept = torch.cat([d.train_y, d.val_y])
    assert torch.bincount(kept, minlength=10).tolist() == [2] * 10
    assert torch.bincount(d.val_y, minlength=10).tolist() == [1] * 10
    # Exactly the number of classes: one example of each.
    one = load_dataset("cifar10", root=root, limit=10, val_fraction=0.0, seed=2)
    assert sorted(one.train_y.tolist()) == list(range(10))


@pytest.mark.parametrize(("name", "limit"), [("digits", 9), ("wine", 2), ("breast_cancer", 1)])
def test_limit_below_the_number_of_classes_is_refused(name: str, limit: int) -> None:
    classes = DATASET_CLASSES[name]
    with pytest.raises(ValueError, match=rf"limit: must be at least {classes}.*got {limit}"):
        load_dataset(name, limit=limit)
    d = load_dataset(name, limit=classes, val_fraction=0.0)
    assert len(d.train_y) == classes == d.num_classes


@pytest.mark.parametrize("name", ["digits", "wine", "breast_cancer", *WRITERS])
def test_class_counts_match_the_config_table(
    name: str, disk: dict[str, tuple[Path, int, Arrays]]
) -> None:
    root = str(disk[name][0]) if name in disk else None
    assert load_dataset(name, root=root).num_classes == DATASET_CLASSES[name]


@pytest.mark.parametrize("name", ["digits", *WRITERS])
def test_compact_splits_hold_uint8_and_convert_each_batch_exactly(
    name: str, disk: dict[str, tuple[Path, int, Arrays]]
) -> None:
    root = str(disk[name][0]) if name in disk else None
    full = load_dataset(name, root=root, seed=1)
    small = load_dataset(name, root=root, seed=1, compact=True)
    assert small.compact and not full.compact
    assert small.scale == (16.0 if name == "digits" else 255.0)
    assert torch.equal(small.mean, full.mean) and torch.equal(small.std, full.std)
    pairs = [(small.train_x, full.train_x), (small.val_x, full.val_x), (small.test_x, full.test_x)]
    for u8, f32 in pairs:
        assert u8 is not None and f32 is not None
        assert u8.dtype == torch.uint8 and f32.dtype == torch.float32
        assert u8.nbytes * 4 == f32.nbytes
        assert torch.equal(small.as_inputs(u8), f32)  # bit for bit, not merely close
    assert torch.equal(small.train_y, full.train_y)
    # Shuffled, augmented batches: the transform runs before the (zero-padded) crop, so the
    # border is the training mean in both, and the generator draws the same numbers.
    kwargs = {"batch_size": 7, "shuffle": True, "augment": small.augment}
    ref = _epoch(full.train_x, full.train_y, 3, **kwargs)
    got = _epoch(small.train_x, small.train_y, 3, transform=small.as_inputs, **kwargs)
    assert len(got) == len(ref)
    for (gx, gy), (rx, ry) in zip(got, ref):
        assert gx.dtype == torch.float32 and torch.equal(gx, rx) and torch.equal(gy, ry)


def test_compact_without_normalisation_gives_raw_inputs() -> None:
    raw = load_dataset("digits", normalize=False)
    small = load_dataset("digits", normalize=False, compact=True)
    assert small.train_x.dtype == torch.uint8 and int(small.train_x.max()) == 16
    assert torch.equal(small.as_inputs(small.train_x), raw.train_x)


def test_compact_is_a_no_op_for_tabular_sets() -> None:
    d = load_dataset("wine", compact=True)
    assert not d.compact and d.train_x.dtype == torch.float32
    assert d.as_inputs(d.train_x) is d.train_x
    assert torch.equal(d.train_x, load_dataset("wine").train_x)


@pytest.mark.parametrize("name", ["digits", *WRITERS])
def test_test_split_is_loaded_only_when_asked(
    name: str, disk: dict[str, tuple[Path, int, Arrays]]
) -> None:
    root = str(disk[name][0]) if name in disk else None
    d = load_dataset(name, root=root, load_test=False)
    assert d.test_x is None and d.test_y is None
    both = load_dataset(name, root=root)
    assert torch.equal(d.train_x, both.train_x) and torch.equal(d.val_y, both.val_y)
    assert torch.equal(d.mean, both.mean)


def test_test_files_are_not_needed_unless_asked(
    tmp_path: Path, disk: dict[str, tuple[Path, int, Arrays]]
) -> None:
    root = tmp_path / "train-only"
    shutil.copytree(disk["fashion_mnist"][0], root)
    for f in (root / "FashionMNIST" / "raw").glob("t10k-*"):
        f.unlink()
    d = load_dataset("fashion_mnist", root=str(root), load_test=False)
    assert d.test_x is None and len(d.train_y) + len(d.val_y) == disk["fashion_mnist"][1]
    with pytest.raises(DatasetNotFound, match="t10k-images-idx3-ubyte"):
        load_dataset("fashion_mnist", root=str(root))


def test_fashion_mnist_files_may_lie_in_root_itself(
    tmp_path: Path, disk: dict[str, tuple[Path, int, Arrays]]
) -> None:
    """Debian's dataset-fashion-mnist puts the four .gz files in one flat folder."""
    flat = tmp_path / "fashion-mnist"
    shutil.copytree(disk["fashion_mnist"][0] / "FashionMNIST" / "raw", flat)
    d = load_dataset("fashion_mnist", root=str(flat))
    assert d.input_shape == (1, 28, 28) and len(d.train_y) + len(d.val_y) == 40


def test_missing_root_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DatasetNotFound) as info:
        load_dataset("cifar10", root=str(missing))
    message = str(info.value)
    assert str(missing / "cifar-10-batches-py") in message
    assert "data.root" in message and "download: true" in message
    assert isinstance(info.value, FileNotFoundError)
    with pytest.raises(DatasetNotFound, match="no root"):
        load_dataset("svhn")


def test_missing_file_names_the_file(
    tmp_path: Path, disk: dict[str, tuple[Path, int, Arrays]]
) -> None:
    root = tmp_path / "partial"
    shutil.copytree(disk["cifar10"][0], root)
    (root / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DatasetNotFound, match="data_batch_3") as info:
        load_dataset("cifar10", root=str(root))
    assert str(root / "cifar-10-batches-py" / "data_batch_3") in str(info.value)


def test_imagenet16_is_never_downloaded(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFound, match="NAS-Bench-201"):
        load_dataset("imagenet16", root=str(tmp_path), download=True)


def test_root_may_be_the_dataset_folder(disk: dict[str, tuple[Path, int, Arrays]]) -> None:
    d = load_dataset("imagenet16", root=str(disk["imagenet16"][0] / "ImageNet16"))
    assert d.input_shape == (3, 16, 16)


def test_digits_default() -> None:
    assert "digits" in DATASETS
    d = load_dataset("digits")
    _check_splits(d, (1, 8, 8), 10)
    assert d.test_y is not None
    assert len(d.train_y) + len(d.val_y) + len(d.test_y) == 1797
    assert d.augment == "none"
    other = load_dataset("digits", seed=1)
    assert other.test_x is not None and d.test_x is not None and other.test_y is not None
    # The test holdout is fixed (independent of seed); only its normalisation may differ.
    assert torch.equal(other.test_y, d.test_y)
    assert torch.allclose(_standardise(other.test_x), _standardise(d.test_x), atol=1e-4)
    assert not torch.equal(other.val_y, d.val_y) or not torch.equal(other.val_x, d.val_x)


@pytest.mark.parametrize(
    ("name", "features", "classes", "total"), [("wine", 13, 3, 178), ("breast_cancer", 30, 2, 569)]
)
def test_tabular(name: str, features: int, classes: int, total: int) -> None:
    d = load_dataset(name, val_fraction=0.25)
    _check_splits(d, (features,), classes)
    assert d.test_y is not None
    assert len(d.train_y) + len(d.val_y) + len(d.test_y) == total
    assert torch.allclose(d.train_x.mean(0), torch.zeros(features), atol=1e-4)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "mnist"}, "name"),
        ({"name": "digits", "val_fraction": 1.0}, "val_fraction"),
        ({"name": "digits", "seed": -1}, "seed"),
        ({"name": "digits", "limit": 0}, "limit"),
        ({"name": "digits", "limit": True}, "limit"),
        ({"name": "digits", "limit": 100.0}, "limit"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        load_dataset(**kwargs)  # type: ignore[arg-type]


def _epoch(x: torch.Tensor, y: torch.Tensor, seed: int, **kwargs: object) -> list[tuple]:
    g = torch.Generator(device=x.device).manual_seed(seed)
    return list(batches(x, y, generator=g, **kwargs))  # type: ignore[arg-type]


@pytest.mark.parametrize("shuffle", [True, False])
def test_batches_cover_every_example_once(shuffle: bool) -> None:
    x, y = torch.arange(50.0)[:, None], torch.arange(50)
    out = _epoch(x, y, 0, batch_size=7, shuffle=shuffle)
    assert [len(b[1]) for b in out] == [7] * 7 + [1]
    seen = torch.cat([b[1] for b in out])
    assert sorted(seen.tolist()) == list(range(50))
    assert all(torch.equal(bx[:, 0].long(), by) for bx, by in out)  # pairs stay aligned
    dropped = _epoch(x, y, 0, batch_size=7, shuffle=shuffle, drop_last=True)
    assert [len(b[1]) for b in dropped] == [7] * 7


def test_batches_are_reproducible() -> None:
    x, y = torch.randn(40, 3, 16, 16), torch.arange(40)
    kwargs = {"batch_size": 8, "shuffle": True, "augment": "crop_flip"}
    a, b, c = _epoch(x, y, 5, **kwargs), _epoch(x, y, 5, **kwargs), _epoch(x, y, 6, **kwargs)
    assert all(torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(a, b))
    assert not all(torch.equal(p[1], q[1]) for p, q in zip(a, c))


@pytest.mark.parametrize(("augment", "size"), [("crop", 32), ("crop_flip", 32), ("crop_flip", 8)])
def test_augmentation_is_a_padded_crop(augment: str, size: int) -> None:
    x, y = torch.randn(64, 3, size, size), torch.arange(64)
    out = _epoch(x, y, 0, batch_size=64, shuffle=False, augment=augment)
    ((ax, ay),) = out
    assert ax.shape == x.shape and torch.equal(ay, y)
    assert not torch.equal(ax, x)
    pad = min(4, max(1, size // 8))
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    flips = 0
    for i in range(len(x)):
        windows = [
            padded[i, :, r : r + size, c : c + size]
            for r in range(2 * pad + 1)
            for c in range(2 * pad + 1)
        ]
        if any(torch.equal(ax[i], w) for w in windows):
            continue
        assert augment == "crop_flip" and any(torch.equal(ax[i], w.flip(2)) for w in windows)
        flips += 1
    assert (flips > 0) == (augment == "crop_flip")


def test_batches_reject_bad_arguments() -> None:
    x, y = torch.randn(4, 3), torch.arange(4)
    with pytest.raises(ValueError, match="batch_size"):
        batches(x, y, batch_size=0, shuffle=False, generator=None)
    with pytest.raises(ValueError, match="augment"):
        batches(x, y, batch_size=2, shuffle=False, generator=None, augment="crop")
    with pytest.raises(ValueError, match="augment"):
        batches(x, y, batch_size=2, shuffle=False, generator=None, augment="mixup")
    with pytest.raises(ValueError, match="lengths"):
        batches(x, y[:3], batch_size=2, shuffle=False, generator=None)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_placement_and_batching() -> None:
    d = load_dataset("digits", device="cuda")
    assert d.train_x.is_cuda and d.train_y.is_cuda
    g = torch.Generator(device="cuda").manual_seed(0)
    images = torch.randn(16, 3, 32, 32, device="cuda")
    ((bx, by),) = batches(
        images,
        torch.arange(16, device="cuda"),
        batch_size=16,
        shuffle=True,
        generator=g,
        augment="crop_flip",
    )
    assert bx.is_cuda and bx.shape == images.shape
    with pytest.raises(ValueError, match="generator"):
        batches(images, by, batch_size=4, shuffle=True, generator=torch.Generator())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_compact_splits_match_float_splits() -> None:
    full = load_dataset("digits", device="cuda")
    small = load_dataset("digits", device="cuda", compact=True, load_test=False)
    assert small.train_x.is_cuda and small.train_x.dtype == torch.uint8 and small.test_x is None
    assert torch.equal(small.mean, full.mean) and torch.equal(small.std, full.std)
    assert torch.equal(small.as_inputs(small.train_x), full.train_x)
