"""How a run's progress reads in the sidebar, for a run of its own and for a network in a race alike."""

from __future__ import annotations

from ..prose import duration
from ..runs import jobs

# The badge on a run's or a race's card, for each state (runs/process.py's run_state).
STATE_BADGES = {"queued": ("queued", "gray"),
                "starting": ("starting", "blue"), "running": ("running", "blue"), "testing": ("testing", "violet"),
                "stopped": ("stopped", "orange"), "finished": ("finished", "green"), "failed": ("failed", "red")}


def progress_text(run: jobs.Run) -> str:
    s = run.status
    if s.get("state") == "testing":
        last = s.get("epoch") == s.get("epochs")
        return (f"epoch {s.get('epoch', 0)}/{s.get('epochs', '?')} trained · testing it on the test split"
                + (", as Classify answers (a few minutes for the larger networks on a CPU)" if last else ""))
    # Between epochs the trainer reports step 0 with `epoch` counting the epochs done.
    parts = ([f"epoch {s.get('epoch', 0)}/{s.get('epochs', '?')}", f"batch {s['step']}/{s.get('steps', '?')}"]
             if s.get("step") else [f"{s.get('epoch', 0)}/{s.get('epochs', '?')} epochs done"])
    if isinstance(s.get("loss"), (int, float)):
        parts.append(f"loss {s['loss']:.3f}")
    if isinstance(s.get("eta_s"), (int, float)):
        parts.append(f"ETA {duration(s['eta_s'])}")
    return " · ".join(parts)
