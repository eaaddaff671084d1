"""Parameter sets of the simulated electrolytes (LiBH4, LLZO, Li3PS4).

Every temperature-dependent quantity is an :class:`Arrhenius` law anchored at a temperature
where the seeds (or the common literature) give a number, so that a reader can check each
value against its source. Activation energies are in kJ/mol (0.53 eV = 51 kJ/mol).

Sources: seeds/000 (LiBH4 heat therapy, CCD 2.6/3.6/4.0 mA/cm² at 125/140/160 °C, the
orthorhombic→hexagonal transition and ~1e-3 S/cm), seeds/001 (one-way plating: CCD 50 µA/cm²
LLZO and 120 µA/cm² Li3PS4 at 25 °C; −4 V then −7 V from contact loss at 100 °C; electronic
conductivities 5.5e-8 and 2.2e-9 S/cm at 30 °C), seeds/004 (~50 mV at 0.1 mA/cm² on LLZO).
The filament, healing and soft-short numbers are calibrated by ``firmware_sim.cell_calibration``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

R_GAS = 8.314462618  # J/(mol K)
FARADAY = 96485.33212  # C/mol
KELVIN = 273.15
MAH = 3.6  # 1 mAh in C


class UnknownElectrolyte(ValueError):
    """The simulated rig has no parameter set for this electrolyte."""


@dataclass(frozen=True, slots=True)
class Arrhenius:
    """``value`` at ``at_c`` (degC), scaled by exp(-Ea/R (1/T - 1/T_at)); Ea in kJ/mol."""

    value: float
    at_c: float
    ea_kj: float

    def __call__(self, temperature_c: float) -> float:
        inv = 1.0 / (temperature_c + KELVIN) - 1.0 / (self.at_c + KELVIN)
        return self.value * math.exp(-self.ea_kj * 1e3 / R_GAS * inv)


@dataclass(frozen=True, slots=True)
class PhaseTransition:
    """A low-temperature phase that gives way to the conductive one over a few kelvin.

    LiBH4 is orthorhombic below ~110 °C and hexagonal above ~118 °C; the log-conductivity is
    mixed with a logistic phase fraction centred on ``midpoint_c`` (no hysteresis)."""

    low_phase_sigma: Arrhenius  # S/cm
    midpoint_c: float
    width_k: float

    def high_fraction(self, temperature_c: float) -> float:
        z = (temperature_c - self.midpoint_c) / self.width_k
        if z > 40.0:
            return 1.0
        if z < -40.0:
            return 0.0
        return 1.0 / (1.0 + math.exp(-z))


@dataclass(frozen=True, slots=True)
class Electrolyte:
    """Everything the cell model needs to know about one solid electrolyte."""

    name: str
    # --- ion transport
    sigma: Arrhenius  # S/cm, the (high-temperature phase's) ionic conductivity
    transition: PhaseTransition | None
    interface_conductance: Arrhenius  # S/cm², one Li|SE interface (1/ASR: contact, interphase)
    exchange_current: Arrhenius  # A/cm², Butler-Volmer j0 of one Li|SE interface
    sigma_electronic: Arrhenius  # S/cm, electronic leakage (seeds/001 DC polarization)
    chemical_diffusivity: Arrhenius  # cm²/s, sets the ion-blocking polarisation time
    asr_blocking: float  # ohm cm², one ion-blocking (Cu/Au) electrode's contact
    # --- filaments (seeds/000: growth above a threshold vs self-healing)
    threshold_kinetic: Arrhenius  # A/cm², thermally activated part of the threshold
    threshold_ceiling: float  # A/cm², the threshold can never exceed this (mechanical limit)
    growth_rate: float  # 1/s, relative growth rate at the threshold
    growth_steepness: float  # e-folds of growth rate per unit of j_local/j_threshold
    growth_rate_max: float  # 1/s, the runaway's speed (the last stage takes seconds)
    focusing: float  # tip field enhancement: E(f) = 1 + focusing * f / (1 - f)
    reach_initial: float  # filament reach of an as-assembled cell (fraction of thickness)
    reach_nucleus: float  # grain-boundary nuclei that healing never removes
    healing: Arrhenius  # 1/s, first-order self-healing rate
    spread: float  # log-normal cell-to-cell spread of the initial reach and nuclei
    # --- soft shorts
    soft_rate_max: float  # 1/s, hazard of a soft short when the filament touches (reach 1)
    soft_power: float  # hazard ∝ reach**soft_power: frequent only near the counter electrode
    # --- contact loss under one-way stripping (seeds/001)
    creep: Arrhenius  # A/cm², stripping rate that lithium creep replenishes
    void_scale: float  # C/cm², void charge that halves the contact twice: a = 1/(1+v/v0)²
    plateau1_v: float  # V, onset of the first parasitic oxidation at a lost contact
    plateau1_rate: float  # A/cm², its rate capability when fresh
    plateau1_charge: float  # C/cm², its inventory (consumed → the second plateau)
    plateau2_v: float  # V, second oxidation, unlimited (Tafel)
    # --- anode-free (Cu working electrode)
    copper_ocv: float = 2.9  # V, bare Cu vs Li
    copper_oxidation_v: float = 3.6  # V, Cu oxidation when no lithium is left to strip

    def ionic_conductivity(self, temperature_c: float) -> float:
        high = self.sigma(temperature_c)
        if self.transition is None:
            return high
        x = self.transition.high_fraction(temperature_c)
        if x >= 1.0:
            return high
        low = self.transition.low_phase_sigma(temperature_c)
        return math.exp(x * math.log(high) + (1.0 - x) * math.log(low))

    def threshold(self, temperature_c: float) -> float:
        """Local current density above which filaments grow fast (A/cm²): a thermally
        activated limit in series with a temperature-independent ceiling."""
        kinetic = self.threshold_kinetic(temperature_c)
        return 1.0 / (1.0 / kinetic + 1.0 / self.threshold_ceiling)


LIBH4 = Electrolyte(
    name="LiBH4",
    # hexagonal P63mc: ~1e-3 S/cm just above the transition (seeds/000), Ea 0.53 eV
    sigma=Arrhenius(1.0e-3, 118.0, 51.0),
    # orthorhombic: ~1e-8 S/cm at room temperature, Ea 0.69 eV; transition 110-118 °C
    transition=PhaseTransition(Arrhenius(1.0e-8, 25.0, 67.0), 114.0, 1.3),
    interface_conductance=Arrhenius(1 / 15.0, 125.0, 58.0),
    exchange_current=Arrhenius(2.0e-3, 125.0, 48.0),
    sigma_electronic=Arrhenius(1.0e-10, 30.0, 40.0),
    chemical_diffusivity=Arrhenius(5.0e-7, 125.0, 51.0),
    asr_blocking=200.0,
    threshold_kinetic=Arrhenius(7.77e-3, 125.0, 124.0),
    threshold_ceiling=3.58e-3,
    growth_rate=1.37 / 3600,
    growth_steepness=16.0,
    growth_rate_max=0.1,
    focusing=0.1,
    reach_initial=0.03,
    reach_nucleus=3.0e-5,
    healing=Arrhenius(0.86 / 3600, 160.0, 150.0),
    spread=0.10,
    soft_rate_max=100.0 / 3600,
    soft_power=4.4,
    creep=Arrhenius(8.0e-3, 125.0, 48.0),
    void_scale=0.3 * MAH,
    plateau1_v=3.95,
    plateau1_rate=2.0e-3,
    plateau1_charge=2.0 * MAH,
    plateau2_v=6.95,
)

LLZO = Electrolyte(
    name="LLZO",
    sigma=Arrhenius(3.0e-4, 25.0, 39.0),
    transition=None,
    interface_conductance=Arrhenius(1 / 100.0, 25.0, 30.0),
    exchange_current=Arrhenius(0.2e-3, 25.0, 48.0),
    # seeds/001: 5.5e-8 S/cm at 30 °C, rising with temperature
    sigma_electronic=Arrhenius(5.5e-8, 30.0, 43.0),
    chemical_diffusivity=Arrhenius(5.0e-7, 25.0, 39.0),
    asr_blocking=300.0,
    threshold_kinetic=Arrhenius(45.0e-6, 25.0, 42.0),
    threshold_ceiling=10.0e-3,
    growth_rate=3.0 / 3600,
    growth_steepness=16.0,
    growth_rate_max=0.1,
    focusing=0.1,
    reach_initial=0.03,
    reach_nucleus=1.0e-5,
    healing=Arrhenius(1.0 / 3600, 160.0, 150.0),
    spread=0.12,
    soft_rate_max=100.0 / 3600,
    soft_power=4.4,
    creep=Arrhenius(0.25e-3, 100.0, 48.0),
    void_scale=0.1 * MAH,
    plateau1_v=3.95,
    plateau1_rate=1.5e-3,
    plateau1_charge=1.0 * MAH,
    plateau2_v=6.95,
)

LPS = Electrolyte(
    name="Li3PS4",
    sigma=Arrhenius(2.0e-4, 25.0, 34.0),
    transition=None,
    interface_conductance=Arrhenius(1 / 20.0, 25.0, 40.0),
    exchange_current=Arrhenius(0.5e-3, 25.0, 45.0),
    # seeds/001: 2.2e-9 S/cm at 30 °C
    sigma_electronic=Arrhenius(2.2e-9, 30.0, 45.0),
    chemical_diffusivity=Arrhenius(5.0e-7, 25.0, 34.0),
    asr_blocking=300.0,
    threshold_kinetic=Arrhenius(105.0e-6, 25.0, 40.0),
    threshold_ceiling=10.0e-3,
    growth_rate=3.0 / 3600,
    growth_steepness=16.0,
    growth_rate_max=0.1,
    focusing=0.1,
    reach_initial=0.03,
    reach_nucleus=1.0e-5,
    healing=Arrhenius(1.0 / 3600, 160.0, 150.0),
    spread=0.12,
    soft_rate_max=100.0 / 3600,
    soft_power=4.4,
    creep=Arrhenius(0.4e-3, 100.0, 48.0),
    void_scale=0.3 * MAH,
    # seeds/001: Li/Li3PS4/Pt at 100 °C and 2 mA/cm² reached -7 V within 1.2 mAh/cm²
    plateau1_v=3.95,
    plateau1_rate=1.5e-3,
    plateau1_charge=0.5 * MAH,
    plateau2_v=6.95,
)

ELECTROLYTES: dict[str, Electrolyte] = {e.name: e for e in (LIBH4, LLZO, LPS)}
ALIASES: dict[str, str] = {
    "libh4": "LiBH4",
    "llzo": "LLZO",
    "llzno": "LLZO",
    "llzto": "LLZO",
    "li7la3zr2o12": "LLZO",
    "li3ps4": "Li3PS4",
    "lps": "Li3PS4",
}


def electrolyte(name: str) -> Electrolyte:
    """The parameter set for ``name`` (case-insensitive; LPS = Li3PS4, LLZNO = LLZO)."""
    key = ALIASES.get(name.strip().lower())
    if key is None:
        known = ", ".join(ELECTROLYTES)
        raise UnknownElectrolyte(
            f"the simulated rig has no model of electrolyte {name!r}; it knows {known} "
            "(aliases: LPS = Li3PS4; LLZNO, LLZTO = LLZO)"
        )
    return ELECTROLYTES[key]
