"""Temperature control and its safety: what the runner uses (see ARCHITECTURE.md,
"Temperature control & safety").

- :class:`ThermalLoop` — the 1 s heater task: ``set_target``, ``off``, ``soak``,
  ``in_band``, ``temperature``/``setpoint``/``target``/``duty``/``mode``;
- :class:`SafetySupervisor` — the checks of DESIGN.md's safety table, latched trips;
- :class:`HeaterControl` — the control law itself (PI on simple-pid, ramps, feedforward);
- :func:`controller.thermal.autotune.autotune` — the relay experiment behind
  ``heatcycler autotune``.

The safe-state action lives in :mod:`controller.safe_state` (every exit path uses it).
"""

from controller.thermal.control import HeaterControl, Mode
from controller.thermal.loop import SetpointRefused, ThermalLoop
from controller.thermal.soak import Soak
from controller.thermal.supervisor import SafetySupervisor, Trip

__all__ = [
    "HeaterControl",
    "Mode",
    "SafetySupervisor",
    "SetpointRefused",
    "Soak",
    "ThermalLoop",
    "Trip",
]
