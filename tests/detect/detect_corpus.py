"""Scoring the detector against the labelled corpus (shared by the tests and the benchmark).

Matching rules (per trace, per kind):
- hard_short: a detected hard short matches the label when its onset lies within
  [onset − 1 sample, onset + tolerance + 1 sample] (the tolerance covers a collapse ramp);
- soft_short / voltage_limit: the detected onset lies within [start − 2 samples,
  end + 2 samples] of the labelled episode.
A label is recalled when some detection matches it; a detection is correct when it matches
some label of its kind. Precision = correct / detected, recall = recalled / labelled.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from controller.detect import ShortDetector, ShortEvent, Thresholds, detect_trace, read_bdf
from controller.protocol import ShortDetection

CORPUS = Path(__file__).resolve().parent / "corpus"
KINDS = ("hard_short", "soft_short", "voltage_limit")


def labels() -> dict[str, dict[str, Any]]:
    data: dict[str, dict[str, Any]] = json.loads((CORPUS / "labels.json").read_text("utf-8"))
    return data


def thresholds_for(meta: dict[str, Any], settings: ShortDetection | None = None) -> Thresholds:
    window = meta["voltage_window_V"]
    return Thresholds.build(
        settings,
        area_cm2=meta["area_cm2"],
        voltage_window=(window[0], window[1]) if window else None,
    )


def run_offline(name: str, meta: dict[str, Any]) -> list[ShortEvent]:
    return detect_trace(read_bdf(CORPUS / name), thresholds_for(meta))


def run_streaming(name: str, meta: dict[str, Any], *, commanded: bool) -> list[ShortEvent]:
    """Feed the trace sample by sample; with ``commanded`` the detector is told the level
    (from the corpus' `Commanded Current / A` column), as the runner will tell it."""
    trace = read_bdf(CORPUS / name)
    det = ShortDetector(thresholds=thresholds_for(meta))
    level = None
    if commanded:
        import csv

        with open(CORPUS / name, encoding="utf-8") as fh:
            rows = csv.DictReader(fh)
            level = np.array([float(r["Commanded Current / A"]) for r in rows])
    temp = trace.temperature
    step = trace.step
    cycle = trace.cycle
    out: list[ShortEvent] = []
    t, v, i = trace.t.tolist(), trace.voltage.tolist(), trace.current.tolist()
    for k in range(len(t)):
        lv = None
        if level is not None:
            lv = float(level[k])
        out.extend(
            det.feed(
                t[k],
                v[k],
                i[k],
                temperature=None if temp is None else float(temp[k]),
                level=lv,
                source="current",
                step=0 if step is None else int(step[k]),
                cycle=0 if cycle is None else int(cycle[k]),
            )
        )
    return out


def _matches(label: dict[str, Any], event: ShortEvent, dt: float) -> bool:
    if label["kind"] != str(event.kind):
        return False
    if label["kind"] == "hard_short":
        lo = label["onset_s"] - dt * 1.01
        hi = label["onset_s"] + label["tolerance_s"] + dt * 1.01
    else:
        lo = label["start_s"] - 2.01 * dt
        hi = label["end_s"] + 2.01 * dt
    return lo <= event.onset_s <= hi


@dataclass
class Score:
    labelled: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    recalled: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    detected: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    correct: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    misses: list[str] = field(default_factory=list)
    false: list[str] = field(default_factory=list)
    latencies: list[tuple[str, float, int]] = field(default_factory=list)  # name, dt, samples

    def add(self, name: str, meta: dict[str, Any], events: list[ShortEvent]) -> None:
        dt = meta["sample_period_s"]
        for label in meta["events"]:
            kind = label["kind"]
            self.labelled[kind] += 1
            hits = [e for e in events if _matches(label, e, dt)]
            if hits:
                self.recalled[kind] += 1
                if kind == "hard_short":
                    self.latencies.append((name, dt, hits[0].latency_samples))
            else:
                self.misses.append(f"{name}: {label}")
        for e in events:
            self.detected[str(e.kind)] += 1
            if any(_matches(label, e, dt) for label in meta["events"]):
                self.correct[str(e.kind)] += 1
            else:
                self.false.append(f"{name}: {e.kind} at {e.time_s:g} s ({e.reason})")

    def precision(self, kind: str) -> float:
        return self.correct[kind] / self.detected[kind] if self.detected[kind] else 1.0

    def recall(self, kind: str) -> float:
        return self.recalled[kind] / self.labelled[kind] if self.labelled[kind] else 1.0

    def table(self) -> str:
        lines = [f"{'kind':<14} {'labelled':>8} {'detected':>8} {'precision':>9} {'recall':>7}"]
        for kind in KINDS:
            lines.append(
                f"{kind:<14} {self.labelled[kind]:>8} {self.detected[kind]:>8} "
                f"{self.precision(kind):>9.3f} {self.recall(kind):>7.3f}"
            )
        return "\n".join(lines)


def score_corpus(mode: str = "offline") -> tuple[Score, dict[str, list[ShortEvent]]]:
    score = Score()
    found: dict[str, list[ShortEvent]] = {}
    for name, meta in labels().items():
        if mode == "offline":
            events = run_offline(name, meta)
        else:
            events = run_streaming(name, meta, commanded=mode == "commanded")
        found[name] = events
        score.add(name, meta, events)
    return score, found


def generator() -> Any:
    """The corpus generator module (its physics also drives the randomised tests)."""
    import importlib.util
    import sys

    name = "detect_corpus_generate"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, CORPUS / "generate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module
