"""Safe interrupts: Ctrl-C or SIGTERM during ``learn`` ends the run at a clean iteration, never mid-write.

:func:`catch_signals` swaps the SIGINT and SIGTERM handlers for one that only records the signal.
The training loop checks :attr:`Stop.signum` between steps: a rollout in progress is abandoned
(its counters and random states rewound, so nothing of it counts), an update in progress is
finished, a final checkpoint is written atomically, and :class:`TrainingInterrupted` is raised.
The command line turns that into exit status 130 (SIGINT) or 143 (SIGTERM), as a shell would.
A second signal while the checkpoint is written is recorded too, so the write is never cut.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Stop", "TrainingInterrupted", "catch_signals"]

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(KeyboardInterrupt):
    """``learn`` stopped on a signal after saving; ``checkpoint`` is where (None when saving was off).

    A ``KeyboardInterrupt``, so code that handles Ctrl-C handles it; ``exit_code`` is 128 + the
    signal number, what a shell reports for a process killed by that signal.
    """

    def __init__(self, signum: int, checkpoint: Path | None, resume_hint: str) -> None:
        self.signum, self.checkpoint = signum, checkpoint
        name = signal.Signals(signum).name
        where = (
            f"the last complete iteration was saved to {checkpoint}; resume with {resume_hint}"
            if checkpoint
            else "no checkpoint was written (saving on interrupt was off); the trainer is at its last complete iteration"
        )
        super().__init__(f"Training stopped by {name}: {where}.")

    @property
    def exit_code(self) -> int:
        """128 + the signal number: 130 for SIGINT, 143 for SIGTERM."""
        return 128 + self.signum


@dataclass
class Stop:
    """The signal received while :func:`catch_signals` was active, or None."""

    signum: int | None = None


_LEARN = (
    "stopping at the last complete iteration (a rollout in progress is dropped and replayed on resume; an update "
    "in progress is finished), then saving a checkpoint."
)


@contextlib.contextmanager
def catch_signals(what: str = _LEARN) -> Iterator[Stop]:
    """Record SIGINT and SIGTERM in the yielded :class:`Stop` instead of acting on them.

    Outside the main thread (where Python cannot install handlers) signals keep their handlers
    and the yielded ``Stop`` never fires. The previous handlers are restored on exit. ``what``
    is printed on the first signal: what the loop does now.
    """
    stop = Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def record(signum: int, frame: object) -> None:
        if stop.signum is None:
            print(f"\n[{os.getpid()}] {signal.Signals(signum).name} received: {what}", flush=True)
        stop.signum = stop.signum or signum

    previous = {sig: signal.signal(sig, record) for sig in SIGNALS}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
