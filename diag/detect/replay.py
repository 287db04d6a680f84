"""The decoupling scan of a growing run, kept between calls (a dashboard's recomputation after new
steps or an evaluation): judging evaluation k reads evaluations up to k only, so when the evaluations
judged before are unchanged the scanner resumes where it stopped, and the findings are those a scan
from the start gives (tests/test_detect.py checks it at every size)."""

from __future__ import annotations

import copy
import hashlib

import numpy as np

from diag.detect.align import Aligned
from diag.detect import screen
from diag.detect.base import Finding
from diag.detect.decoupling import DecouplingParams, DecouplingScanner


class DecouplingReplay:
    """The scan of a growing run kept between calls (a dashboard tick, a live page): judging evaluation
    k reads evaluations up to k only, so when the evaluations judged before are unchanged, the scanner
    resumes where it stopped and the answer is the one a scan from the start gives. The last evaluation
    is judged again each time (its training-reward window is still filling); anything else that changed
    (a reimport, another spacing of evaluations) starts the scan over."""

    def __init__(self, params: DecouplingParams):
        self.p = params
        self._snapshot: tuple[int, str, DecouplingScanner, list[Finding]] | None = None  # before the last eval

    def events_for(self, a: Aligned) -> list[Finding]:
        m, scanner, events = 0, DecouplingScanner(self.p), []
        if self._snapshot is not None:
            k0, digest, saved, saved_events = self._snapshot
            if k0 <= len(a) and _digest(a, k0) == digest:
                m, scanner, events = k0, copy.deepcopy(saved), list(saved_events)
        ks = range(m, len(a))
        fall, stall = screen.marks(a, self.p, ks)  # the evaluations that provably hold nothing, at once
        for i, k in enumerate(ks):
            if k == len(a) - 1:
                self._snapshot = (k, _digest(a, k), copy.deepcopy(scanner), list(events))
            events += scanner.judge(a, k, bool(fall[i]), bool(stall[i]))
        return events


def _digest(a: Aligned, k: int) -> str:
    """A fingerprint of everything evaluations 0..k-1 hold (what judging them read)."""
    h = hashlib.sha256()
    for arr in (a.steps, a.acc, a.n, a.reward, a.funcs, a.length, a.clipped,
                *[x for pair in a.companions.values() for x in pair]):
        h.update(np.ascontiguousarray(arr[:k]).tobytes())
    for s in a.steps[:k]:
        if int(s) in a.items:
            h.update(np.ascontiguousarray(a.items[int(s)]).tobytes())
    h.update(repr((a.eval_set, list(a.func_names), sorted(a.companions))).encode())
    return h.hexdigest()
