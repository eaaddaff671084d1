"""Is the system clock synchronised? The kernel says so (``adjtimex``), or systemd does.

A Raspberry Pi has no battery-backed clock: after a power cut it boots with the time
``fake-hwclock``/``systemd-timesyncd`` saved before the cut, until NTP corrects it. Unix
timestamps in the journal and the length of an outage (the resume policy's ``max_gap``)
are only right once the clock is synchronised.

First choice: ``adjtimex(2)`` with ``modes = 0`` (read only, no privilege needed) through
ctypes — what ``timedatectl``'s ``NTPSynchronized`` itself reads: the call returns
``TIME_ERROR`` (5) while the kernel's ``STA_UNSYNC`` flag is set, i.e. until an NTP client
(timesyncd, chrony, ntpd) has disciplined the clock. Fallback (no libc symbol, seccomp):
``timedatectl show -p NTPSynchronized --value``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

TIME_ERROR = 5
STA_UNSYNC = 0x0040


@dataclass(frozen=True)
class ClockState:
    synchronised: bool | None  # None: could not tell
    source: str  # "adjtimex", "timedatectl" or what failed
    max_error: float | None = None  # s, the kernel's maximum error estimate
    detail: str = ""


#: what the doctor and the service call; tests inject their own
ClockReader = Callable[[], ClockState]


class _Timex(ctypes.Structure):
    # The leading fields of ``struct timex``; their layout is the same on 32- and 64-bit
    # ABIs (and with a 64-bit time_t): everything after ``status`` is left to the padding.
    _fields_ = (
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
    )


def read_adjtimex() -> ClockState:
    """The kernel's view, via ``adjtimex(2)``; raises OSError if it cannot be asked."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    adjtimex = libc.adjtimex
    buffer = ctypes.create_string_buffer(1024)  # ≥ sizeof(struct timex) on every ABI
    state = adjtimex(buffer)
    if state < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"adjtimex failed (errno {errno})")
    timex = _Timex.from_buffer(buffer)
    unsynced = state == TIME_ERROR or bool(timex.status & STA_UNSYNC)
    return ClockState(
        synchronised=not unsynced,
        source="adjtimex",
        max_error=timex.maxerror / 1e6,
        detail=f"kernel clock state {state}, status 0x{timex.status:04x}",
    )


def read_timedatectl() -> ClockState:
    """systemd's view (``NTPSynchronized``), for hosts where adjtimex is not reachable."""
    exe = shutil.which("timedatectl")
    if exe is None:
        raise OSError("timedatectl is not installed")
    done = subprocess.run(
        [exe, "show", "-p", "NTPSynchronized", "--value"],
        capture_output=True,
        text=True,
        timeout=5,
        check=False,
    )
    value = done.stdout.strip()
    if done.returncode != 0 or value not in ("yes", "no"):
        raise OSError(done.stderr.strip() or f"timedatectl answered {value!r}")
    return ClockState(value == "yes", "timedatectl", detail=f"NTPSynchronized={value}")


def read_clock() -> ClockState:
    """adjtimex first, timedatectl as the fallback; ``synchronised=None`` if neither works."""
    failures = []
    for reader in (read_adjtimex, read_timedatectl):
        try:
            return reader()
        except (OSError, AttributeError, subprocess.SubprocessError) as exc:
            failures.append(f"{reader.__name__[5:]}: {exc}")
    return ClockState(None, "none", detail="; ".join(failures))
