"""Datasets for child-network training, held as tensors on the training device.

Each process loads a dataset once (:func:`load_dataset` caches it), splits, normalises and moves
it to the device; :func:`batches` then slices and augments mini-batches there (no DataLoader).
With ``compact=True`` (what ``classify`` asks for) image datasets stay the files' uint8 values
on the device, a quarter of float32's memory, and each batch is scaled and normalised as it is
sliced (``batches(..., transform=splits.as_inputs)``): the same numbers, computed per batch.

Built in (scikit-learn, offline; ``root`` ignored): ``digits`` (the default; 1,797 8x8 images,
shape (1, 8, 8), 10 classes), ``wine`` (13 features, 3 classes) and ``breast_cancer`` (30
features, 2 classes); the tabular sets have ``input_shape == (features,)``, for an MLP space.

On disk under ``root``, in torchvision's formats (``root`` may also be the sub-folder itself):

* ``cifar10``: ``<root>/cifar-10-batches-py/{data_batch_1..5, test_batch}`` (pickled dicts,
  ``data``: N x 3072 uint8, ``labels``).
* ``cifar100``: ``<root>/cifar-100-python/{train, test}`` (``data``, ``fine_labels``).
* ``fashion_mnist``: ``<root>/FashionMNIST/raw/{train,t10k}-images-idx3-ubyte`` and
  ``{train,t10k}-labels-idx1-ubyte``, each plain or gzipped (``.gz``); the four files may also
  lie in ``root`` itself, as Debian's ``dataset-fashion-mnist`` installs them
  (``root: /usr/share/datasets/fashion-mnist``).
* ``svhn``: ``<root>/{train_32x32.mat, test_32x32.mat}`` (``X``: 32x32x3xN, ``y``: Nx1 with 10
  meaning digit 0); ``extra_32x32.mat`` is not used.
* ``imagenet16``: ``<root>/ImageNet16/{train_data_batch_1..10, val_data}``, NAS-Bench-201's
  pickles (``data``: N x 3072 uint8, ``labels``: 1-based); classes 1..120 are kept
  (ImageNet16-120) as labels 0..119. Not downloadable: take it from the NAS-Bench-201 release.

``download=True`` fetches missing CIFAR / Fashion-MNIST / SVHN files into ``root`` with
torchvision; otherwise nothing is downloaded and a missing file raises :class:`DatasetNotFound`.
With ``load_test=False`` the test files are neither read nor required (``test_x`` is None).

Splits: test is the official test split (``val_data`` for ImageNet16; for the scikit-learn sets
a fixed stratified 20% holdout that does not depend on ``seed``). Validation is carved from the
official train split by a *stratified* permutation drawn from ``numpy.random.default_rng(seed)``
(each class gives ``val_fraction`` of its examples, up to rounding): same seed, same split, in
any process; ``limit`` subsamples the official train split first, stratified the same way
(the rule it must meet is :func:`raynas.experiment.config_rules.limit_problem`).
``val_fraction=0`` holds out nothing: the whole (limited) official training split trains and
the validation split is empty. Images are scaled to [0, 1], then every split is normalised
with the per-channel (per-feature for tabular sets) mean and std of the final training split;
``DataSplits.mean`` / ``std`` keep those statistics (an exported model applies them to raw
inputs, see :data:`RAW_INPUTS`), and ``normalize=False`` returns the splits before that step.

Augmentation (``DataSplits.augment``): ``"crop_flip"`` (random crop after zero padding, then a
random horizontal flip) for cifar10, cifar100 and imagenet16; ``"crop"`` for svhn (mirrored
digits are not digits, so no flip); ``"none"`` otherwise. Padding is applied to normalised
tensors, so the border equals the training mean.

Kept as one module (over 450 lines): the datasets' file specs, readers, stratified
splitting, per-process cache and on-device batching are one pipeline behind load_dataset and
batches.
"""

from __future__ import annotations

import gzip
import os
import pickle
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from raynas.experiment.config_rules import DATASET_CLASSES, limit_problem

