"""The finding record every detector returns."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Literal

from diag.store import json_safe

Severity = Literal["info", "warning", "critical"]
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

    @property
    def is_alert(self) -> bool:
        """Warnings and critical findings are alerts; info findings are reported, never alerted."""
        return SEVERITY_RANK[self.severity] >= 1

    @property
    def key(self) -> str:
        return f"{self.kind}@{self.onset}"

    def to_row(self) -> dict:
        return {"id": self.key, "step": self.step, "kind": self.kind, "severity": self.severity, "message": self.message,
                "onset": self.onset, "window_start": self.window_start, "window_end": self.window_end,
                "evidence": json.dumps(json_safe(self.evidence), default=str)}

    def to_dict(self) -> dict:
        return json_safe(asdict(self))

