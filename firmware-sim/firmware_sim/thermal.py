"""The heater block: two thermal nodes, an SSR-driven cartridge, a MAX31855 thermocouple.

Nodes: the block (heater, holder and cell; ≈ 90 J/K, ≈ 0.1 W/K loss to ambient) and the
thermocouple tip, which follows the block with a first-order lag (1–3 s). The cell's
temperature is the block's. The model is linear with piecewise-constant heater power, so
it is integrated exactly: each on/off segment in closed form, and a run of whole SSR
windows at one duty in O(1) through the window map's fixed point — hours of virtual time
cost microseconds.

The MAX31855 converts every 100 ms: hot junction in 0.25 °C steps, cold junction in
0.0625 °C steps, fault bits for an open or shorted probe. Its noise is a pure function of
(seed, conversion number), so a reading never depends on how often someone asked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

#: MAX31855 conversion period, s.
CONVERSION_PERIOD = 0.1
#: MAX31855 fault bits (as in the board protocol).
FAULT_OPEN = 0x01
FAULT_SHORT_GND = 0x02
FAULT_SHORT_VCC = 0x04


@dataclass(frozen=True, slots=True)
class BlockParams:
    """Physical constants of the rig's heater block."""

    heat_capacity: float = 90.0  # J/K, block + cell holder
    loss: float = 0.1  # W/K, to ambient
    heater_power: float = 100.0  # W, cartridge at full on (50–100 W)
    sensor_lag: float = 2.0  # s, thermocouple time constant (1–3 s)
    ambient: float = 25.0  # degC
    window: float = 1.0  # s, SSR time-proportioning window

    def __post_init__(self) -> None:
        if self.heat_capacity <= 0 or self.loss <= 0 or self.sensor_lag <= 0:
            raise ValueError("heat capacity, loss and sensor lag must be positive")
        if self.heater_power < 0 or self.window <= 0:
            raise ValueError("heater power must be >= 0 and the SSR window > 0")


