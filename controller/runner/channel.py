"""The cell's source-measure channel: the project's sign convention on top of an SMU.

The protocol speaks of the *cell*: positive current plates lithium on the working
electrode, the voltage is V(WE) − V(CE). The SMU speaks of its terminals: current out of
HI, V(HI) − V(LO). Which terminal the working electrode is wired to is a rig setting
(``smu.working_electrode``), and this is the one place that applies it.

Commands are idempotent and minimal: the source is reconfigured only when its function,
range or compliance changes (a reconfiguration switches the output off first, so within a
current step a rest is a level of 0 A with the output on, never a reconfiguration).
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.base import Measurement, SourceFunction, SourceMeter

OFF = "off"
CURRENT = "current"
VOLTAGE = "voltage"


@dataclass(frozen=True, slots=True)
class Source:
    """What a step asks of the channel. ``level`` in the cell's convention (A or V);
    ``range`` is the largest level the step will ask for (the SMU's fixed source range);
    ``limit`` the compliance (V for a current source, A for a voltage source)."""

    mode: str  # current | voltage | off
    level: float = 0.0
    range: float = 0.0
    limit: float = 0.0


SOURCE_OFF = Source(OFF)


class CellChannel:
    """One SMU channel wired to the cell. ``sign`` maps cell current to SMU current."""

    def __init__(
        self, smu: SourceMeter, *, working_electrode: str, nplc: float, remote_sense: bool
    ) -> None:
        self.smu = smu
        # WE on HI: current out of HI strips the WE, and V(HI)-V(LO) is V(WE)-V(CE)
        self.current_sign = -1.0 if working_electrode.lower() == "hi" else 1.0
        self.voltage_sign = 1.0 if working_electrode.lower() == "hi" else -1.0
        self.nplc = nplc
        self.remote_sense = remote_sense
        self.mode = OFF  # what the SMU is doing now
        self.level: float | None = None  # commanded level, cell convention
        self._setup: tuple[str, float, float] | None = None  # (function, range, limit)
        self._on = False

    async def apply(self, source: Source) -> None:
        """Bring the SMU to ``source`` with as few commands as possible."""
        if source.mode == OFF:
            await self.off()
            return
        function = SourceFunction.CURRENT if source.mode == CURRENT else SourceFunction.VOLTAGE
        setup = (source.mode, source.range, source.limit)
        if setup != self._setup:
            self._on = False
            self._setup = None
            await self.smu.configure(
                function,
                compliance=source.limit,
                source_range=source.range,
                nplc=self.nplc,
                remote_sense=self.remote_sense,
            )
            self._setup = setup
            self.level = None
        if source.level != self.level:
            sign = self.current_sign if source.mode == CURRENT else self.voltage_sign
            await self.smu.set_level(sign * source.level)
            self.level = source.level
        if not self._on:
            await self.smu.output_on()
            self._on = True
        self.mode = source.mode

    async def off(self) -> None:
        """Output off in high impedance (the relay opens; the cell is not discharged)."""
        self.mode = OFF
        self._on = False
        self.level = None
        await self.smu.output_off()

    def forget(self) -> None:
        """The safe state switched the output off behind our back: the next apply starts
        from scratch."""
        self.mode = OFF
        self._on = False
        self.level = None
        self._setup = None

    async def read(self) -> tuple[float, float]:
        """(voltage, current) of the cell, in the cell's convention."""
        m: Measurement = await self.smu.read()
        return self.voltage_sign * m.voltage, self.current_sign * m.current
