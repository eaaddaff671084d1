"""Cell physics of the software rig: Li|SE|Li, Cu|SE|Li and ion-blocking cells.

Sign convention (``physics.CellPhysics``): a positive current plates lithium on the working
electrode (WE) and the voltage is WE minus counter electrode (CE). Plating drives the WE
negative, so in this convention even a plain resistor obeys V = -I·R (seeds/001 plots the
plating voltage of Li/LLZO/Cu going to -4 V).

Terminal model. The ionic path has an open-circuit voltage and a polarisation Ψ(|j|):
V_ion = OCV - sign(j)·Ψ, Ψ = |j|·(L/σ(T)) + plating overpotential + stripping overpotential.
Each Li|SE interface has an Arrhenius resistance and a Butler-Volmer charge transfer,
η = ASR·j + (2RT/F)·asinh(j/2j0). A shunt (electronic leakage σ_e·A/L, a soft-short
filament or the hard short) is in parallel: I = I_ion - G·V.

State. ``reach`` f (0..1) is the leading filament's penetration of the electrolyte. It
grows at a rate f·a·g(x), x = |j|·E(f)/j_th(T), g = g0·exp(n(x-1)) saturating at g_max,
E(f) = 1 + β·f/(1-f) the tip field enhancement; it heals as k_h(T)·(f - f_n) (Arrhenius,
steep). f = 1 is the hard short. Soft shorts are a Poisson process with hazard
λ_max·f^p while current flows: a filament tip touches the CE and burns off, a shunt that
decays over seconds. Stripping faster than lithium creep replenishes the interface leaves
voids (charge v, contact a = 1/(1+v/v0)²); when the contact is gone the current flows
into parasitic oxidation: a first plateau near 3.9 V with a finite inventory, then a
second near 6.9 V (seeds/001: -4 V, then -7 V, without a short - the filament cannot
bridge to a CE it has lost contact with). Blocking cells store an ionic polarisation
(R_ion in series with C = τ/R_ion, τ = L²/(π²D̃)) in parallel with the electronic path,
so a DC polarization decays to σ_e·V·A/L.

``advance`` integrates over any dt: exact for the linear parts (healing at rest, voids, the
blocking RC), an exponential integrator with a predictor-corrector and adaptive sub-steps
for the filament. Random numbers (numpy ``Generator``, seeded) are drawn only for the
cell-to-cell spread at construction and for soft shorts; soft-short times come from the
integrated hazard, so they do not depend on how the time is cut into calls.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from firmware_sim.cell_params import FARADAY, KELVIN, R_GAS, Arrhenius, Electrolyte, electrolyte
from firmware_sim.physics import CellPhysics, CellSpec

CELL_TYPES = ("symmetric", "anode_free", "blocking")
SHORT_KINDS = ("soft", "hard")

WE, CE = 0, 1
_STEP_GROWTH = 0.01  # largest change of ln(reach) per sub-step
_SOFT_DEPTH = (0.3, 0.8)  # fraction of the voltage lost at a soft short's onset
_SOFT_TAU_MEDIAN = 4.0  # s, recovery time constant of a soft short
_PLATEAU_WIDTH = 0.05  # V, logistic width of the first oxidation plateau's onset
_TAFEL_REF = 1.0e-3  # A/cm² carried by a Tafel branch at its onset
_TAFEL_SLOPE = 0.08  # V per e-fold
_COPPER_COVER = 5.0e-3  # C/cm² of lithium that covers the copper (OCV → 0)
#: below this G·R (shunt conductance × small-signal resistance) the terminal voltage is
#: found by fixed-point steps; above it (soft and hard shorts) by a bracketing solve
_FIXED_POINT_COUPLING = 1e-3


class CellError(ValueError):
    """A cell that cannot be built, or a request it cannot honour."""


@dataclass(frozen=True, slots=True)
class CellEvent:
    """Something the cell did, on its own clock (the sum of ``advance`` steps, s)."""

    time: float
    kind: str  # "soft_short" | "hard_short"
    reach: float
    depth: float = 0.0  # soft: fraction of the voltage lost at the onset
    tau: float = 0.0  # soft: recovery time constant, s


#: groups of the temperature-dependent quantities, worked out on demand (``Cell._rates``)
_CORE = 1  # asr_int, j0, bv: both interfaces (the voltage and the sub-step need them)
_TRANSPORT = 2  # asr_bulk, g_electronic: the terminal voltage
_KINETICS = 4  # threshold, healing, creep: the filament and the voids
_BLOCKING = 8  # r_blocking, c_blocking: ion-blocking cells
_ALL = _CORE | _TRANSPORT | _KINETICS | _BLOCKING


class _Rates:
    """Temperature-dependent quantities, recomputed only when the temperature changes.

    Filled by groups (``groups``, the ``_CORE``… bits): a polled rig asks for the
    kinetics at the mean temperature of each step and for the transport at the present
    one, and each group costs several exponentials. A quantity not worked out yet is an
    unset slot, so reading it raises AttributeError rather than giving a wrong number;
    ``Cell._rates(T)`` (all groups) is what anything outside the hot paths uses."""

    __slots__ = (
        "asr_bulk",  # ohm cm²
        "asr_int",  # ohm cm², one interface
        "bv",  # V, 2RT/F
        "c_blocking",  # F
        "creep",  # A/cm²
        "g_electronic",  # S, whole cell
        "groups",
        "healing",  # 1/s
        "j0",  # A/cm²
        "r_blocking",  # ohm, ionic path of a blocking cell
        "temperature",
        "threshold",  # A/cm²
    )

    asr_bulk: float
    asr_int: float
    bv: float
    c_blocking: float
    creep: float
    g_electronic: float
    groups: int
    healing: float
    j0: float
    r_blocking: float
    temperature: float
    threshold: float

    def __init__(self, temperature: float) -> None:
        self.temperature = temperature
        self.groups = 0


def _law(law: Arrhenius) -> tuple[float, float, float]:
    """(value, 1/T_at, -Ea/R): ``Arrhenius.__call__`` with its constants folded, giving the
    same floating-point result bit for bit (same operations in the same order)."""
    return law.value, 1.0 / (law.at_c + KELVIN), -law.ea_kj * 1e3 / R_GAS


@dataclass(slots=True)
class _SoftShort:
    start: float
    conductance: float  # S at the onset
    tau: float  # s


def _asinh(x: float) -> float:
    return math.asinh(x)


def _solve_increasing(
    func: Callable[[float], float], lo: float, hi: float, tol: float, max_iter: int = 200
) -> float:
    """Root of an increasing function on [lo, hi] (func(lo) <= 0 <= func(hi)): Illinois."""
    f_lo, f_hi = func(lo), func(hi)
    if f_lo >= 0.0:
        return lo
    if f_hi <= 0.0:
        return hi
    side = 0
    x = lo
    for _ in range(max_iter):
        x = (lo * f_hi - hi * f_lo) / (f_hi - f_lo)
        if not lo < x < hi:
            x = 0.5 * (lo + hi)
        fx = func(x)
        if fx == 0.0 or hi - lo <= tol:
            return x
        if fx < 0.0:
            lo, f_lo = x, fx
            if side == -1:
                f_hi *= 0.5
            side = -1
        else:
            hi, f_hi = x, fx
            if side == 1:
                f_lo *= 0.5
            side = 1
    return x


class Cell:
    """One simulated cell; implements :class:`firmware_sim.physics.CellPhysics`."""

    # Slots: attribute access is the cell's hottest operation, and an instance with more
    # than 30 attributes in a __dict__ loses CPython's fast path for reading them.
    __slots__ = (
        "_advance_groups",
        "_anode_free",
        "_area",
        "_blocking",
        "_hard",
        "_hazard",
        "_hazard_next",
        "_last_current",
        "_law_low",
        "_laws",
        "_length",
        "_length_sq",
        "_nucleus",
        "_oxidisable",
        "_quiet1",
        "_quiet2",
        "_rates_cache",
        "_rng",
        "_sigma_factor",
        "_soft",
        "_symmetric",
        "_threshold_factor",
        "_transition",
        "_v_memo",
        "_voids",
        "_voltage_groups",
        "events",
        "hard_short_resistance",
        "lithium_on_copper",
        "params",
        "polarisation",
        "reach",
        "seed",
        "spec",
        "time",
    )

    def __init__(self, spec: CellSpec, seed: int = 0, params: Electrolyte | None = None) -> None:
        if spec.type not in CELL_TYPES:
            raise CellError(
                f"unknown cell type {spec.type!r}; the simulated rig knows " + ", ".join(CELL_TYPES)
            )
        if not (spec.area_cm2 > 0 and math.isfinite(spec.area_cm2)):
            raise CellError(f"cell area must be positive, not {spec.area_cm2!r} cm^2")
        if not (spec.thickness_cm > 0 and math.isfinite(spec.thickness_cm)):
            raise CellError(f"cell thickness must be positive, not {spec.thickness_cm!r} cm")
        self.spec = spec
        self.params: Electrolyte = params if params is not None else electrolyte(spec.electrolyte)
        self.seed = seed
        variation, events = np.random.SeedSequence(seed).spawn(2)
        vary = np.random.default_rng(variation)
        self._rng = np.random.default_rng(events)
        p = self.params
        # cell-to-cell spread: one draw each, always in this order
        defects = math.exp(p.spread * float(vary.standard_normal()))
        self._sigma_factor = math.exp(0.05 * float(vary.standard_normal()))
        self._threshold_factor = 1.0 + 0.005 * float(vary.standard_normal())
        self.hard_short_resistance = float(vary.uniform(0.1, 0.4))  # ohm, the bridged filament
        self._nucleus = p.reach_nucleus * defects
        self._area = spec.area_cm2
        self._length = spec.thickness_cm
        self._blocking = spec.type == "blocking"
        self._anode_free = spec.type == "anode_free"
        # state
        self.time = 0.0
        self.reach = 0.0 if self._blocking else p.reach_initial * defects
        self._voids = [0.0, 0.0]  # C/cm², at WE and CE (lithium electrodes only)
        self._oxidisable = [p.plateau1_charge, p.plateau1_charge]  # C/cm², plateau-1 inventory
        self.lithium_on_copper = 0.0  # C/cm², anode-free WE
        self.polarisation = 0.0  # V, blocking cells' stored ionic polarisation
        self._hard = False
        self._soft: _SoftShort | None = None
        self._hazard = 0.0
        self._hazard_next = float(self._rng.exponential())
        self._last_current = 0.0
        self.events: list[CellEvent] = []
        self._rates_cache: _Rates | None = None
        # the temperature laws with their constants folded (``_rates``), and the constants
        # of the hot paths, looked up once
        self._laws = tuple(
            _law(law)
            for law in (
                p.sigma,
                p.interface_conductance,
                p.exchange_current,
                p.sigma_electronic,
                p.chemical_diffusivity,
                p.threshold_kinetic,
                p.healing,
                p.creep,
            )
        )
        self._transition = p.transition
        self._law_low = _law(p.transition.low_phase_sigma) if p.transition else None
        self._length_sq = self._length**2
        self._quiet1 = p.plateau1_v - 14 * _PLATEAU_WIDTH
        self._quiet2 = p.plateau2_v - 14 * _TAFEL_SLOPE
        self._symmetric = not (self._blocking or self._anode_free)
        # what advance() and voltage() need of the temperature-dependent quantities (the
        # other cell types take them all: their paths are not specialised)
        self._advance_groups = _CORE | _KINETICS if self._symmetric else _ALL
        self._voltage_groups = _CORE | _TRANSPORT if self._symmetric else _ALL
        # The last voltage() answer: (current, temperature, voltage, rates). A pure function
        # of the state, which only advance() and inject_short() change (they clear it), so
        # asking again at the same point costs nothing: a galvanostat's operating point is
        # asked for at each reading and again at the next physics step.
        self._v_memo: tuple[float, float, float, _Rates] | None = None

    # ------------------------------------------------------------------ properties

    @property
    def hard_shorted(self) -> bool:
        return self._hard

    @property
    def soft_short_active(self) -> bool:
        return self._soft_conductance() > 0.0

    def contact(self, electrode: int) -> float:
        """Fraction of the electrode still in contact with the electrolyte (1 = intact)."""
        if not self._is_lithium(electrode):
            return 1.0
        v = self._voids[electrode] / self.params.void_scale
        return 1.0 / ((1.0 + v) * (1.0 + v))

    def conductivity(self, temperature: float) -> float:
        """Ionic conductivity of this cell's electrolyte, S/cm."""
        return self.params.ionic_conductivity(temperature) * self._sigma_factor

    def threshold(self, temperature: float) -> float:
        """Local current density above which filaments grow fast, A/cm²."""
        return self._rates(temperature).threshold

    # ------------------------------------------------------------------ the protocol

    def advance(self, dt: float, current: float, temperature: float) -> None:
        if not (math.isfinite(dt) and math.isfinite(current) and math.isfinite(temperature)):
            raise CellError(f"advance needs finite numbers, got {dt=}, {current=}, {temperature=}")
        if dt < 0:
            raise CellError(f"time runs forward: dt={dt} s")
        self._last_current = current
        if dt == 0:
            return
        self._v_memo = None
        end = self.time + dt
        if self._hard:
            self.time = end
            return
        rates = self._rates(temperature, self._advance_groups)
        j = current / self._area
        remaining = dt
        substep = self._substep_symmetric if self._symmetric else self._substep
        while remaining > 0.0 and not self._hard:
            used = substep(remaining, j, rates)
            remaining -= used
            self.time += used
        self.time = end

    def voltage(self, current: float, temperature: float) -> float:
        memo = self._v_memo
        if memo is not None and memo[0] == current and memo[1] == temperature:
            self._rates_cache = memo[3]  # as if computed again: the same rates object
            return memo[2]
        v = self._voltage(current, temperature)
        rates = self._rates_cache
        assert rates is not None
        self._v_memo = (current, temperature, v, rates)
        return v

    def _voltage(self, current: float, temperature: float) -> float:
        symmetric = self._symmetric
        rates = self._rates(temperature, self._voltage_groups)
        if symmetric and self._soft is None and not self._hard:
            # _shunt() and _small_signal_resistance(rates) of an unshorted Li|SE|Li cell
            shunt = rates.g_electronic + 0.0
            resistance = (rates.asr_bulk + 2 * rates.asr_int + rates.bv / rates.j0) / self._area
            coupling = shunt * resistance
        else:
            shunt = self._shunt()
            coupling = shunt * self._small_signal_resistance(rates)
        if symmetric and coupling < _FIXED_POINT_COUPLING and current != 0.0:
            v = self._voltage_symmetric(current, rates, shunt, coupling)
            if v is not None:
                return v
        ionic = self._ionic_function(rates)
        v0 = ionic(current)
        if coupling < 1e-6:
            return ionic(current + shunt * v0) if shunt > 0.0 else v0
        if coupling < _FIXED_POINT_COUPLING:
            # A weak shunt (the electronic leakage, ~1e-5 of the ionic path at 125 °C):
            # V = V_ion(I + G·V) contracts by q ≈ G·R per step, so two or three steps reach
            # the root. The error left after a step is ≈ q/(1 - q) times that step's change,
            # with q measured from the last two changes; done when it is below 1e-13 V
            # (the bracketing solve below stops at a 1e-12 V bracket).
            v, last = v0, 0.0
            for _ in range(8):
                nxt = ionic(current + shunt * v)
                change = abs(nxt - v)
                if change == 0.0:
                    return nxt
                if last > 0.0 and change < 0.5 * last:
                    q = change / last
                    if q / (1.0 - q) * change <= 1e-13 * (1.0 + abs(nxt)):
                        return nxt
                v, last = nxt, change
        bound = max(abs(v0), abs(self._ocv())) + 1e-12

        def residual(v: float) -> float:  # increasing in v
            return v - ionic(current + shunt * v)

        return _solve_increasing(residual, -bound, bound, 1e-12 * (1.0 + bound))

    def current_for(self, voltage: float, temperature: float) -> float:
        if not math.isfinite(voltage):
            raise CellError(f"current_for needs a finite voltage, got {voltage!r}")
        rates = self._rates(temperature)
        drive = self._ocv() - voltage  # = sign(j)·Ψ(|j|)
        ionic = 0.0
        if drive != 0.0:
            direction = 1 if drive > 0 else -1
            target = abs(drive)
            if self._blocking:
                jabs = target / (rates.asr_bulk + 2 * self.params.asr_blocking)
            else:
                hi = target / rates.asr_bulk

                def residual(jabs: float) -> float:
                    return self._psi(jabs, direction, rates) - target

                jabs = _solve_increasing(residual, 0.0, hi, 1e-15 + 1e-13 * hi)
            ionic = direction * jabs * self._area
        return ionic - self._shunt() * voltage

    def open_circuit_voltage(self, temperature: float) -> float:
        return self.voltage(0.0, temperature)

    def inject_short(self, kind: str) -> None:
        self._v_memo = None
        if kind == "hard":
            self._short_now()
        elif kind == "soft":
            if not self._hard:
                self._start_soft(self.time)
        else:
            raise CellError(f"unknown short kind {kind!r}; use one of {', '.join(SHORT_KINDS)}")

    # ------------------------------------------------------------------ internals

    def _is_lithium(self, electrode: int) -> bool:
        if self._blocking:
            return False
        return not (self._anode_free and electrode == WE)

    def _rates(self, temperature: float, groups: int = _ALL) -> _Rates:
        """The quantities of ``groups`` (all by default) at ``temperature``, and any
        worked out before at that temperature."""
        cached = self._rates_cache
        if cached is not None and cached.temperature == temperature:
            if groups & ~cached.groups:
                self._fill_rates(cached, groups)
            return cached
        rates = _Rates(temperature)
        self._fill_rates(rates, groups)
        self._rates_cache = rates
        return rates

    def _fill_rates(self, rates: _Rates, groups: int) -> None:
        # Every law is Arrhenius.__call__ inlined with its constants folded, and the
        # conductivity is Electrolyte.ionic_conductivity inlined: the same operations in
        # the same order, so the same bits, at a fraction of the cost.
        missing = groups & ~rates.groups
        if missing & _BLOCKING:
            missing |= _TRANSPORT & ~rates.groups
        temperature = rates.temperature
        exp = math.exp
        inv = 1.0 / (temperature + KELVIN)
        (
            (sv, si, sc),
            (iv, ii, ic),
            (ev, ei, ec),
            (gv, gi, gc),
            (dv, di, dc),
            (tv, ti, tc),
            (hv, hi, hc),
            (cv, ci, cc),
        ) = self._laws
        length, area = self._length, self._area
        if missing & _CORE:
            rates.asr_int = 1.0 / (iv * exp(ic * (inv - ii)))
            rates.j0 = ev * exp(ec * (inv - ei))
            rates.bv = 2 * R_GAS * (temperature + 273.15) / FARADAY
        if missing & _TRANSPORT:
            sigma = sv * exp(sc * (inv - si))
            transition = self._transition
            if transition is not None:
                z = (temperature - transition.midpoint_c) / transition.width_k
                x = 1.0 if z > 40.0 else 0.0 if z < -40.0 else 1.0 / (1.0 + exp(-z))
                if x < 1.0:
                    lv, li, lc = self._law_low  # type: ignore[misc]
                    low = lv * exp(lc * (inv - li))
                    sigma = exp(x * math.log(sigma) + (1.0 - x) * math.log(low))
            rates.asr_bulk = length / (sigma * self._sigma_factor)
            rates.g_electronic = gv * exp(gc * (inv - gi)) * area / length
        if missing & _KINETICS:
            kinetic = tv * exp(tc * (inv - ti))
            ceiling = self.params.threshold_ceiling
            rates.threshold = 1.0 / (1.0 / kinetic + 1.0 / ceiling) * self._threshold_factor
            rates.healing = hv * exp(hc * (inv - hi))
            rates.creep = cv * exp(cc * (inv - ci))
        if missing & _BLOCKING:
            tau = self._length_sq / (math.pi**2 * (dv * exp(dc * (inv - di))))
            r_blocking = (rates.asr_bulk + 2 * self.params.asr_blocking) / area
            rates.r_blocking = r_blocking
            rates.c_blocking = tau / r_blocking
        rates.groups |= missing

    def _ocv(self) -> float:
        if self._blocking:
            return -self.polarisation
        if self._anode_free:
            return self.params.copper_ocv * math.exp(-self.lithium_on_copper / _COPPER_COVER)
        return 0.0

    def _small_signal_resistance(self, rates: _Rates) -> float:
        if self._blocking:
            return rates.r_blocking
        return (rates.asr_bulk + 2 * rates.asr_int + rates.bv / rates.j0) / self._area

    def _voltage_symmetric(
        self, current: float, rates: _Rates, shunt: float, coupling: float
    ) -> float | None:
        """``_voltage`` of a Li|SE|Li cell under a weak shunt, in straight-line code: the
        stripped electrode's contact and inventory worked out once, then the fixed-point
        steps of ``_voltage`` with ``_ionic_voltage`` → ``_psi`` → ``_strip`` inlined (the
        same operations in the same order, so the same bits). None when the stripped
        electrode is near an oxidation plateau or the steps would change direction: then
        ``_voltage`` does it the general way."""
        p = self.params
        direction, stripped = (1, CE) if current > 0 else (-1, WE)
        void = self._voids[stripped] / p.void_scale
        a = 1.0 / ((1.0 + void) * (1.0 + void))
        if not a > 0.0:
            return None
        plateau1_rate = p.plateau1_rate * self._oxidisable[stripped] / p.plateau1_charge
        quiet1 = math.inf if plateau1_rate <= 0.0 else self._quiet1
        quiet2 = self._quiet2
        area, asr_bulk, asr, bv = self._area, rates.asr_bulk, rates.asr_int, rates.bv
        two_j0 = 2 * rates.j0
        asinh = math.asinh
        positive = current > 0
        x = current
        v = last = 0.0
        for step in range(9):
            jabs = abs(x) / area
            y = jabs / a
            full = y * asr + bv * asinh(y / two_j0)
            if not (full < quiet1 and full < quiet2) or jabs == 0.0:
                return None
            nxt = 0.0 - direction * (
                jabs * asr_bulk + (jabs * asr + bv * asinh(jabs / two_j0)) + full
            )
            if step == 0:  # the ionic voltage alone
                if coupling < 1e-6 and not shunt > 0.0:
                    return nxt
            elif coupling < 1e-6:  # one correction is enough
                return nxt
            else:  # the fixed point of _voltage, its stopping rule
                change = abs(nxt - v)
                if change == 0.0:
                    return nxt
                if last > 0.0 and change < 0.5 * last:
                    q = change / last
                    if q / (1.0 - q) * change <= 1e-13 * (1.0 + abs(nxt)):
                        return nxt
                last = change
            v = nxt
            x = current + shunt * v
            if (x > 0) != positive or x == 0.0:
                return None
        return None

    def _ionic_function(self, rates: _Rates) -> Callable[[float], float]:
        """``current -> _ionic_voltage(current, rates)`` for one state and temperature.

        For a Li|SE|Li cell the function is ``_ionic_voltage`` → ``_psi`` → ``_strip``
        inlined, with what does not depend on the current worked out once: the same
        operations in the same order as those methods (so the same bits), at a fraction of
        the cost — a terminal voltage takes two or three of these. Near an oxidation
        plateau (lost contact) it hands over to ``_ionic_voltage``."""
        general = self._ionic_voltage
        if not self._symmetric:
            return lambda current: general(current, rates)
        p = self.params
        voids, oxidisable = self._voids, self._oxidisable
        v_we, v_ce = voids[WE] / p.void_scale, voids[CE] / p.void_scale
        a_we, a_ce = 1.0 / ((1.0 + v_we) * (1.0 + v_we)), 1.0 / ((1.0 + v_ce) * (1.0 + v_ce))
        rate1_we = p.plateau1_rate * oxidisable[WE] / p.plateau1_charge
        rate1_ce = p.plateau1_rate * oxidisable[CE] / p.plateau1_charge
        area, asr_bulk, asr, bv = self._area, rates.asr_bulk, rates.asr_int, rates.bv
        two_j0 = 2 * rates.j0
        quiet1, quiet2 = self._quiet1, self._quiet2
        asinh = math.asinh

        def ionic(current: float) -> float:
            if current == 0.0:
                return 0.0  # a symmetric cell's open-circuit voltage
            jabs = abs(current) / area
            if jabs == 0.0:
                return 0.0
            if current > 0:  # plating the WE strips the CE
                direction, a, plateau1_rate = 1, a_ce, rate1_ce
            else:
                direction, a, plateau1_rate = -1, a_we, rate1_we
            if a > 0.0:
                y = jabs / a
                full = y * asr + bv * asinh(y / two_j0)
                if (plateau1_rate <= 0.0 or full < quiet1) and full < quiet2:
                    psi = jabs * asr_bulk + (jabs * asr + bv * asinh(jabs / two_j0)) + full
                    return 0.0 - direction * psi
            return general(current, rates)

        return ionic

    def _ionic_voltage(self, current: float, rates: _Rates) -> float:
        if current == 0.0:
            return self._ocv()
        jabs = abs(current) / self._area
        direction = 1 if current > 0 else -1
        return self._ocv() - direction * self._psi(jabs, direction, rates)

    def _psi(self, jabs: float, direction: int, rates: _Rates) -> float:
        """Polarisation magnitude (V) at |j| = jabs; direction +1 plates the WE."""
        if jabs == 0.0:
            return 0.0
        if self._blocking:
            return jabs * (rates.asr_bulk + 2 * self.params.asr_blocking)
        asr, bv, j0 = rates.asr_int, rates.bv, rates.j0
        plating = jabs * asr + bv * math.asinh(jabs / (2 * j0))
        stripped = CE if direction > 0 else WE
        return jabs * rates.asr_bulk + plating + self._strip_fast(jabs, stripped, rates)[0]

    def _strip_fast(self, jabs: float, electrode: int, rates: _Rates) -> tuple[float, float]:
        """``_strip``, with its common case (a lithium electrode far from its oxidation
        plateaus) inlined: the same arithmetic as ``_strip``'s early return."""
        if self._symmetric:
            v = self._voids[electrode] / self.params.void_scale
            a = 1.0 / ((1.0 + v) * (1.0 + v))
            p = self.params
            plateau1_rate = p.plateau1_rate * self._oxidisable[electrode] / p.plateau1_charge
            if a > 0.0:
                y = jabs / a
                full = y * rates.asr_int + rates.bv * math.asinh(y / (2 * rates.j0))
                if (plateau1_rate <= 0.0 or full < self._quiet1) and full < self._quiet2:
                    return full, jabs
        return self._strip(jabs, electrode, rates)

    def _strip(self, jabs: float, electrode: int, rates: _Rates) -> tuple[float, float]:
        """(overpotential V, part of |j| carried by lithium) at the stripped electrode.

        Lithium leaves through the remaining contact a (current constriction: the local
        density is j/a); what it cannot carry goes into parasitic oxidation: a first,
        inventory-limited plateau and a second, unlimited one (seeds/001's -4 V and -7 V).
        A bare copper WE (anode-free, no lithium left) oxidises copper instead."""
        p = self.params
        asr, j0, bv = rates.asr_int, rates.j0, rates.bv
        if self._anode_free and electrode == WE:
            a = 1.0 - math.exp(-self.lithium_on_copper / _COPPER_COVER)
            plateau1_rate = 0.0
            plateau1_v = 0.0
            plateau2_v = p.copper_oxidation_v - self._ocv()
        else:
            a = self.contact(electrode)
            plateau1_rate = p.plateau1_rate * self._oxidisable[electrode] / p.plateau1_charge
            plateau1_v = p.plateau1_v
            plateau2_v = p.plateau2_v

        def local_eta(y: float) -> float:  # y: local current density through the contact
            return y * asr + bv * _asinh(y / (2 * j0))

        full = local_eta(jabs / a) if a > 0.0 else math.inf
        quiet1 = plateau1_rate <= 0.0 or full < plateau1_v - 14 * _PLATEAU_WIDTH
        if quiet1 and full < plateau2_v - 14 * _TAFEL_SLOPE:
            return full, jabs

        def side(eta: float) -> float:
            out = _TAFEL_REF * math.exp(min((eta - plateau2_v) / _TAFEL_SLOPE, 60.0))
            if plateau1_rate > 0.0:
                z = (eta - plateau1_v) / _PLATEAU_WIDTH
                out += plateau1_rate / (1.0 + math.exp(-z)) if z > -60 else 0.0
            return out

        def residual(y: float) -> float:
            return a * y + side(local_eta(y)) - jabs

        # the unlimited branch alone carries |j| at eta_cap, so eta (and y) cannot exceed it
        eta_cap = max(plateau2_v + _TAFEL_SLOPE * math.log(jabs / _TAFEL_REF), 0.0)
        y_hi = eta_cap / asr
        if a > 0.0:
            y_hi = min(y_hi, jabs / a)
        y = _solve_increasing(residual, 0.0, y_hi, 1e-14 * (y_hi + 1e-30))
        return local_eta(y), a * y

    def _shunt(self) -> float:
        rates = self._rates_cache
        if rates is None:
            g = 0.0
        else:
            try:
                g = rates.g_electronic
            except AttributeError:  # the last temperature asked for had no transport yet
                self._fill_rates(rates, _TRANSPORT)
                g = rates.g_electronic
        if self._hard:
            return g + 1.0 / self.hard_short_resistance
        return g + self._soft_conductance()

    def _soft_conductance(self) -> float:
        soft = self._soft
        if soft is None:
            return 0.0
        age = self.time - soft.start
        if age < 0.0:
            return 0.0
        if age > 8.0 * soft.tau:
            self._soft = None
            return 0.0
        return soft.conductance * math.exp(-age / soft.tau)

    # ---------------------------------------------------------------- integration

    def _growth(self, f: float, jabs: float, contact: float, rates: _Rates) -> float:
        """Relative growth rate of the filament (1/s) at reach f."""
        p = self.params
        if jabs == 0.0 or f >= 1.0:
            return p.growth_rate_max * contact if f >= 1.0 else 0.0
        enhancement = 1.0 + p.focusing * f / (1.0 - f)
        u = p.growth_steepness * (jabs * enhancement / rates.threshold - 1.0)
        if u > 60.0:
            return p.growth_rate_max * contact
        g = p.growth_rate * math.exp(u)
        return contact * g / (1.0 + g / p.growth_rate_max)

    def _hazard_rate(self, f: float) -> float:
        p = self.params
        return p.soft_rate_max * math.pow(min(f, 1.0), p.soft_power)

    def _substep(self, remaining: float, j: float, rates: _Rates) -> float:
        """Advance by at most ``remaining`` s; return the time used."""
        p = self.params
        jabs = abs(j)
        direction = 1 if j > 0 else -1
        stripped = CE if direction > 0 else WE
        h = remaining
        # ---- limits from the slow states that feed back on the fast ones
        if jabs > 0.0 and self._is_lithium(stripped):
            void_rate = jabs - rates.creep
            if void_rate > 0.0:
                h = min(h, 0.05 * (self._voids[stripped] + p.void_scale) / void_rate)
        side_current = 0.0
        lithium_current = jabs
        if jabs > 0.0 and not self._blocking:
            _, lithium_current = self._strip_fast(jabs, stripped, rates)
            side_current = jabs - lithium_current
            if side_current > 0.0 and self._is_lithium(stripped):
                h = min(h, 0.05 * p.plateau1_charge / side_current)
            if self._anode_free and stripped == WE and lithium_current > 0.0:
                h = min(
                    h, max(0.1 * self.lithium_on_copper, 0.02 * _COPPER_COVER) / lithium_current
                )
        # ---- filament
        f0 = self.reach
        k = rates.healing
        target = self.contact(stripped)
        growing = jabs > 0.0 and not self._blocking
        if growing:
            g0 = self._growth(f0, jabs, target, rates)
            rate0 = abs(g0 - k * (1.0 - self._nucleus / f0)) if f0 > 0 else abs(g0)
            if rate0 > 0.0:
                h = min(h, _STEP_GROWTH / rate0)
            while True:
                f_pred = self._reach_after(f0, g0, k, h)
                f_mid = math.sqrt(f0 * min(f_pred, 1.0)) if f_pred > 0 else f0
                g_mid = self._growth(f_mid, jabs, target, rates)
                f1 = self._reach_after(f0, g_mid, k, h)
                g1 = self._growth(min(f1, 1.0), jabs, target, rates)
                if (
                    h <= 1e-3
                    or abs(g1 - g0) * h <= _STEP_GROWTH
                    or (f1 >= 1.0 and g_mid >= 0.5 * p.growth_rate_max * target)
                ):
                    break
                h *= 0.5
            if f1 >= 1.0:
                h_short = self._time_to_reach(f0, g_mid, k, h)
                self._accumulate_hazard(f0, f_mid, 1.0, h_short, jabs)
                self._evolve_slow(h_short, j, jabs, stripped, lithium_current, side_current, rates)
                self.reach = 1.0
                self._short_now(self.time + h_short)
                return h
            self._accumulate_hazard(f0, f_mid, f1, h, jabs)
            self.reach = f1
        elif not self._blocking:
            self.reach = self._nucleus + (f0 - self._nucleus) * math.exp(-k * h)
        self._evolve_slow(h, j, jabs, stripped, lithium_current, side_current, rates)
        return h

    def _substep_symmetric(self, remaining: float, j: float, rates: _Rates) -> float:
        """``_substep`` for a Li|SE|Li cell (both electrodes lithium, not blocking), with
        the helpers of its common path inlined — the same operations in the same order,
        so the same result bit for bit; the rare paths (side reactions, the short) call
        the same helpers as ``_substep``."""
        p = self.params
        exp = math.exp
        jabs = abs(j)
        stripped = CE if j > 0 else WE
        h = remaining
        voids = self._voids
        # ---- limits from the slow states that feed back on the fast ones
        side_current = 0.0
        lithium_current = jabs
        if jabs > 0.0:
            void_rate = jabs - rates.creep
            if void_rate > 0.0:
                h = min(h, 0.05 * (voids[stripped] + p.void_scale) / void_rate)
            # _strip(jabs, stripped, rates)[1]: all of |j| is lithium far from the plateaus
            v = voids[stripped] / p.void_scale
            a = 1.0 / ((1.0 + v) * (1.0 + v))  # contact(stripped)
            plateau1_rate = p.plateau1_rate * self._oxidisable[stripped] / p.plateau1_charge
            quiet = False
            if a > 0.0:
                y = jabs / a
                full = y * rates.asr_int + rates.bv * math.asinh(y / (2 * rates.j0))
                quiet = (plateau1_rate <= 0.0 or full < self._quiet1) and full < self._quiet2
            if not quiet:
                _, lithium_current = self._strip(jabs, stripped, rates)
                side_current = jabs - lithium_current
                if side_current > 0.0:
                    h = min(h, 0.05 * p.plateau1_charge / side_current)
        # ---- filament
        f0 = self.reach
        k = rates.healing
        nucleus = self._nucleus
        if jabs > 0.0:
            v = voids[stripped] / p.void_scale
            target = 1.0 / ((1.0 + v) * (1.0 + v))  # contact(stripped)
            # _growth(f, jabs, target, rates) and _reach_after(f0, g, k, h), inlined
            g_max = p.growth_rate_max
            focusing, steepness, rate = p.focusing, p.growth_steepness, p.growth_rate
            threshold = rates.threshold
            if f0 >= 1.0:
                g0 = g_max * target
            else:
                u = steepness * (jabs * (1.0 + focusing * f0 / (1.0 - f0)) / threshold - 1.0)
                if u > 60.0:
                    g0 = g_max * target
                else:
                    g = rate * exp(u)
                    g0 = target * g / (1.0 + g / g_max)
            rate0 = abs(g0 - k * (1.0 - nucleus / f0)) if f0 > 0 else abs(g0)
            if rate0 > 0.0:
                h = min(h, _STEP_GROWTH / rate0)
            expm1 = math.expm1
            while True:
                lam = g0 - k
                x = lam * h
                if abs(x) < 1e-9:
                    f_pred = f0 + (lam * f0 + k * nucleus) * h
                else:
                    f_pred = f0 * exp(min(x, 700.0)) + k * nucleus * expm1(min(x, 700.0)) / lam
                f_mid = math.sqrt(f0 * min(f_pred, 1.0)) if f_pred > 0 else f0
                if f_mid >= 1.0:
                    g_mid = g_max * target
                else:
                    u = steepness * (
                        jabs * (1.0 + focusing * f_mid / (1.0 - f_mid)) / threshold - 1.0
                    )
                    if u > 60.0:
                        g_mid = g_max * target
                    else:
                        g = rate * exp(u)
                        g_mid = target * g / (1.0 + g / g_max)
                lam = g_mid - k
                x = lam * h
                if abs(x) < 1e-9:
                    f1 = f0 + (lam * f0 + k * nucleus) * h
                else:
                    f1 = f0 * exp(min(x, 700.0)) + k * nucleus * expm1(min(x, 700.0)) / lam
                f_end = min(f1, 1.0)
                if f_end >= 1.0:
                    g1 = g_max * target
                else:
                    u = steepness * (
                        jabs * (1.0 + focusing * f_end / (1.0 - f_end)) / threshold - 1.0
                    )
                    if u > 60.0:
                        g1 = g_max * target
                    else:
                        g = rate * exp(u)
                        g1 = target * g / (1.0 + g / g_max)
                if (
                    h <= 1e-3
                    or abs(g1 - g0) * h <= _STEP_GROWTH
                    or (f1 >= 1.0 and g_mid >= 0.5 * g_max * target)
                ):
                    break
                h *= 0.5
            if f1 >= 1.0:
                h_short = self._time_to_reach(f0, g_mid, k, h)
                self._accumulate_hazard(f0, f_mid, 1.0, h_short, jabs)
                self._evolve_slow(h_short, j, jabs, stripped, lithium_current, side_current, rates)
                self.reach = 1.0
                self._short_now(self.time + h_short)
                return h
            # _accumulate_hazard(f0, f_mid, f1, h, jabs), its common case inlined
            if h > 0.0:
                power, hazard_max = p.soft_power, p.soft_rate_max
                pow_ = math.pow
                l0 = hazard_max * pow_(min(f0, 1.0), power)
                lm = hazard_max * pow_(min(f_mid, 1.0), power)
                l1 = hazard_max * pow_(min(f1, 1.0), power)
                gained = h * (l0 + 4.0 * lm + l1) / 6.0
                if gained > 0.0:
                    start = self._hazard
                    self._hazard = start + gained
                    if self._hazard >= self._hazard_next:
                        self._hazard = start
                        self._accumulate_hazard(f0, f_mid, f1, h, jabs)
            self.reach = f1
        else:
            self.reach = nucleus + (f0 - nucleus) * exp(-k * h)
        # ---- _evolve_slow, inlined: voids (both electrodes lithium), oxidation inventory
        creep = rates.creep
        for electrode in (WE, CE):
            # the stripped electrode loses lithium; the plated one (or both, at rest) refills
            stripping = jabs > 0.0 and electrode == stripped
            rate = jabs - creep if stripping else -jabs - creep
            voids[electrode] = max(0.0, voids[electrode] + rate * h)
        if side_current > 0.0:
            left = self._oxidisable[stripped]
            self._oxidisable[stripped] = max(0.0, left - side_current * h)
        return h

    def _reach_after(self, f0: float, growth: float, healing: float, h: float) -> float:
        """f(h) for df/dt = growth·f - healing·(f - f_n) with constant coefficients."""
        lam = growth - healing
        x = lam * h
        if abs(x) < 1e-9:
            return f0 + (lam * f0 + healing * self._nucleus) * h
        e = math.exp(min(x, 700.0))
        return f0 * e + healing * self._nucleus * math.expm1(min(x, 700.0)) / lam

    def _time_to_reach(self, f0: float, growth: float, healing: float, h: float) -> float:
        """When the constant-coefficient solution crosses f = 1 (within [0, h])."""
        lam = growth - healing
        if lam <= 0.0:
            return h
        c = healing * self._nucleus / lam
        t = math.log((1.0 + c) / (f0 + c)) / lam
        return min(max(t, 0.0), h)

    def _accumulate_hazard(self, f0: float, f_mid: float, f1: float, h: float, jabs: float) -> None:
        """Soft shorts: the integrated hazard crossing an Exp(1) threshold is an event."""
        if jabs == 0.0 or h <= 0.0:
            return
        l0, lm, l1 = self._hazard_rate(f0), self._hazard_rate(f_mid), self._hazard_rate(f1)
        gained = h * (l0 + 4.0 * lm + l1) / 6.0
        if gained <= 0.0:
            return
        start = self._hazard
        self._hazard = start + gained
        while self._hazard >= self._hazard_next:
            fraction = (self._hazard_next - start) / gained
            self._start_soft(self.time + fraction * h)
            self._hazard_next += float(self._rng.exponential())

    def _start_soft(self, when: float) -> None:
        depth = float(self._rng.uniform(*_SOFT_DEPTH))
        tau = float(
            np.clip(_SOFT_TAU_MEDIAN * math.exp(0.6 * self._rng.standard_normal()), 0.5, 30)
        )
        rates = self._rates_cache
        if rates is not None:  # all of them, at the temperature last asked for
            rates = self._rates(rates.temperature)
        current = self._last_current
        if rates is None:
            resistance = 100.0
        elif current != 0.0:
            jabs = abs(current) / self._area
            resistance = self._psi(jabs, 1 if current > 0 else -1, rates) / abs(current)
        else:
            resistance = self._small_signal_resistance(rates)
        self._soft = _SoftShort(when, depth / (1.0 - depth) / resistance, tau)
        self.events.append(CellEvent(when, "soft_short", self.reach, depth, tau))

    def _short_now(self, when: float | None = None) -> None:
        if self._hard:
            return
        self._hard = True
        self._soft = None
        self.events.append(CellEvent(self.time if when is None else when, "hard_short", self.reach))

    def _evolve_slow(
        self,
        h: float,
        j: float,
        jabs: float,
        stripped: int,
        lithium_current: float,
        side_current: float,
        rates: _Rates,
    ) -> None:
        """Voids, the parasitic-oxidation inventory, lithium on copper, blocking RC."""
        if self._blocking:
            g = rates.g_electronic
            r, c = rates.r_blocking, rates.c_blocking
            current = j * self._area
            if g > 0.0:
                v_inf = current / g
                tau = c * (1.0 + g * r) / g
                self.polarisation = v_inf + (self.polarisation - v_inf) * math.exp(-h / tau)
            else:
                self.polarisation += current * h / c
            return
        for electrode in (WE, CE):
            if not self._is_lithium(electrode):
                continue
            if jabs > 0.0 and electrode == stripped:
                rate = jabs - rates.creep
            else:
                rate = -jabs - rates.creep  # plated (refills voids) or at rest (creep)
            self._voids[electrode] = max(0.0, self._voids[electrode] + rate * h)
        if side_current > 0.0 and self._is_lithium(stripped):
            left = self._oxidisable[stripped]
            self._oxidisable[stripped] = max(0.0, left - side_current * h)
        if self._anode_free:
            if j > 0.0:
                self.lithium_on_copper += jabs * h
            elif j < 0.0:
                self.lithium_on_copper = max(0.0, self.lithium_on_copper - lithium_current * h)


def make_cell(spec: CellSpec, seed: int = 0) -> CellPhysics:
    """The simulated cell for ``spec``; deterministic for ``seed``."""
    return Cell(spec, seed)