__all__ = [
    "DATASETS",
    "RAW_INPUTS",
    "DataSplits",
    "DatasetNotFound",
    "Normalize",
    "batches",
    "clear_cache",
    "load_dataset",
]


class _Spec(NamedTuple):
    """Where an on-disk dataset's files live (``root/subdir/<file>``) and what it holds."""

    subdir: str
    train: tuple[str, ...]
    test: tuple[str, ...]
    num_classes: int
    augment: str


_C10 = tuple(f"data_batch_{i}" for i in range(1, 6))
_IN16 = tuple(f"train_data_batch_{i}" for i in range(1, 11))
_FM_TRAIN = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
_FM_TEST = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_N = DATASET_CLASSES  # the class counts the `data.limit` rule uses too
_SPECS: dict[str, _Spec] = {
    "cifar10": _Spec("cifar-10-batches-py", _C10, ("test_batch",), _N["cifar10"], "crop_flip"),
    "cifar100": _Spec("cifar-100-python", ("train",), ("test",), _N["cifar100"], "crop_flip"),
    "fashion_mnist": _Spec(
        os.path.join("FashionMNIST", "raw"), _FM_TRAIN, _FM_TEST, _N["fashion_mnist"], "none"
    ),
    "svhn": _Spec("", ("train_32x32.mat",), ("test_32x32.mat",), _N["svhn"], "crop"),
    "imagenet16": _Spec("ImageNet16", _IN16, ("val_data",), _N["imagenet16"], "crop_flip"),
}
_BUILTIN = ("digits", "wine", "breast_cancer")
DATASETS: tuple[str, ...] = ("digits", *_SPECS, "wine", "breast_cancer")
AUGMENTATIONS: tuple[str, ...] = ("none", "crop", "crop_flip")
_IMAGES_255 = "the dataset's uint8 pixels / 255, in [0, 1]"
#: A raw example of each dataset, before normalisation: what ``normalize=False`` returns and
#: what a model exported by ``raynas export`` takes (it normalises inside).
RAW_INPUTS: dict[str, str] = {
    "digits": "scikit-learn's load_digits().images[:, None] / 16 (pixels 0..16), in [0, 1]",
    "cifar10": f"{_IMAGES_255}, channels R, G, B (the pickles' order)",
    "cifar100": f"{_IMAGES_255}, channels R, G, B (the pickles' order)",
    "fashion_mnist": f"{_IMAGES_255}, one grey channel",
    "svhn": f"{_IMAGES_255}, channels R, G, B (the .mat files' order)",
    "imagenet16": f"{_IMAGES_255}, channels R, G, B (the pickles' order)",
    "wine": "scikit-learn's load_wine().data, unscaled, features in its order",
    "breast_cancer": "scikit-learn's load_breast_cancer().data, unscaled, features in its order",
}
_HOLDOUT_SEED = 0  # fixed: the scikit-learn sets' test holdout never depends on `seed`
_HOLDOUT_FRACTION = 0.2


class DatasetNotFound(FileNotFoundError):
    """A dataset's files are not where ``load_dataset`` looked for them.

    The message names the path looked at, the expected layout and how to fix it.
    """


