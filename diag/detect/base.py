"""The finding record every detector returns."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Literal

from diag.store import json_safe

Severity = Literal["info", "warning", "critical"]
State = Literal["firing", "resolved"]
SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}


@dataclass(frozen=True)
class Finding:
    kind: str  # signal_gap | saturated | decoupling | reward_stall | best_checkpoint | no_data
    severity: Severity
    step: int  # the step at which the evidence was sufficient (detection time)
    onset: int | None  # estimated step where the problem began
    window_start: int | None
    window_end: int | None
    message: str
    evidence: dict = field(default_factory=dict)
    # Lifecycle: an alert fires, may escalate (same id, higher severity), and resolves when the evidence
    # goes away (accuracy back within noise of its peak, all-fail share back below the threshold).
    state: State = "firing"
    resolved_step: int | None = None  # the step at which it resolved
    episode: int = 1  # a second episode from the same onset (after a resolution) gets its own id
    cost: dict | None = None  # what a firing alert has cost since its onset (diag.detect.cost), None otherwise

    @property
    def is_alert(self) -> bool:
        """Warnings and critical findings are alerts; info findings are reported, never alerted."""
        return SEVERITY_RANK[self.severity] >= 1

    @property
    def key(self) -> str:
        base = f"{self.kind}@{self.onset}"
        return base if self.episode == 1 else f"{base}#{self.episode}"

    @property
    def firing(self) -> bool:
        """An alert whose evidence still holds at the end of what was seen."""
        return self.is_alert and self.state == "firing"

    def resolve(self, step: int, why: str) -> "Finding":
        """The same alert, resolved at `step`; the message says since when and why."""
        return replace(self, state="resolved", resolved_step=int(step),
                       message=f"{self.message} RESOLVED at step {step}: {why}.",
                       evidence={**self.evidence, "resolved_because": why})

    def with_note(self, text: str, **evidence) -> "Finding":
        """The same finding with `text` added to its message (before a resolution's note, which stays
        last) and `evidence` merged into its evidence."""
        msg, tail = self.message, ""
        if self.state == "resolved" and " RESOLVED at step " in msg:
            msg, tail = msg.split(" RESOLVED at step ", 1)
            tail = " RESOLVED at step " + tail
        return replace(self, message=msg + text + tail, evidence={**self.evidence, **evidence})

    def to_row(self) -> dict:
        return {"id": self.key, "step": self.step, "kind": self.kind, "severity": self.severity, "message": self.message,
                "onset": self.onset, "window_start": self.window_start, "window_end": self.window_end,
                "evidence": json.dumps(json_safe(self.evidence), default=str), "state": self.state,
                "resolved_step": self.resolved_step}

    def to_dict(self) -> dict:
        return json_safe(asdict(self))

    @classmethod
    def from_dict(cls, d: dict) -> "Finding":
        """The finding `to_dict` wrote (a stored findings file, a `check --json` record)."""
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})


def number(x) -> float:
    """A logged value as a float, NaN where it is missing or not a number (a row from any source)."""
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def no_data(step: int, detector: str, message: str) -> Finding:
    """What a detector says when it lacks the data to judge: information, never an alert."""
    return Finding(kind="no_data", severity="info", step=step, onset=None, window_start=None, window_end=None,
                   message=message, evidence={"detector": detector})