class HeaterBlock:
    """Block and sensor temperatures, advanced exactly under SSR time-proportioning.

    SSR windows are aligned to t = 0 (the board's power-up): with duty ``d`` the heater
    is on for the first ``d·window`` of every window and off for the rest.
    """

    def __init__(self, params: BlockParams | None = None, *, t0: float = 0.0) -> None:
        self.params = params or BlockParams()
        self.time = t0
        self.ambient = self.params.ambient
        self.block = self.ambient
        self.sensor = self.ambient
        self._loss_factor = 1.0
        self._a = 1.0 / self.params.sensor_lag
        self._update_rates()

    # ------------------------------------------------------------ parameters

    @property
    def loss_factor(self) -> float:
        """Multiplier on the heat loss (1.5 = 50 % more loss, e.g. a draught)."""
        return self._loss_factor

    @loss_factor.setter
    def loss_factor(self, factor: float) -> None:
        if not factor > 0:
            raise ValueError("loss factor must be positive")
        self._loss_factor = factor
        self._update_rates()

    @property
    def loss(self) -> float:
        """Effective heat-loss conductance, W/K."""
        return self.params.loss * self._loss_factor

    def _update_rates(self) -> None:
        p = self.params
        self._k = self.loss / p.heat_capacity
        # the block's rise above ambient with the heater on for good
        self._rise_on = p.heater_power / self.loss
        a, k = self._a, self._k
        self._coupling = a / (a - k) if abs(a - k) > 1e-12 * a else math.inf
        w = p.window
        self._ew_b = math.exp(-k * w)
        self._ew_s = math.exp(-a * w)
        self._window_cache: dict[float, tuple[float, float]] = {}
        self._m_w = (
            self._a * w * self._ew_s
            if self._coupling == math.inf
            else (self._coupling * (self._ew_b - self._ew_s))
        )
        #: the window map's fixed point (block, sensor) per duty
        self._fixed_cache: dict[float, tuple[float, float]] = {}

    def steady_state(self, duty: float) -> float:
        """Block temperature at a constant duty, for ever: ambient + P·duty/loss."""
        return self.ambient + self.params.heater_power * duty / self.loss

    @property
    def time_constant(self) -> float:
        """Block time constant C/G, s."""
        return self.params.heat_capacity / self.loss

    # ------------------------------------------------------------ integration

    def _segment(self, b: float, s: float, dt: float, rise: float) -> tuple[float, float]:
        """Exact solution over ``dt`` with the block driven towards ambient + ``rise``
        (values are rises above ambient)."""
        eb = math.exp(-self._k * dt)
        es = math.exp(-self._a * dt)
        db = b - rise
        coupling = self._coupling
        lag = self._a * dt * es if coupling == math.inf else coupling * (eb - es)
        return rise + db * eb, rise + db * lag + (s - rise) * es

    def _window_response(self, duty: float) -> tuple[float, float]:
        """The rise after one whole window at ``duty``, starting from ambient."""
        cached = self._window_cache.get(duty)
        if cached is None:
            w = self.params.window
            on = duty * w
            b, s = self._segment(0.0, 0.0, on, self._rise_on) if on > 0 else (0.0, 0.0)
            if on < w:
                b, s = self._segment(b, s, w - on, 0.0)
            cached = (b, s)
            if len(self._window_cache) < 4096:
                self._window_cache[duty] = cached
        return cached

    def _whole_windows(self, b: float, s: float, n: int, duty: float) -> tuple[float, float]:
        """``n`` whole windows at one duty in O(1): x_n = x* + E(n·w)(x_0 − x*), with x*
        the fixed point of the window map x -> E(w)·x + c."""
        # E(w) is lower triangular [[eb, 0], [m, es]]; solve (I − E(w)) x* = c.
        eb, es, m = self._ew_b, self._ew_s, self._m_w
        fixed = self._fixed_cache.get(duty)
        if fixed is None:
            cb, cs = self._window_response(duty)
            xb = cb / (1.0 - eb)
            fixed = xb, (cs + m * xb) / (1.0 - es)
            if len(self._fixed_cache) < 4096:
                self._fixed_cache[duty] = fixed
        xb, xs = fixed
        if n == 1:  # E(1·w) = E(w), already known (a 1 s loop moves one window at a time)
            enb, ens, mn = eb, es, m
        else:
            coupling = self._coupling
            t = n * self.params.window
            enb = math.exp(-self._k * t)
            ens = math.exp(-self._a * t)
            mn = self._a * t * ens if coupling == math.inf else coupling * (enb - ens)
        db, ds = b - xb, s - xs
        return xb + enb * db, xs + mn * db + ens * ds

    def advance(self, t1: float, duty: float) -> None:
        """Advance to ``t1`` with the SSR at ``duty`` (0..1) throughout."""
        t0 = self.time
        if t1 <= t0:
            return
        duty = min(1.0, max(0.0, duty))
        b = self.block - self.ambient
        s = self.sensor - self.ambient
        if duty <= 0.0 or duty >= 1.0:
            rise = self._rise_on if duty >= 1.0 else 0.0
            b, s = self._segment(b, s, t1 - t0, rise)
        else:
            w = self.params.window
            on = duty * w
            t = t0
            start = math.floor(t / w) * w
            if t > start or t1 < start + w:  # a partial window first
                end = min(t1, start + w)
                b, s = self._partial(b, s, t - start, end - start, on)
                t = end
            n = int((t1 - t) / w + 1e-9)
            if n > 0:
                b, s = self._whole_windows(b, s, n, duty)
                t += n * w
            if t1 - t > 1e-12:
                b, s = self._partial(b, s, 0.0, t1 - t, on)
        self.block = self.ambient + b
        self.sensor = self.ambient + s
        self.time = t1

    def _partial(self, b: float, s: float, p0: float, p1: float, on: float) -> tuple[float, float]:
        """Phases ``p0``..``p1`` of one window whose first ``on`` seconds heat."""
        if p0 < on:
            end = min(p1, on)
            b, s = self._segment(b, s, end - p0, self._rise_on)
            p0 = end
        if p1 > p0:
            b, s = self._segment(b, s, p1 - p0, 0.0)
        return b, s

    def set_ambient(self, ambient: float) -> None:
        """Change the room temperature from now on (node temperatures are unchanged)."""
        self.ambient = ambient


# ----------------------------------------------------------------- thermocouple


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return x ^ (x >> 31)


def hashed_gauss(seed: int, n: int) -> float:
    """A standard-normal-ish deviate that depends only on (seed, n): the sum of four
    uniforms (Irwin–Hall), scaled to unit variance. Cheap and reproducible."""
    return _hashed_gauss(seed * 0x100000001B3, n)


_MASK64 = 0xFFFFFFFFFFFFFFFF