@dataclass(frozen=True)
class DataSplits:
    """A loaded, split and normalised dataset; all tensors live on the same device.

    Cached instances are shared between trials: treat the tensors as read-only.

    Attributes:
        name: Dataset name, one of :data:`DATASETS`.
        num_classes: Number of classes; labels are in ``[0, num_classes)``.
        input_shape: Shape of one example: ``(C, H, W)`` for images, ``(features,)`` else.
        train_x: Training inputs, ``(N, *input_shape)``: float32, or when ``compact`` the
            raw uint8 values (``as_inputs`` turns a batch of them into float32 inputs).
        train_y: Training labels, int64, ``(N,)``.
        val_x: Validation inputs carved from the official training split (empty when
            ``val_fraction`` is 0).
        val_y: Validation labels.
        test_x: Test inputs (official test split), or None if the dataset has none or it
            was not loaded (``load_test=False``).
        test_y: Test labels, or None.
        augment: Training augmentation for :func:`batches`: "crop_flip", "crop" or "none".
        mean: Per-channel (per-feature) mean of the raw training split, shaped to broadcast
            over a batch: ``(1, C, 1, 1)`` for images, ``(1, features)`` else.
        std: The matching standard deviation (population, clamped to >= 1e-6).
        normalized: Whether the inputs are ``(raw - mean) / std`` (else raw, see
            :data:`RAW_INPUTS`); for ``compact`` splits, whether ``as_inputs`` normalises.
        compact: The image tensors hold the files' uint8 values; ``as_inputs`` converts.
        scale: What a uint8 value is divided by to give a raw input in [0, 1] (255; 16 for
            digits; 1.0 for tabular sets).
    """

    name: str
    num_classes: int
    input_shape: tuple[int, ...]
    train_x: Tensor
    train_y: Tensor
    val_x: Tensor
    val_y: Tensor
    test_x: Tensor | None
    test_y: Tensor | None
    augment: str
    mean: Tensor
    std: Tensor
    normalized: bool = True
    compact: bool = False
    scale: float = 1.0

    def as_inputs(self, x: Tensor) -> Tensor:
        """A batch of stored inputs as the float32 inputs a network trains on.

        The identity for float splits; for ``compact`` ones ``x / scale``, then (when
        ``normalized``) ``(x - mean) / std``: the arithmetic :func:`load_dataset` applies to a
        whole float split, so a batch converted here equals the same batch of float splits.
        Pass it as ``batches(..., transform=splits.as_inputs)``.

        Example:
            >>> d = load_dataset("digits", compact=True)
            >>> d.as_inputs(d.train_x[:8]).dtype
            torch.float32
        """
        if not self.compact:
            return x
        out = x.to(torch.float32)
        if self.scale != 1.0:
            out = out.div_(self.scale)
        return out.sub_(self.mean).div_(self.std) if self.normalized else out

    def normalizer(self) -> Normalize:
        """The normalisation of these splits as a module (on the CPU): raw inputs in, what the
        trainables train on out. ``nn.Sequential(splits.normalizer(), net)`` takes raw inputs.
        """
        return Normalize(self.mean, self.std)


class Normalize(nn.Module):
    """``(x - mean) / std`` with the statistics held as buffers (saved with the module).

    The same arithmetic :func:`load_dataset` applies to every split, so a network behind it
    sees exactly the tensors it was trained on.

    Args:
        mean: Broadcastable over a batch, e.g. ``(1, C, 1, 1)`` or ``(1, features)``.
        std: The same shape, > 0.
    """

    mean: Tensor
    std: Tensor

    def __init__(self, mean: Tensor, std: Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean.detach().to("cpu", torch.float32, copy=True))
        self.register_buffer("std", std.detach().to("cpu", torch.float32, copy=True))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


@dataclass
class _Raw:
    """Arrays as read from disk: inputs are ``x / scale`` in [0, 1] (scale 1 for tabular)."""

    x: np.ndarray
    y: np.ndarray
    test_x: np.ndarray | None  # None: the test split was not asked for
    test_y: np.ndarray | None
    num_classes: int
    scale: float


#: name, root, val_fraction, seed, device, limit, normalize, compact, load_test
_CacheKey = tuple[str, str | None, float, int, str, int | None, bool, bool, bool]
_CACHE: dict[_CacheKey, DataSplits] = {}
_CACHE_LOCK = threading.Lock()


def clear_cache() -> None:
    """Forget every dataset loaded by :func:`load_dataset` in this process."""
    with _CACHE_LOCK:
        _CACHE.clear()


