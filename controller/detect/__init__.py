"""Short detection: hard shorts, soft shorts and voltage limits, streaming and offline.

- :class:`ShortDetector` — fed every sample on the control path (``update(sample)``);
- :func:`detect_arrays` / :func:`detect_trace` — the same decisions over a recorded trace;
- :func:`read_bdf` — a Battery Data Format CSV as arrays;
- :class:`RampBook`, :class:`CycleBook` — CCD and cycles-to-short from a hard short.

The physics and every threshold are explained in docs/short-detection.md.
"""

from controller.detect.bdf import Trace, read_bdf
from controller.detect.ccd import (
    CcdResult,
    ChargeCounter,
    CycleBook,
    CyclesToShort,
    RampBook,
    ramp_levels,
)
from controller.detect.events import EventKind, ShortEvent
from controller.detect.offline import detect_arrays, detect_trace
from controller.detect.stream import ShortDetector
from controller.detect.thresholds import Thresholds

__all__ = [
    "CcdResult",
    "ChargeCounter",
    "CycleBook",
    "CyclesToShort",
    "EventKind",
    "RampBook",
    "ShortDetector",
    "ShortEvent",
    "Thresholds",
    "Trace",
    "detect_arrays",
    "detect_trace",
    "ramp_levels",
    "read_bdf",
]
