"""How a run's progress reads in the sidebar, for a run of its own and for a network in a race alike."""

from __future__ import annotations

from ..prose import duration
from ..runs.record import Run

# The badge on a run's or a race's card, for each state (runs/record.py's run_state).
STATE_BADGES = {"queued": ("queued", "gray"),
                "starting": ("starting", "blue"), "running": ("running", "blue"), "testing": ("testing", "violet"),
                "stopped": ("stopped", "orange"), "finished": ("finished", "green"), "failed": ("failed", "red")}


def progress_text(run: Run) -> str:
    s = run.status
    epochs, steps = ("?" if n is None else n for n in (s.epochs, s.steps))
    if s.state == "testing":
        last = s.epoch == s.epochs
        return (f"epoch {s.epoch}/{epochs} trained · testing it on the test split"
                + (", as Classify answers (a few minutes for the larger networks on a CPU)" if last else ""))
    # Between epochs the trainer reports step 0 with `epoch` counting the epochs done.
    parts = ([f"epoch {s.epoch}/{epochs}", f"batch {s.step}/{steps}"] if s.step
             else [f"{s.epoch}/{epochs} epochs done"])
    if s.loss is not None:
        parts.append(f"loss {s.loss:.3f}")
    if s.eta_s is not None:
        parts.append(f"ETA {duration(s.eta_s)}")
    return " · ".join(parts)
