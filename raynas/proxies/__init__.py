"""Zero-cost proxies: scores of a network at initialisation from at most one mini-batch.

Each proxy is one function ``proxy(model, batch, loss, *, input_shape=None, seed=0) -> float``
over an ``nn.Module`` at initialisation, a batch ``(inputs, labels)`` (or None for a data-free
proxy) and a loss ``loss(logits, labels) -> scalar`` (default: cross-entropy). The registry
:data:`PROXIES` maps a name to its :class:`ProxySpec`: the function (imported on first use, so
``raynas --help`` stays light), whether it needs data and whether a higher score predicts a
better network. :data:`ENSEMBLES` combines proxies over a table of scores (:mod:`.ensemble`).

Conventions shared by every proxy (see :func:`score`):

- The caller's model is never changed: a proxy works on a deep copy.
- Deterministic given ``seed``: noise (Zen's Gaussian inputs and init) comes from a
  ``torch.Generator`` seeded with it, and :func:`score` runs under a forked, seeded global RNG.
- Weight-based proxies (synflow, snip, grasp, grad_norm, fisher, zico) read the *prunable*
  weights: the ``weight`` of every ``Conv1d/2d/3d`` and ``Linear`` layer that requires grad,
  as the pruning-at-init papers and the zero-cost reference (Abdelfattah et al. 2021,
  ``foresight/pruners/p_utils.get_layer_metric_array``) define them; biases and norm layers
  take part in the forward pass but are not scored.
- Data proxies run the copy in train mode (batch-norm uses batch statistics), as a network at
  initialisation would train.
- **Invalid value:** a proxy that cannot score a model returns ``nan`` and never raises: no
  prunable weight, no ReLU module (nwot), a NaN or inf anywhere in the result. ``inf`` and
  ``-inf`` are returned as ``nan`` too (e.g. nwot's ``log|det K|`` of a singular kernel).
  Rankings (:mod:`.ensemble`, ``raynas proxies correlate``) place ``nan`` below every finite
  score. A disconnected network (all edges ``none``) is *not* invalid: its gradients are zero,
  so e.g. synflow and snip score it 0.

Example:
    >>> from raynas.proxies import score
    >>> score("synflow", model, None, input_shape=(3, 32, 32), seed=0)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DATA_FREE",
    "ENSEMBLES",
    "PROXIES",
    "ProxyError",
    "ProxySpec",
    "get_proxy",
    "list_proxies",
    "score",
]


class ProxyError(ValueError):
    """An unknown proxy name, or a data proxy called without a batch."""


@dataclass(frozen=True)
class ProxySpec:
    """One registered proxy.

    Attributes:
        name: Registry name (also the function's name in ``module``).
        module: Submodule of :mod:`raynas.proxies` that defines it.
        needs_data: Whether it needs a batch ``(inputs, labels)``.
        higher_is_better: Whether a higher score predicts a more accurate network.
        citation: The paper whose definition it follows.
    """

    name: str
    module: str
    needs_data: bool
    higher_is_better: bool
    citation: str

    @property
    def function(self) -> Callable[..., float]:
        """The proxy function (imports its module on first use)."""
        fn: Callable[..., float] = getattr(
            importlib.import_module(f"raynas.proxies.{self.module}"), self.name
        )
        return fn


def _specs(module: str, needs_data: bool, **citations: str) -> list[ProxySpec]:
    """The proxies of one submodule, each with the paper it follows."""
    return [ProxySpec(name, module, needs_data, True, cite) for name, cite in citations.items()]


#: name -> spec; every proxy here predicts accuracy with higher scores.
PROXIES: dict[str, ProxySpec] = {
    s.name: s
    for s in (
        *_specs(
            "datafree",
            False,
            synflow="Tanaka et al. 2020, SynFlow",
            zen="Lin et al. 2021, Zen-NAS",
            params="parameter count (baseline)",
            flops="forward FLOPs (baseline)",
        ),
        *_specs(
            "gradient",
            True,
            snip="Lee et al. 2019, SNIP",
            grasp="Wang et al. 2020, GraSP",
            grad_norm="Abdelfattah et al. 2021, grad_norm",
            fisher="Turner et al. 2020, Fisher",
            zico="Li et al. 2023, ZiCo",
        ),
        *_specs(
            "activation",
            True,
            jacob_cov="Mellor et al. 2021 v1, jacob_cov",
            nwot="Mellor et al. 2021 v2, NASWOT",
            meco="Jiang et al. 2023, MeCo",
        ),
    )
}

DATA_FREE = tuple(name for name, s in PROXIES.items() if not s.needs_data)

#: Ensembles over a table of scores: name -> member proxies (None: the other proxies scored).
ENSEMBLES: dict[str, tuple[str, ...] | None] = {
    "vote": ("synflow", "jacob_cov", "snip"),  # Abdelfattah et al. 2021
    "rank_average": None,
}

UNKNOWN = "proxy {name!r} is unknown; choose one of {valid}"


def list_proxies() -> list[str]:
    """Names of the per-model proxies, then the ensembles."""
    return [*PROXIES, *ENSEMBLES]


def get_proxy(name: str) -> ProxySpec:
    """The spec of a per-model proxy.

    Raises:
        ProxyError: ``name`` is not registered; the message lists the valid names.
    """
    if name not in PROXIES:
        raise ProxyError(UNKNOWN.format(name=name, valid=list(PROXIES)))
    return PROXIES[name]


def score(
    name: str,
    model: Any,
    batch: Any = None,
    loss: Callable[..., Any] | None = None,
    *,
    input_shape: tuple[int, ...] | None = None,
    seed: int = 0,
) -> float:
    """Score ``model`` with the proxy ``name``, seeded, on a copy; ``nan`` when invalid.

    Args:
        name: A key of :data:`PROXIES`.
        model: The network at initialisation (not changed).
        batch: ``(inputs, labels)`` on the model's device; required when the proxy needs data.
        loss: ``loss(logits, labels)``; default cross-entropy.
        input_shape: Shape of one input without the batch dimension, for a data-free proxy
            called without a batch.
        seed: Seeds the global torch RNG (forked, restored afterwards) and the proxy's noise.

    Returns:
        The score, or ``nan`` (see the module docstring).

    Raises:
        ProxyError: an unknown name, or a data proxy without a batch.
    """
    import torch

    spec = get_proxy(name)
    if spec.needs_data and batch is None:
        raise ProxyError(f"proxy {name!r} needs a batch (inputs, labels); none was given")
    if batch is None and input_shape is None:
        raise ProxyError(f"proxy {name!r}: give a batch or input_shape")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        value = spec.function(model, batch, loss, input_shape=input_shape, seed=seed)
    return value