def load_dataset(
    name: str,
    *,
    root: str | None = None,
    download: bool = False,
    val_fraction: float = 0.2,
    seed: int = 0,
    device: str | torch.device = "cpu",
    limit: int | None = None,
    normalize: bool = True,
    compact: bool = False,
    load_test: bool = True,
) -> DataSplits:
    """Load, split, normalise and move a dataset to ``device``, once per process.

    Results are cached by every argument but ``download``, so a Ray worker that runs many
    trials reads the files only once.

    Args:
        name: One of :data:`DATASETS`.
        root: Folder holding the dataset files (see the module docstring); ignored for the
            scikit-learn sets.
        download: Fetch missing CIFAR / Fashion-MNIST / SVHN files into ``root``.
        val_fraction: Fraction of the (limited) official training split held out for
            validation, in ``[0, 1)``; 0 keeps the whole split for training (``val_x`` is
            empty).
        seed: Seed of the validation split and of the ``limit`` subsample (``>= 0``).
        device: Where the tensors are placed.
        limit: If given, keep only this many examples of the official training split (a
            stratified seeded subsample) before carving the validation split; at least the
            number of classes (:func:`raynas.experiment.config_rules.limit_problem`). The test
            split is not limited.
        normalize: Normalise every split with the training split's statistics; False keeps
            the raw inputs (:data:`RAW_INPUTS`), the statistics still in ``mean`` / ``std``.
        compact: Keep image inputs as uint8 on ``device`` (a quarter of the memory); each
            batch is then converted by ``DataSplits.as_inputs``. No effect on tabular sets.
        load_test: Read the official test split; False neither reads nor requires its files
            (``test_x`` / ``test_y`` are None).

    Returns:
        The dataset splits, on ``device``.

    Raises:
        ValueError: On an unknown name or an out-of-range argument.
        DatasetNotFound: If a dataset file is missing.
    """
    if name not in DATASETS:
        raise ValueError(f"name: unknown dataset {name!r}; expected one of {list(DATASETS)}")
    if not isinstance(val_fraction, (int, float)) or not 0.0 <= float(val_fraction) < 1.0:
        raise ValueError(f"val_fraction: must be in [0, 1), got {val_fraction!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed: must be an int >= 0, got {seed!r}")
    problem = limit_problem(name, limit)
    if problem is not None:
        raise ValueError(f"limit: {problem}, got {limit!r}")
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:  # "cuda" and "cuda:0" share a cache entry
        dev = torch.device("cuda", torch.cuda.current_device())
    root_key = None if name in _BUILTIN or root is None else os.path.abspath(root)
    key: _CacheKey = (
        name,
        root_key,
        float(val_fraction),
        seed,
        str(dev),
        limit,
        bool(normalize),
        bool(compact),
        bool(load_test),
    )
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
        splits = _build(key, root, download, dev)
        _CACHE[key] = splits
        return splits


