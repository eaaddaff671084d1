"""The contract between the cell physics and the instrument emulators.

The SMU emulator owns what an instrument adds (source/limit logic, range, noise,
quantisation); the cell owns what the cell does (resistances, overpotentials, filaments,
shorts, polarisation). Both are advanced lazily to the rig's clock at each query.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class CellSpec:
    """What the rig knows about the cell on the bench (from the protocol's ``cell``)."""

    electrolyte: str = "LiBH4"  # LiBH4, LLZO, Li3PS4 (LPS), …
    type: str = "symmetric"  # symmetric (Li|SE|Li) | anode_free (Cu|SE|Li) | blocking
    area_cm2: float = 0.785
    thickness_cm: float = 0.1


class CellPhysics(Protocol):
    """A cell's state and its terminal behaviour. Sign: + current plates the working
    electrode; the terminal voltage is that of the working electrode vs the counter."""

    def advance(self, dt: float, current: float, temperature: float) -> None:
        """Integrate the state over ``dt`` s at constant ``current`` (A) and ``temperature``
        (degC): filament growth/healing, contact loss, short onset."""

    def voltage(self, current: float, temperature: float) -> float:
        """Terminal voltage (V) at ``current`` now, noise-free."""

    def current_for(self, voltage: float, temperature: float) -> float:
        """The current (A) at which the terminal voltage is ``voltage`` (potentiostat)."""

    def open_circuit_voltage(self, temperature: float) -> float:
        """Voltage at zero current (≈ 0 V for Li|SE|Li)."""

    def inject_short(self, kind: str) -> None:
        """Fault injection: ``"soft"`` starts a soft-short episode, ``"hard"`` shorts now."""

    @property
    def hard_shorted(self) -> bool: ...
