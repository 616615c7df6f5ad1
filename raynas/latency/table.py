"""Per-device latency lookup tables: profile a space's blocks once, predict any architecture.

``profile_space`` times every distinct block a space can produce (see
:mod:`raynas.latency.blocks`) in isolation on the target device: ``warmup`` untimed forwards,
then ``repeats`` timed ones, keeping the median and the spread (IQR). It then times a handful
of whole networks end to end (``networks``, 8 by default, seeded random members) and fits by
least squares the overhead that the sum of blocks misses::

    latency_pred_ms(arch) = sum(median of each block of arch)
                            + intercept_ms + per_block_ms * (number of blocks of arch)

and never below the block sum times the smallest measured / block-sum ratio of the timed
networks (a negative intercept would predict a network of few cheap blocks below zero).

``per_block_ms`` is what chaining costs each block beyond its isolated time (its weights and
input are no longer hot in cache; about 0.2 ms a block for mobilenet on one CPU thread, where
isolated blocks take 0.1-1 ms); with fewer than 3 networks, networks that all have the same
number of blocks, or a negative fitted slope (noise), only the intercept is fitted. The
prediction stays additive: each block adds its median plus ``per_block_ms``. The table is one
JSON file::

    {"format": "raynas-latency-table", "version": 1,
     "space": {"name": "mobilenet", "args": {...}},
     "device": "cpu", "device_name": "...", "torch": "2.5.1", "threads": 1, "batch": 1,
     "dtype": "float32", "memory_format": "contiguous", "input_shape": [3, 32, 32],
     "num_classes": 10, "warmup": 10, "repeats": 50, "profile_s": 41.2,
     "blocks": {"mbconv(in=16,...,hw=32x32)": {"median_ms": 0.41, "iqr_ms": 0.02,
                "q1_ms": 0.40, "q3_ms": 0.42, "repeats": 50}, ...},
     "overhead": {"intercept_ms": -0.6, "per_block_ms": 0.18, "rms_residual_ms": 0.1,
                  "networks": [{"arch": {...}, "measured_ms": 5.1, "blocks_ms": 3.0,
                                "blocks": 15}, ...]}}

Module-level imports stay light (no torch): torch is imported by the profiling functions only,
so a predictor unpickles and predicts without it.

Example:
    >>> table = profile_space("mobilenet", {"max_depth": 2}, repeats=20)
    >>> table.save("lat.json")
    >>> LatencyTable.load("lat.json", space="mobilenet").predict_ms(arch)
    4.37

Kept as one module (over 450 lines): the profile, the least-squares fit and the predictor
share one table format and its validation.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from raynas.latency.blocks import Block, LatencyError, decomposition_for

__all__ = ["FORMAT", "LatencyTable", "Timing", "fit_overhead", "profile_space", "time_network"]

FORMAT = "raynas-latency-table"
VERSION = 1
_REQUIRED = ("space", "device", "batch", "input_shape", "num_classes", "blocks", "overhead")


def _spread(times: list[float]) -> dict[str, float]:
    """Median, quartiles and IQR of ``times`` (ms), plus how many there were."""
    ordered = sorted(times)
    if len(ordered) >= 2:
        q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
    else:
        q1 = q3 = ordered[0]
    return {
        "median_ms": float(statistics.median(ordered)),
        "iqr_ms": float(q3 - q1),
        "q1_ms": float(q1),
        "q3_ms": float(q3),
        "repeats": len(ordered),
    }


@dataclass
class LatencyTable:
    """A profiled table and the predictor over it (picklable: the driver ships it to trials).

    Attributes:
        meta: Everything of the file but ``blocks`` and ``overhead`` (space, device, torch,
            threads, batch, dtype, memory format, input shape, classes, repeats, ...).
        blocks: Block key -> ``{median_ms, iqr_ms, q1_ms, q3_ms, repeats}``.
        overhead: ``{intercept_ms, per_block_ms, rms_residual_ms, networks: [...]}``.
    """

    meta: dict[str, Any]
    blocks: dict[str, dict[str, float]]
    overhead: dict[str, Any] = field(default_factory=dict)
    _space: Any = field(default=None, repr=False, compare=False)

    # --- the space ---------------------------------------------------------------
    @property
    def space_name(self) -> str:
        """The profiled space's name."""
        return str(self.meta["space"]["name"])

    @property
    def space_args(self) -> dict[str, Any]:
        """The profiled space's arguments."""
        return dict(self.meta["space"].get("args") or {})

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One example's shape the table was profiled at (the deployment input)."""
        return tuple(int(d) for d in self.meta["input_shape"])

    @property
    def num_classes(self) -> int:
        """Classifier outputs of the profiled head."""
        return int(self.meta["num_classes"])

    def space(self) -> Any:
        """The profiled space, rebuilt from the registry once (not pickled)."""
        if self._space is None:
            from raynas.registry import resolve_space

            self._space = resolve_space(self.space_name, self.space_args)
        return self._space

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_space": None}

    # --- prediction --------------------------------------------------------------
    def arch_blocks(self, arch: Any) -> list[Block]:
        """The blocks of ``arch`` at the table's input shape and classes."""
        space = self.space()
        return decomposition_for(space).blocks(space, arch, self.input_shape, self.num_classes)

    def blocks_ms(self, arch: Any) -> float:
        """Sum of the block medians of ``arch`` (the prediction without the overhead).

        Raises:
            LatencyError: a block of ``arch`` is not in the table.
        """
        return self._blocks_ms(self.arch_blocks(arch))

    def _blocks_ms(self, blocks: list[Block]) -> float:
        total = 0.0
        for block in blocks:
            entry = self.blocks.get(block.key)
            if entry is None:
                raise LatencyError(
                    f"block {block.key} is not in the latency table (profiled for "
                    f"{self.space_name} {self.space_args}); profile the experiment's space "
                    "and space_args again with `raynas latency profile`"
                )
            total += float(entry["median_ms"])
        return total

    def overhead_ms(self, blocks: int) -> float:
        """The fitted overhead of a network of ``blocks`` blocks."""
        intercept = float(self.overhead.get("intercept_ms", 0.0))
        return intercept + float(self.overhead.get("per_block_ms", 0.0)) * blocks

    def floor_ratio(self) -> float:
        """The smallest ``measured_ms / blocks_ms`` of the profiled whole networks (0 without
        any): no prediction is below this share of an architecture's block sum."""
        ratios = [
            float(n["measured_ms"]) / float(n["blocks_ms"])
            for n in self.overhead.get("networks") or []
            if float(n.get("blocks_ms") or 0) > 0
        ]
        return max(0.0, min(ratios, default=0.0))

    def predict_ms(self, arch: Any) -> float:
        """``latency_pred_ms``: the sum of the block medians plus the fitted overhead, and
        never below :meth:`floor_ratio` times the sum (a negative intercept, fitted on larger
        networks, would predict an architecture of few cheap blocks below zero)."""
        blocks = self.arch_blocks(arch)
        summed = self._blocks_ms(blocks)
        return max(summed + self.overhead_ms(len(blocks)), summed * self.floor_ratio())

    def missing_blocks(self, space: Any) -> list[str]:
        """Keys of the blocks ``space`` can produce that the table lacks (empty: it covers
        ``space``)."""
        dec = decomposition_for(space)
        wanted = dec.space_blocks(space, self.input_shape, self.num_classes)
        return [b.key for b in wanted if b.key not in self.blocks]

    # --- files -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The JSON form (see the module docstring)."""
        return {**self.meta, "blocks": self.blocks, "overhead": self.overhead}

    def save(self, path: str | Path) -> Path:
        """Write the table as JSON (atomically: a temporary file renamed)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1, sort_keys=True) + "\n")
        tmp.replace(path)
        return path

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "table") -> LatencyTable:
        """A table from its JSON form.

        Raises:
            LatencyError: not a raynas latency table, or a field is missing.
        """
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            raise LatencyError(
                f'{source} is not a raynas latency table (no "format": {FORMAT!r}); write one '
                "with `raynas latency profile`"
            )
        missing = [k for k in _REQUIRED if k not in data]
        if missing or not isinstance(data.get("blocks"), Mapping) or not data["blocks"]:
            raise LatencyError(
                f"{source}: latency table lacks {missing or ['blocks']}; profile it again"
            )
        meta = {k: v for k, v in data.items() if k not in ("blocks", "overhead")}
        return cls(meta=meta, blocks=dict(data["blocks"]), overhead=dict(data["overhead"]))

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        space: str | None = None,
        space_args: Mapping[str, Any] | None = None,
    ) -> LatencyTable:
        """Read a table; with ``space`` also check it was profiled for that space and covers
        every block of ``space`` with ``space_args``.

        Raises:
            LatencyError: the file is missing, unreadable, not a table, for another space, or
                lacks blocks the space can produce.
        """
        path = Path(path).expanduser()
        if not path.is_file():
            raise LatencyError(
                f"file {str(path)!r} does not exist; write it with `raynas latency profile "
                "--space ... --out FILE` or fix the path"
            )
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise LatencyError(f"file {str(path)!r} cannot be read as JSON: {err}") from None
        table = cls.from_dict(data, source=f"file {str(path)!r}")
        if space is None:
            return table
        if table.space_name != space:
            raise LatencyError(
                f"file {str(path)!r} was profiled for space {table.space_name!r}, not "
                f"{space!r}; profile this space with `raynas latency profile --space {space}`"
            )
        from raynas.registry import resolve_space

        target = resolve_space(space, dict(space_args or {}))
        missing = table.missing_blocks(target)
        if missing:
            raise LatencyError(
                f"file {str(path)!r} (profiled for {table.space_name} {table.space_args}) lacks "
                f"{len(missing)} block(s) this space's space_args can produce, e.g. "
                f"{missing[0]}; profile again with the experiment's space_args"
            )
        table._space = target
        return table


# --- profiling ---------------------------------------------------------------------
def _device_name(device: Any) -> str:
    import torch

    if device.type == "cuda":
        return str(torch.cuda.get_device_name(device))
    return platform.processor() or platform.machine()


@dataclass(frozen=True)
class Timing:
    """How one model is timed: ``warmup`` untimed forwards of ``batch`` examples, then
    ``repeats`` timed ones. Its fields are the keyword arguments of the same names of
    :func:`trainables.cost.latency_samples_ms` and :func:`profile_space`; a table records them.

    Attributes:
        batch: Examples per forward.
        warmup: Untimed forwards before each timing.
        repeats: Timed forwards per timing.
        channels_last: Time in channels_last memory format (the model converted first).
        amp: Time under fp16 autocast (CUDA only).
        clock: ``wall`` (latency) or ``cpu``: one thread's CPU time, which leaves out the
            waits of a CPU shared with other processes (``threads=1`` on a CPU only).
    """

    batch: int = 1
    warmup: int = 10
    repeats: int = 50
    channels_last: bool = False
    amp: bool = False
    clock: str = "wall"


#: The default timing of :func:`time_network` and :func:`profile_space`.
DEFAULT_TIMING = Timing()


def time_network(
    model: Any, input_shape: tuple[int, ...], timing: Timing = DEFAULT_TIMING
) -> dict[str, float]:
    """Time ``model`` (already on its device) alone: ``{median_ms, iqr_ms, q1_ms, q3_ms,
    repeats}`` of ``timing.repeats`` forwards after ``timing.warmup`` (see
    :func:`trainables.cost.latency_samples_ms`)."""
    from trainables.cost import latency_samples_ms

    if timing.channels_last:
        import torch

        model = model.to(memory_format=torch.channels_last)
    return _spread(latency_samples_ms(model, tuple(input_shape), **asdict(timing)))


def profile_space(
    space: str,
    space_args: Mapping[str, Any] | None = None,
    *,
    device: str = "cpu",
    threads: int | None = 1,
    batch: int = 1,
    input_shape: tuple[int, ...] = (3, 32, 32),
    num_classes: int = 10,
    warmup: int = 10,
    repeats: int = 50,
    networks: int = 8,
    seed: int = 0,
    channels_last: bool = False,
    amp: bool = False,
    clock: str = "wall",
    log: Callable[[str], None] | None = None,
) -> LatencyTable:
    """Profile every block of ``space`` on ``device`` and fit the whole-network overhead.

    ``batch``, ``warmup``, ``repeats``, ``channels_last``, ``amp`` and ``clock`` make the
    profile's :class:`Timing`, the same for every block and every network.

    Args:
        space: A registered space with a block decomposition (mobilenet).
        space_args: Its arguments.
        device: ``cpu`` or ``cuda`` (``cuda:N``).
        threads: ``torch.set_num_threads`` for the profile (CPU); None: torch's default.
        batch: Examples per forward.
        input_shape: One example's ``(C, H, W)``: the deployment input.
        num_classes: Classifier outputs of the head.
        warmup: Untimed forwards before each block's and network's timing.
        repeats: Timed forwards per block and per network.
        networks: Whole networks (seeded random members) timed to fit the overhead, >= 1.
        seed: Seeds the networks' choice and their weights.
        channels_last: Profile in channels_last memory format.
        amp: Profile under fp16 autocast (CUDA only).
        clock: ``wall`` (latency) or ``cpu``: one thread's CPU time, which leaves out the
            waits of a CPU shared with other processes (``threads=1`` on a CPU only; see
            :func:`trainables.cost.latency_samples_ms`).
        log: Progress lines go here (None: silent).

    Returns:
        The table (save it with :meth:`LatencyTable.save`).

    Raises:
        LatencyError: the space has no decomposition, or a bad device or argument.
    """
    import numpy as np
    import torch

    from raynas.registry import resolve_space

    if networks < 1:
        raise LatencyError(
            f"networks: must be >= 1 (the overhead is fitted on them), got {networks}"
        )
    target = resolve_space(space, dict(space_args or {}))
    dec = decomposition_for(target)
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise LatencyError(f"device {device!r}: torch sees no CUDA device here; use --device cpu")
    if dev.type not in ("cpu", "cuda"):
        raise LatencyError(f"device {device!r}: use cpu or cuda")
    if amp and dev.type != "cuda":
        raise LatencyError("amp: fp16 autocast is for a CUDA device; leave it off on a CPU")
    if clock == "cpu" and (dev.type != "cpu" or threads != 1):
        raise LatencyError("clock: 'cpu' times one thread's CPU time; use it with cpu, threads 1")
    if threads is not None:
        torch.set_num_threads(int(threads))
    timing = Timing(batch, warmup, repeats, channels_last, amp, clock)
    say = log or (lambda _line: None)
    torch.manual_seed(seed)
    shape = tuple(int(d) for d in input_shape)
    start = time.perf_counter()
    blocks = dec.space_blocks(target, shape, num_classes)
    say(f"profiling {len(blocks)} blocks of {space} on {device} ({repeats} repeats each)")
    entries: dict[str, dict[str, float]] = {}
    for i, block in enumerate(blocks):
        module = dec.build(target, block).to(dev)
        entries[block.key] = time_network(module, block.input_shape, timing)
        if (i + 1) % 50 == 0:
            say(f"  {i + 1}/{len(blocks)} blocks")
    table = LatencyTable(
        meta={
            "format": FORMAT,
            "version": VERSION,
            "space": {"name": space, "args": json.loads(json.dumps(dict(space_args or {})))},
            "device": str(dev),
            "device_name": _device_name(dev),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "batch": batch,
            "dtype": "float16 (autocast)" if amp else "float32",
            "memory_format": "channels_last" if channels_last else "contiguous",
            "clock": clock,
            "input_shape": list(shape),
            "num_classes": num_classes,
            "warmup": warmup,
            "repeats": repeats,
            "host": platform.node(),
        },
        blocks=entries,
        _space=target,
    )
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(networks):
        arch = target.sample(rng)
        model = target.build(arch, num_classes=num_classes, in_channels=shape[0]).to(dev)
        measured = time_network(model, shape, timing)["median_ms"]
        rows.append(
            {
                "arch": arch,
                "measured_ms": measured,
                "blocks_ms": table.blocks_ms(arch),
                "blocks": len(table.arch_blocks(arch)),
            }
        )
    table.overhead = {**fit_overhead(rows), "networks": rows}
    table.meta["profile_s"] = round(time.perf_counter() - start, 3)
    o = table.overhead
    say(
        f"overhead {o['intercept_ms']:+.3f} ms {o['per_block_ms']:+.3f} ms/block fitted on "
        f"{networks} whole networks (rms residual {o['rms_residual_ms']:.3f} ms); "
        f"{table.meta['profile_s']:.1f} s"
    )
    return table


def fit_overhead(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Least squares of ``measured_ms - blocks_ms`` on ``intercept + per_block * blocks``.

    Args:
        rows: ``{measured_ms, blocks_ms, blocks}`` of each timed whole network.

    Returns:
        ``{intercept_ms, per_block_ms, rms_residual_ms}`` (``per_block_ms`` 0 when fewer
        than 3 networks, one block count only, or a negative slope: the intercept alone is
        then the mean).
    """
    import numpy as np

    gap = np.asarray([r["measured_ms"] - r["blocks_ms"] for r in rows], dtype=float)
    counts = np.asarray([r["blocks"] for r in rows], dtype=float)
    intercept, per_block = 0.0, -1.0
    if len(rows) >= 3 and len(set(counts.tolist())) > 1:
        design = np.c_[np.ones(len(rows)), counts]
        (intercept, per_block), *_ = np.linalg.lstsq(design, gap, rcond=None)
    if per_block < 0:
        # Chaining never makes a block cheaper than alone: a negative slope is noise, and
        # extrapolated it would predict small networks below zero.
        intercept, per_block = float(gap.mean()), 0.0
    residual = gap - (intercept + per_block * counts)
    return {
        "intercept_ms": float(intercept),
        "per_block_ms": float(per_block),
        "rms_residual_ms": float(np.sqrt(np.mean(residual**2))),
    }