def batches(
    x: Tensor,
    y: Tensor,
    *,
    batch_size: int,
    shuffle: bool,
    generator: torch.Generator | None,
    augment: str = "none",
    drop_last: bool = False,
    transform: Callable[[Tensor], Tensor] | None = None,
) -> Iterator[tuple[Tensor, Tensor]]:
    """Yield mini-batches of ``(x, y)`` by slicing tensors on their own device.

    One epoch visits every example exactly once (the last, smaller batch is yielded unless
    ``drop_last``). Shuffling and augmentation draw from ``generator`` in a fixed order, so a
    generator seeded the same way reproduces the same batches.

    Args:
        x: Inputs, ``(N, ...)``; images must be ``(N, C, H, W)`` to be augmented.
        y: Labels, ``(N,)``.
        batch_size: Examples per batch, ``>= 1``.
        shuffle: Visit examples in a random order.
        generator: Random source on the same device as ``x``; None uses torch's global one.
        augment: "none", "crop" (random crop after zero padding of
            ``min(4, max(1, min(H, W) // 8))`` pixels) or "crop_flip" (crop, then horizontal
            flip with probability 1/2). Usually ``DataSplits.augment`` for training.
        drop_last: Skip the last batch if it is smaller than ``batch_size``.
        transform: Applied to each sliced batch of inputs before augmentation, e.g.
            ``DataSplits.as_inputs`` for compact (uint8) splits; it must not draw random
            numbers (the batches then match those of float splits exactly).

    Returns:
        An iterator over ``(inputs, labels)`` batches.

    Raises:
        ValueError: At call time, on mismatched tensors, a bad batch size, an unknown
            augmentation or a generator on another device.
    """
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x, y: different lengths {x.shape[0]} and {y.shape[0]}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: must be an int >= 1, got {batch_size!r}")
    if augment not in AUGMENTATIONS:
        raise ValueError(f"augment: unknown {augment!r}; expected one of {list(AUGMENTATIONS)}")
    if augment != "none" and x.dim() != 4:
        raise ValueError(f"augment: {augment!r} needs (N, C, H, W) inputs, got {tuple(x.shape)}")
    if generator is not None and generator.device.type != x.device.type:
        raise ValueError(
            f"generator: is on {generator.device} but the data is on {x.device}; "
            f"create it with torch.Generator(device={str(x.device)!r})"
        )

    def epoch() -> Iterator[tuple[Tensor, Tensor]]:  # a closure, so arguments are checked eagerly
        n = x.shape[0]
        order = torch.randperm(n, generator=generator, device=x.device) if shuffle else None
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            if drop_last and stop - start < batch_size:
                break
            if order is None:
                xb, yb = x[start:stop], y[start:stop]
            else:
                idx = order[start:stop]
                xb, yb = x.index_select(0, idx), y.index_select(0, idx.to(y.device))
            if transform is not None:
                xb = transform(xb)
            if augment != "none":
                xb = _augment(xb, flip=augment == "crop_flip", generator=generator)
            yield xb, yb

    return epoch()