def _hashed_gauss(mixed_seed: int, n: int) -> float:
    """``hashed_gauss`` with ``seed * 0x100000001B3`` given and splitmix64 inlined. The
    four 16-bit uniforms are summed as integers: every partial sum of k/65536 is exact
    in a double, so this is bit for bit the sum of the four floats."""
    x = ((mixed_seed ^ n) + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    h = x ^ (x >> 31)
    total = ((h & 0xFFFF) + ((h >> 16) & 0xFFFF) + ((h >> 32) & 0xFFFF) + (h >> 48)) / 65536.0
    return (total - 2.0) * 1.7320508075688772


def _hashed_gauss_block(mixed_seed: int, start: int, count: int) -> list[float]:
    """``_hashed_gauss(mixed_seed, n)`` for n in ``start…start+count-1`` at once, in numpy
    unsigned 64-bit arithmetic (which wraps as the masks do) and float64 (the same IEEE
    operations): the same values bit for bit, at a small fraction of the cost each."""
    import numpy as np  # here: the fault client imports this module and needs no numpy

    x = np.arange(start, start + count, dtype=np.uint64) ^ np.uint64(mixed_seed & _MASK64)
    x += np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    h = x ^ (x >> np.uint64(31))
    mask = np.uint64(0xFFFF)
    total = (h & mask) + ((h >> np.uint64(16)) & mask) + ((h >> np.uint64(32)) & mask)
    total += h >> np.uint64(48)
    values = (total.astype(np.float64) / 65536.0 - 2.0) * 1.7320508075688772
    return values.tolist()  # type: ignore[no-any-return]


#: conversions per block of precomputed noise (a block lasts 102.4 s of rig time)
_NOISE_BLOCK = 1024


#: builds a named tuple from a tuple without the generated ``__new__`` (a Python call)
_new_reading = tuple.__new__
#: ``round`` of a float, without ``round``'s look-up of ``__round__`` (twice a conversion)
_round = float.__round__


class ThermocoupleReading(NamedTuple):
    """One MAX31855 conversion (a named tuple: immutable, and cheap to make ten times a
    second of rig time)."""

    temperature: float  # degC, 0.25 °C steps; NaN when a fault bit is set
    cold_junction: float  # degC, 0.0625 °C steps
    faults: int  # FAULT_* bits
    counter: int  # conversion number since power-up


class Max31855:
    """The thermocouple amplifier: quantisation, noise, cold junction, fault bits.

    ``probe`` models the wiring: ``ok``, ``open`` (bit 0x01), ``short_gnd`` (0x02),
    ``short_vcc`` (0x04), or ``shorted`` — the two thermocouple wires touching near the
    board, which the chip cannot detect: it then reads its own cold-junction temperature.
    """

    PROBE_FAULTS: ClassVar[dict[str, int]] = {
        "ok": 0,
        "open": FAULT_OPEN,
        "short_gnd": FAULT_SHORT_GND,
        "short_vcc": FAULT_SHORT_VCC,
        "shorted": 0,
    }

    def __init__(
        self, seed: int = 0, *, noise: float = 0.06, cold_junction_offset: float = 1.5
    ) -> None:
        self.seed = seed
        self.noise = noise  # degC rms before quantisation
        self.cold_junction_offset = cold_junction_offset  # the board runs a bit warm
        #: (seed, block) -> the cold-junction and hot-junction deviates of that block
        self._noise_block: tuple[int, int, list[float], list[float]] | None = None

    def _deviates(self, counter: int) -> tuple[float, float]:
        """(cold-junction, hot-junction) standard deviates of conversion ``counter``:
        ``hashed_gauss(~seed, counter)``, ``hashed_gauss(seed, counter)``, taken from a
        block computed at once (a conversion is asked for every rig-second or more)."""
        seed = self.seed
        block = counter // _NOISE_BLOCK
        cached = self._noise_block
        if cached is None or cached[0] != seed or cached[1] != block:
            if not 0 <= counter < 1 << 62:  # outside what the numpy path is built for
                return (
                    _hashed_gauss(~seed * 0x100000001B3, counter),
                    _hashed_gauss(seed * 0x100000001B3, counter),
                )
            start = block * _NOISE_BLOCK
            cached = (
                seed,
                block,
                _hashed_gauss_block(~seed * 0x100000001B3, start, _NOISE_BLOCK),
                _hashed_gauss_block(seed * 0x100000001B3, start, _NOISE_BLOCK),
            )
            self._noise_block = cached
        i = counter - block * _NOISE_BLOCK
        return cached[2][i], cached[3][i]

    def convert(
        self, counter: int, sensor: float, ambient: float, probe: str = "ok"
    ) -> ThermocoupleReading:
        cold_noise, hot_noise = self._deviates(counter)
        cj_raw = ambient + self.cold_junction_offset + 0.02 * cold_noise
        cold_junction = _round(cj_raw * 16.0) / 16.0  # (a float: times 16.0)
        faults = 0 if probe == "ok" else self.PROBE_FAULTS[probe]
        if faults:
            return _new_reading(ThermocoupleReading, (math.nan, cold_junction, faults, counter))
        hot = cj_raw if probe == "shorted" else sensor
        hot += self.noise * hot_noise
        reading = (_round(hot * 4.0) / 4.0, cold_junction, 0, counter)
        return _new_reading(ThermocoupleReading, reading)
