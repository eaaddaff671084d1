"""A cell that is just a resistor and an open-circuit voltage: exact expected values.

Driver tests need a device whose answers they can predict to the last digit; this is it
(a legitimate fixture, not the cell model). With ``capacitance`` its open-circuit voltage
follows the charge passed (``ocv − q/C``), so a NORMal output-off that sources 0 V visibly
discharges it; a hard short turns it into ``short_resistance`` at 0 V, a soft short lowers
its resistance for a while.

It keeps the :class:`~firmware_sim.physics.CellPhysics` convention: + current plates the
working electrode, the voltage is V(WE) − V(CE), so V = OCV − I·R. Through a 2450 wired with
the working electrode on HI (the rig's default) the SMU sees the familiar V = OCV + I·R.
"""

from __future__ import annotations


class OhmicCell:
    """Implements :class:`firmware_sim.physics.CellPhysics`: V = OCV − I·R."""

    def __init__(
        self,
        resistance: float = 100.0,
        ocv: float = 0.0,
        *,
        capacitance: float | None = None,
        short_resistance: float = 0.05,
        soft_factor: float = 0.3,
        soft_duration: float = 20.0,
    ) -> None:
        if resistance <= 0 or short_resistance <= 0:
            raise ValueError("resistances must be positive")
        if capacitance is not None and capacitance <= 0:
            raise ValueError("capacitance must be positive")
        self.resistance = resistance
        self.ocv = ocv
        self.capacitance = capacitance
        self.short_resistance = short_resistance
        self.soft_factor = soft_factor
        self.soft_duration = soft_duration
        self.charge = 0.0  # C passed since the start (+ = into the working electrode)
        self._hard = False
        self._soft_left = 0.0

    @property
    def hard_shorted(self) -> bool:
        return self._hard

    @property
    def effective_resistance(self) -> float:
        if self._hard:
            return self.short_resistance
        if self._soft_left > 0:
            return self.resistance * self.soft_factor
        return self.resistance

    def open_circuit_voltage(self, temperature: float) -> float:
        if self._hard:
            return 0.0
        if self.capacitance is None:
            return self.ocv
        return self.ocv - self.charge / self.capacitance

    def voltage(self, current: float, temperature: float) -> float:
        return self.open_circuit_voltage(temperature) - current * self.effective_resistance

    def current_for(self, voltage: float, temperature: float) -> float:
        return (self.open_circuit_voltage(temperature) - voltage) / self.effective_resistance

    def advance(self, dt: float, current: float, temperature: float) -> None:
        self.charge += current * dt
        if self._soft_left > 0:
            self._soft_left = max(0.0, self._soft_left - dt)

    def inject_short(self, kind: str) -> None:
        if kind == "hard":
            self._hard = True
        elif kind == "soft":
            self._soft_left = self.soft_duration
        else:
            raise ValueError(f"short kind must be 'soft' or 'hard', not {kind!r}")