def _augment(x: Tensor, *, flip: bool, generator: torch.Generator | None) -> Tensor:
    """Random-crop (zero padded) and optionally horizontally flip a batch, per example."""
    n, _, h, w = x.shape
    pad = min(4, max(1, min(h, w) // 8))
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=x.device)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=x.device)
    rows = dy[:, None] + torch.arange(h, device=x.device)  # (N, H)
    cols = dx[:, None] + torch.arange(w, device=x.device)  # (N, W)
    batch = torch.arange(n, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (N,H,W,C)
    out = out.permute(0, 3, 1, 2).contiguous()
    if flip:
        mask = torch.rand(n, generator=generator, device=x.device) < 0.5
        out = torch.where(mask[:, None, None, None], out.flip(3), out)
    return out


# ----------------------------------------------------------------------------- splitting


def _stratified_order(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random order of ``range(len(y))`` whose every prefix is about class-balanced."""
    perm = rng.permutation(len(y))
    yp = y[perm]
    by_class = np.argsort(yp, kind="stable")
    counts = np.bincount(yp)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    rank = np.empty(len(y), dtype=np.int64)
    rank[by_class] = np.arange(len(y)) - starts[yp[by_class]]
    position = (rank + 0.5) / counts[yp]
    return perm[np.argsort(position, kind="stable")]


def _split(y: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[Any, Any]:
    """Stratified split of ``range(len(y))`` into (rest, held-out ``fraction``) sorted indices."""
    order = _stratified_order(y, rng)
    n_out = round(fraction * len(y))
    if fraction > 0 and len(y) > 1:
        n_out = min(max(n_out, 1), len(y) - 1)
    return np.sort(order[n_out:]), np.sort(order[:n_out])


def _build(key: _CacheKey, root: str | None, download: bool, device: torch.device) -> DataSplits:
    name, _, val_fraction, seed, _, limit, normalize, compact, load_test = key
    if name in _BUILTIN:
        raw = _read_builtin(name, load_test)
    else:
        raw = _read_files(name, root, download, load_test)
    rng = np.random.default_rng(seed)
    x, y = raw.x, raw.y
    if limit is not None and limit < len(y):
        keep = np.sort(_stratified_order(y, rng)[:limit])
        x, y = x[keep], y[keep]
    train_idx, val_idx = _split(y, val_fraction, rng)
    compact = compact and x.dtype == np.uint8  # tabular sets are float already

    def as_float(t: Tensor) -> Tensor:
        t = t.to(torch.float32, copy=True)
        return t.div_(raw.scale) if raw.scale != 1.0 else t

    def to_device(a: np.ndarray) -> Tensor:
        # Move the compact (often uint8) array first, then convert on the device.
        t = torch.from_numpy(np.ascontiguousarray(a)).to(device)
        return t if compact else as_float(t)

    def index(a: np.ndarray) -> Tensor:
        return torch.from_numpy(a.astype(np.int64)).to(device)

    x_all = to_device(x)
    train_x, val_x = x_all[index(train_idx)], x_all[index(val_idx)]
    del x_all
    # Statistics of the float training split; in compact mode a transient copy (the same
    # tensor as the float path's, so the same mean and std), freed before training starts.
    train_f = as_float(train_x) if compact else train_x
    dims = (0, 2, 3) if train_f.dim() == 4 else (0,)
    std, mean = torch.std_mean(train_f, dim=dims, correction=0, keepdim=True)
    std = std.clamp_min(1e-6)
    del train_f
    if compact and device.type == "cuda":
        torch.cuda.empty_cache()  # give the transient copy back, not only to torch's cache
    test_x = None if raw.test_x is None else to_device(raw.test_x)
    if normalize and not compact:
        for t in (train_x, val_x, test_x):
            if t is not None:
                t.sub_(mean).div_(std)

    return DataSplits(
        name=name,
        num_classes=raw.num_classes,
        input_shape=tuple(train_x.shape[1:]),
        train_x=train_x,
        train_y=index(y[train_idx]),
        val_x=val_x,
        val_y=index(y[val_idx]),
        test_x=test_x,
        test_y=None if raw.test_y is None else index(raw.test_y),
        augment=_SPECS[name].augment if name in _SPECS else "none",
        mean=mean,
        std=std,
        normalized=normalize,
        compact=compact,
        scale=raw.scale,
    )


# ----------------------------------------------------------------------------- readers


def _read_builtin(name: str, load_test: bool) -> _Raw:
    from sklearn import datasets as skd

    if name == "digits":
        bunch = skd.load_digits()
        x, scale = bunch.images.astype(np.uint8)[:, None], 16.0  # pixel values are 0..16
    else:
        bunch = skd.load_wine() if name == "wine" else skd.load_breast_cancer()
        x, scale = bunch.data.astype(np.float32), 1.0
    y = bunch.target.astype(np.int64)
    rest, test = _split(y, _HOLDOUT_FRACTION, np.random.default_rng(_HOLDOUT_SEED))
    tx, ty = (x[test], y[test]) if load_test else (None, None)
    return _Raw(x[rest], y[rest], tx, ty, int(y.max()) + 1, scale)


def _resolve(folder: str, file: str) -> str | None:
    for candidate in (file, file + ".gz"):
        path = os.path.join(folder, candidate)
        if os.path.isfile(path):
            return path
    return None


def _not_found(name: str, path: str) -> DatasetNotFound:
    how = (
        "point `data.root` at the folder that holds these files (ImageNet16-120 cannot be "
        "downloaded automatically: take it from the NAS-Bench-201 release)"
        if name == "imagenet16"
        else "point `data.root` at the folder that holds these files, or set `download: true`"
    )
    spec = _SPECS[name]
    files = ", ".join(spec.train + spec.test) + (
        " (each plain or .gz)" if "FM" in spec.subdir else ""
    )
    layout = os.path.join("<root>", spec.subdir, f"{{{files}}}")
    return DatasetNotFound(f"{name}: not found at {path}. Expected layout: {layout}. Fix: {how}.")


def _find_folder(name: str, root: str | None, download: bool, load_test: bool) -> str:
    """The folder holding ``name``'s files (``root/<subdir>`` or ``root``), downloading if asked;
    the test files are required only with ``load_test``."""
    if root is None:
        raise _not_found(name, "<no root given>")
    spec = _SPECS[name]
    needed = spec.train + spec.test if load_test else spec.train
    primary = os.path.join(root, spec.subdir) if spec.subdir else root
    for folder in (primary, root):
        if all(_resolve(folder, f) for f in needed):
            return folder
    if download and name != "imagenet16":
        _download(name, root)
    for f in needed:
        if _resolve(primary, f) is None:
            raise _not_found(name, os.path.join(primary, f))
    return primary


def _download(name: str, root: str) -> None:
    from torchvision import datasets as tvd

    os.makedirs(root, exist_ok=True)
    if name == "svhn":
        for split in ("train", "test"):
            tvd.SVHN(root, split=split, download=True)
        return
    cls = {"cifar10": tvd.CIFAR10, "cifar100": tvd.CIFAR100, "fashion_mnist": tvd.FashionMNIST}
    for train in (True, False):
        cls[name](root, train=train, download=True)


def _unpickle(path: str) -> dict[str, Any]:
    opener: Callable[..., Any] = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as fh:
        entry = pickle.load(fh, encoding="latin1")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in entry.items()}


def _pickled(
    paths: list[str], key: str, size: int, keep_max: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-style pickles; ``keep_max``: keep 1-based labels <= it, relabelled from 0."""
    xs, ys = [], []
    for path in paths:
        entry = _unpickle(path)
        x, y = np.asarray(entry["data"], np.uint8), np.asarray(entry[key], np.int64)
        if keep_max is not None:
            keep = y <= keep_max
            x, y = x[keep], y[keep] - 1
        xs.append(x.reshape(-1, 3, size, size))
        ys.append(y)
    return np.concatenate(xs), np.concatenate(ys)


def _idx(path: str, ndim: int) -> np.ndarray:
    """Read an idx-ubyte file (big-endian header, unsigned bytes) of ``ndim`` dimensions."""
    opener: Callable[..., Any] = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as fh:
        data = bytearray(fh.read())  # writable, so torch can share it without a warning
    magic = int.from_bytes(data[:4], "big")
    if magic != 0x0800 + ndim:
        raise ValueError(f"{path}: not a {ndim}-d idx-ubyte file (magic {magic:#x})")
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _svhn(path: str) -> tuple[np.ndarray, np.ndarray]:
    from scipy.io import loadmat

    mat = loadmat(path)
    x = np.transpose(mat["X"], (3, 2, 0, 1)).astype(np.uint8)  # (H, W, C, N) -> (N, C, H, W)
    return x, mat["y"].reshape(-1).astype(np.int64) % 10  # label 10 means digit 0


def _read_files(name: str, root: str | None, download: bool, load_test: bool) -> _Raw:
    folder = _find_folder(name, root, download, load_test)
    spec = _SPECS[name]
    train = [p for p in (_resolve(folder, f) for f in spec.train) if p]
    test = [p for p in (_resolve(folder, f) for f in spec.test) if p] if load_test else []

    def read(paths: list[str]) -> tuple[np.ndarray, np.ndarray]:
        if name in ("cifar10", "cifar100"):
            return _pickled(paths, "labels" if name == "cifar10" else "fine_labels", 32)
        if name == "fashion_mnist":
            return _idx(paths[0], 3)[:, None], _idx(paths[1], 1).astype(np.int64)
        if name == "svhn":
            return _svhn(paths[0])
        # ImageNet16-120: the first 120 of the 1,000 (1-based) classes.
        return _pickled(paths, "labels", 16, 120)

    x, y = read(train)
    tx, ty = read(test) if load_test else (None, None)
    num_classes = spec.num_classes
    for split, labels in (("train", y), ("test", ty)):
        if labels is not None and len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(
                f"{name}: {split} labels outside [0, {num_classes}) in {folder}; "
                "are these the right files?"
            )
    return _Raw(x, y, tx, ty, num_classes, 255.0)
