"""The Tune plumbing the training trainables share: a reusable actor and one checkpoint file.

Tune hands a finished trial's actor to the next trial (``reuse_actors``) through
``reset_config``; a :class:`ReusableTrainable` does its whole setup in ``_init(config)``, so a
fresh and a reused actor start a trial the same way. Its training state (model, optimizer,
lr schedule, epoch, RNGs: :mod:`trainables.checkpoint`) goes into one ``CHECKPOINT_FILE``.
``classify``, ``supernet`` / ``subnet`` and the one-shot trainables build on it.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from ray import tune

from trainables import checkpoint

__all__ = ["ReusableTrainable"]


class ReusableTrainable(tune.Trainable):
    """A trainable whose whole setup is ``_init(config)``, so Tune can reuse its actor.

    Subclasses implement :meth:`_init` and, to checkpoint through
    :meth:`_save_training_state` / :meth:`_restore_training_state`, set ``CHECKPOINT_FILE``
    and implement :meth:`_training_objects`.
    """

    #: The file in a checkpoint folder that holds the training state.
    CHECKPOINT_FILE: ClassVar[str]
    epoch: int

    def setup(self, config: dict[str, Any]) -> None:
        logging.getLogger("ray").setLevel(logging.WARNING)
        self._init(config)

    def reset_config(self, new_config: dict[str, Any]) -> bool:
        self._init(new_config)
        return True

    def _init(self, config: dict[str, Any]) -> None:
        """Set the trial up from ``config`` (a fresh or a reused actor)."""
        raise NotImplementedError

    def _training_objects(self) -> dict[str, Any]:
        """What a checkpoint saves and restores: :func:`trainables.checkpoint.capture`'s
        keyword arguments less ``epoch``."""
        raise NotImplementedError

    def _save_training_state(self, checkpoint_dir: str, **extra: Any) -> None:
        """Write the training objects, the epoch and ``extra`` to ``CHECKPOINT_FILE``."""
        state = checkpoint.capture(**self._training_objects(), epoch=self.epoch, **extra)
        checkpoint.save(checkpoint_dir, self.CHECKPOINT_FILE, state)

    def _restore_training_state(
        self, checkpoint_dir: str | dict[str, Any] | None
    ) -> dict[str, Any] | None:
        """Restore the training objects and the epoch from ``CHECKPOINT_FILE``; returns the
        whole state, for the caller's extras, or None (nothing restored) when Tune passed no
        checkpoint folder."""
        restored = checkpoint.restore_from(
            checkpoint_dir, self.CHECKPOINT_FILE, **self._training_objects()
        )
        if restored is None:
            return None
        self.epoch, state = restored
        return state
