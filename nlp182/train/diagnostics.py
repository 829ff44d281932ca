"""What went wrong in a finished run, one warning line each, from its epoch records.

A run that ends quietly with a useless model is the worst outcome for a new user: these checks
turn the common ways into words. Each returns ``None`` when all is well, else one line that says
what happened and what to try. The Trainer runs the generic ones (:func:`loss_stalled`,
:func:`zero_kept_score`, :func:`still_improving`); the model families add their own: an empty
output, whose share each validation records as ``valid_empty`` (:func:`empty_share`) and
:func:`kept_empty_outputs` reads from the kept epoch, so that the kept model is not decoded again
to find out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

#: The loss "stopped falling" when its best over the last third of the run is less than this share
#: below its best before.
STALL_TOLERANCE = 0.01
#: Fewest epochs before a stall can be told apart from noise.
STALL_MIN_EPOCHS = 4


def loss_stalled(history: Sequence[dict[str, Any]], key: str = "train_loss") -> str | None:
    """A warning when ``key`` of the last third of the epochs (at least 2) never fell 1% (of its
    size, so a negative loss too) below its best before them; ``None`` when it did, when that best
    was already 0 (a perfect fit), or with fewer than :data:`STALL_MIN_EPOCHS` epochs."""
    losses = [float(r[key]) for r in history if key in r]
    if len(losses) < STALL_MIN_EPOCHS:
        return None
    window = max(2, len(losses) // 3)
    before, last = min(losses[:-window]), min(losses[-window:])
    if before == 0 or last < before - STALL_TOLERANCE * abs(before):
        return None
    first_flat = len(losses) - window + 1
    return (
        f"the training loss stopped falling: its best over epochs {first_flat}-{len(losses)} ({last:.4g}) "
        f"is not 1% below its best before ({before:.4g}); more epochs will not help, try another "
        "learning rate or more data"
    )


def zero_kept_score(monitor: str, mode: str, best: float | None, best_epoch: int | None) -> str | None:
    """A warning when the kept epoch's ``monitor`` score is 0 for a higher-is-better score."""
    if mode != "max" or best is None or best_epoch is None or best != 0:
        return None
    return (
        f"the kept epoch ({best_epoch}) has {monitor} = 0: no epoch scored above 0 on validation; "
        "train longer or on more data"
    )


def still_improving(monitor: str, best_epoch: int | None, history: Sequence[dict[str, Any]],
                    stop_reason: str | None) -> str | None:
    """A note (logged, not a warning: many runs end so on purpose) when the kept epoch is the last
    of a run that ended on its epoch count or time budget (not by early stopping or a perfect
    score) after at least 3 epochs: the score was still rising, and a longer run would likely keep
    a better model."""
    epochs = [r["epoch"] for r in history if "epoch" in r]
    stopped_for_a_reason = stop_reason is not None and "time budget" not in stop_reason
    if best_epoch is None or len(epochs) < 3 or best_epoch != epochs[-1] or stopped_for_a_reason:
        return None
    return (f"{monitor} was best in the last epoch ({best_epoch}): the model was still improving when "
            "the run ended; more epochs (or a longer time budget) would likely give a better one")


def closing_note(warnings: Sequence[str]) -> str:
    """``"; 2 WARNINGS: first | second (also in the log and metrics.json)"`` to end a command's closing
    line with, or ``""`` when there are none."""
    if not warnings:
        return ""
    count = f"{len(warnings)} WARNING{'S' if len(warnings) > 1 else ''}"
    return f"; {count}: {' | '.join(warnings)} (also in the log and metrics.json)"


#: The epoch record's key for the share of validation outputs that came out empty.
EMPTY_KEY = "valid_empty"


def empty_share(outputs: Sequence[str]) -> float:
    """The share of ``outputs`` that are empty or blank (0 for no outputs), recorded under
    :data:`EMPTY_KEY` by each validation."""
    return sum(not text.strip() for text in outputs) / len(outputs) if outputs else 0.0


def kept_empty_outputs(
    history: Sequence[dict[str, Any]], best_epoch: int | None, inputs: int, what: str
) -> str | None:
    """A warning when the kept epoch (``best_epoch``, 1-based, as in the records) gave empty outputs
    for any of its ``inputs`` validation inputs, read from the :data:`EMPTY_KEY` share its record
    holds; None when it gave none, or nothing was kept or recorded."""
    record = next((r for r in history if r.get("epoch") == best_epoch and EMPTY_KEY in r), None)
    empty = 0 if record is None else round(record[EMPTY_KEY] * inputs)
    if not empty:
        return None
    return f"the kept model outputs an empty {what} for {empty} of {inputs} validation inputs" + (
        " (all of them: it says nothing)" if empty == inputs else ""
    )
