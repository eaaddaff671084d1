"""The streaming detector, case by case: what is a short and what is not."""

from __future__ import annotations

import math

import numpy as np
import pytest
from detect_traces import AREA, I0, R_CELL, Trace, kinds, offline, stream

from controller.detect import EventKind, ShortDetector, ShortEvent, Thresholds, detect_arrays
from controller.protocol import Protocol, ShortDetection
from controller.samples import Sample


def short_from(tr: Trace, t0: float, r_short: float = 1.0, until: float = math.inf) -> None:
    """From t0 on the filament carries the current: V = −I·R_short."""
    for k, t in enumerate(tr.t):
        if t0 <= t < until and abs(tr.i[k]) > 1e-6:
            tr.v[k] = -tr.i[k] * r_short + 1e-6 * math.sin(k)


def test_hard_short_is_confirmed_on_the_next_sample_with_its_context() -> None:
    tr = Trace().add(120, I0).add(60, -I0)
    short_from(tr, 150.5)
    events = stream(tr)
    assert kinds(events) == ["hard_short"]
    e = events[0]
    assert e.onset_s == 151.0
    assert e.time_s == 152.0  # the second collapsed sample: output off here
    assert e.latency_samples == 2
    assert e.resistance == pytest.approx(R_CELL, rel=0.01)  # the running resistance
    assert e.apparent_resistance == pytest.approx(1.0, rel=0.05)
    assert e.current_density == pytest.approx(-2e-3, rel=1e-3)  # A/cm², strip
    assert e.temperature == 125.0
    assert "running resistance" in e.reason


def test_the_detector_is_sign_agnostic() -> None:
    """Another cycler's convention (V = +I·R) gives the same decision."""
    tr = Trace().add(120, I0).add(60, -I0)
    short_from(tr, 150.5)
    tr.v = [-x for x in tr.v]
    assert kinds(stream(tr)) == ["hard_short"]


def test_single_sample_glitches_are_not_shorts() -> None:
    tr = Trace().add(300, I0)
    for t, factor in ((50, 0.0), (100, 0.1), (150, 5.0), (200, 0.0)):
        tr.v[tr.index_at(t)] *= factor
    assert stream(tr) == []


def test_contact_bounces_at_10_hz_are_not_shorts() -> None:
    """Two samples at ~0 V at 0.1 s span less than confirm_time (0.25 s)."""
    tr = Trace().add(60, I0, dt=0.1)
    k = tr.index_at(30.0)
    tr.v[k] = tr.v[k + 1] = 1e-6
    assert stream(tr) == []
    # the same collapse held for 0.4 s is a short, confirmed once it spans 0.25 s
    short_from(tr, 40.0)
    events = stream(tr)
    assert kinds(events) == ["hard_short"]
    assert events[0].time_s - events[0].onset_s == pytest.approx(0.3)


def test_current_changes_rests_and_reversals_are_not_shorts() -> None:
    tr = Trace().add(120, 0.0)  # rest at ~0 V: nothing is decided without current
    for k in range(1, 8):  # a CCD-like ramp: the voltage jumps with every level
        tr.add(60, 0.2e-3 * k * AREA)
    tr.add(60, -1.4e-3 * AREA)  # direct reversal
    tr.add(30, 0.0).add(60, I0).add(60, -I0)
    assert stream(tr) == []
    assert offline(tr) == []


def test_a_rest_near_zero_volts_is_never_judged() -> None:
    tr = Trace().add(3600, 0.0)
    det = ShortDetector(area_cm2=AREA)
    for k in range(len(tr)):
        assert det.feed(tr.t[k], 0.0, 0.0, source="current", level=0.0) == ()
        assert det.feed(tr.t[k], 0.0, I0, source="off") == ()  # output off: not judged


def test_a_short_during_a_rest_is_caught_by_the_step_it_answers_like_a_wire() -> None:
    tr = Trace().add(120, I0).add(60, 0.0).add(60, -I0).add(60, 0.0).add(60, I0)
    short_from(tr, 270.0)  # during the second rest (240–300 s)
    events = stream(tr)
    assert kinds(events) == ["hard_short"]
    assert events[0].onset_s == 301.0  # the first sample with current again
    assert events[0].latency_samples == 2


def test_a_collapse_right_after_a_reversal_waits_for_settle() -> None:
    """The polarisation left from before can hold |V| low after a reversal: a collapse
    that starts within `settle` must hold still until then."""
    tr = Trace().add(120, I0).add(60, -I0)
    short_from(tr, 123.0)  # 3 s after the reversal
    events = stream(tr, ShortDetection(settle="10 s"))
    assert [(e.onset_s, e.time_s) for e in events] == [(123.0, 131.0)]  # run began at 121 s
    events = stream(tr, ShortDetection(settle="0 s"))
    assert [(e.onset_s, e.time_s) for e in events] == [(123.0, 124.0)]


def test_polarisation_growing_to_the_window_is_a_voltage_limit_not_a_short() -> None:
    tr = Trace()
    for k in range(1, 9):  # contact loss: the resistance climbs level after level
        tr.add(60, I0, r=R_CELL * 1.5**k)
    # the SMU clamps at −1 V and the current falls
    for k in range(len(tr)):
        if tr.v[k] < -1.0:
            tr.i[k] *= -1.0 / tr.v[k]
            tr.v[k] = -1.0
    events = stream(tr)
    assert kinds(events) == ["voltage_limit"]
    assert events[0].voltage == pytest.approx(-1.0, abs=0.01)
    assert "lower edge" in events[0].reason
    assert stream(tr, window=(-8.0, 8.0)) == []  # inside a wide window: nothing at all


def test_a_voltage_limit_is_reported_once_per_excursion() -> None:
    tr = Trace().add(30, I0, r=300.0).add(30, 1.1 * I0, r=600.0)
    tr.add(30, 1.2 * I0, r=300.0).add(30, 1.3 * I0, r=600.0)
    for k in range(len(tr)):
        tr.v[k] = max(tr.v[k], -0.9)
    events = stream(tr, window=(-0.9, 0.9))
    assert kinds(events) == ["voltage_limit", "voltage_limit"]
    assert [e.onset_s for e in events] == [31.0, 91.0]


def test_heating_through_the_libh4_transition_is_not_a_short() -> None:
    """R falls ~10× across 110–118 °C while the block heats at 10 °C/min."""
    tr = Trace()
    for k in range(300):
        temp = 100.0 + k * 10.0 / 60.0 * 1.0  # 1 s samples
        r = R_CELL * (1 + 9 / (1 + math.exp((temp - 114.0) / 2.0)))
        tr.add(1.0, I0 * 0.1, r=r, temp=min(temp, 130.0), seed=k)
    assert stream(tr) == []
    assert stream(tr, temperature=False) == []


def test_soft_shorts_partial_collapse_and_flicker() -> None:
    tr = Trace().add(600, I0)
    for t in range(200, 206):  # a partial collapse to 40 % for 6 s that recovers
        tr.v[tr.index_at(t)] *= 0.4
    for t in (400, 403, 406, 409):  # a flicker: four separate dips
        tr.v[tr.index_at(t)] *= 0.5
    events = stream(tr)
    assert kinds(events) == ["soft_short", "soft_short"]
    assert [e.onset_s for e in events] == [200.0, 400.0]
    assert events[0].depth == pytest.approx(0.4, abs=0.02)
    assert "recovered" in events[0].reason


def test_two_isolated_dips_and_a_symmetric_noise_burst_are_not_soft_shorts() -> None:
    tr = Trace().add(600, I0)
    tr.v[tr.index_at(200)] *= 0.4
    tr.v[tr.index_at(203)] *= 0.5
    rng = np.random.default_rng(3)
    for t in range(400, 440):  # EMI: ±25 % both ways
        tr.v[tr.index_at(t)] *= 1 + 0.25 * rng.normal()
    assert stream(tr) == []


def test_a_partial_collapse_that_stays_is_a_persistent_soft_short() -> None:
    tr = Trace().add(400, I0)
    for k in range(tr.index_at(100), len(tr)):
        tr.v[k] *= 0.45
    events = stream(tr)
    assert kinds(events) == ["soft_short"]
    assert events[0].onset_s == 100.0
    assert "not recovered" in events[0].reason


def test_a_shorted_cell_is_reported_again_at_a_new_step_and_released_on_recovery() -> None:
    tr = Trace().add(60, I0, step=1).add(60, 0.0, step=2).add(60, -I0, step=3)
    short_from(tr, 30.0)
    events = stream(tr)
    assert kinds(events) == ["hard_short", "hard_short"]
    assert events[1].step == 3
    assert "still shorted" in events[1].reason
    # a filament that burns open: the cell reads healthy again and a new short is news
    tr = Trace().add(60, I0).add(60, I0, seed=1).add(60, I0, seed=2)
    short_from(tr, 30.0, until=60.0)
    short_from(tr, 150.0)
    assert [e.onset_s for e in stream(tr)] == [30.0, 150.0]


def test_thresholds_come_from_the_protocol() -> None:
    protocol = Protocol.model_validate(
        {
            "name": "p",
            "cell": {"id": "S1", "electrolyte": "LiBH4", "diameter": "5 mm", "thickness": "1 mm"},
            "safety": {"voltage": {"min": "-0.5 V", "max": "0.5 V"}, "temperature_max": "170 degC"},
            "detection": {"resistance_fraction": "50 %", "soft_drop_fraction": "20 %"},
            "steps": [{"rest": {"for": "1 min"}}],
        }
    )
    det = ShortDetector.for_protocol(protocol)
    assert det.th.fraction == 0.5
    assert det.th.area == pytest.approx(math.pi * 0.25**2)
    assert (det.th.v_min, det.th.v_max) == (-0.5, 0.5)
    # a collapse to 40 %: a soft short by default, a hard one at a 50 % threshold
    tr = Trace().add(120, I0, r=100.0)
    for k in range(tr.index_at(60), tr.index_at(70)):
        tr.v[k] *= 0.4
    assert kinds(stream(tr)) == ["soft_short"]
    assert kinds(stream(tr, ShortDetection(resistance_fraction=0.5, soft_drop_fraction=0.2))) == [
        "hard_short"
    ]


def test_update_with_samples_equals_feed() -> None:
    tr = Trace().add(60, I0).add(30, 0.0).add(60, -I0)
    short_from(tr, 120.0)
    det = ShortDetector(area_cm2=AREA, voltage_window=(-1, 1))
    events = []
    for k in range(len(tr)):
        sample = Sample(
            t=tr.t[k],
            voltage=tr.v[k],
            current=tr.i[k],
            temperature=tr.temp[k],
            level=tr.level[k],
            source="current",
            step=tr.step[k],
        )
        events.extend(det.update(sample))
    assert events == stream(tr)
    assert det.shorted
    assert det.samples_seen == len(tr)
    det.reset()
    assert not det.shorted


def test_unreadable_samples_are_skipped() -> None:
    tr = Trace().add(120, I0)
    tr.v[50] = math.nan
    tr.i[70] = math.nan
    tr.v[90] = math.inf
    assert stream(tr) == []
    assert offline(tr) == []


def test_event_kinds_serialise() -> None:
    tr = Trace().add(60, I0)
    short_from(tr, 30.0)
    (e,) = stream(tr)
    d = e.as_dict()
    assert d["kind"] == EventKind.HARD_SHORT == "hard_short"
    assert d["time_s"] == 31.0
    assert d["onset_s"] == 30.0
    assert d["current_density_A_per_cm2"] == pytest.approx(2e-3, rel=1e-3)


def _polarisation(short_at: float | None) -> Trace:
    """DC polarization of a blocking cell at 0.1 V: the ionic current decays (τ 3 s) to
    the electronic leak; a short drives the SMU into its 5 mA compliance."""
    tr = Trace().add(30, 0.0)
    for k in range(1, 601):
        t = 30.0 + k
        i = 0.1 / 1e4 + 0.1 / 50.0 * math.exp(-k / 3.0)
        v = 0.1
        if short_at is not None and t >= short_at:
            i, v = 5e-3, 5e-3 * 2.0
        tr.t.append(t)
        tr.v.append(v + 1e-5 * math.sin(k))
        tr.i.append(i)
        tr.level.append(0.1)  # the commanded voltage
        tr.temp.append(25.0)
        tr.step.append(2)
    return tr


def _stream_voltage(tr: Trace) -> list[ShortEvent]:
    det = ShortDetector(area_cm2=AREA)
    out: list[ShortEvent] = []
    for k in range(len(tr)):
        source = "voltage" if tr.step[k] == 2 else "current"
        out.extend(
            det.feed(tr.t[k], tr.v[k], tr.i[k], temperature=25.0, level=tr.level[k], source=source)
        )
    return out


def test_a_dc_polarization_is_not_a_short_but_a_short_during_it_is() -> None:
    """Constant voltage with a current that falls 30 % a second is a potentiostat at
    work, not a wire; the current jumping to the compliance while V collapses is one."""
    healthy = _polarisation(None)
    assert _stream_voltage(healthy) == []
    assert offline(healthy, window=None) == []  # a CSV without the source: no false alarm
    shorted = _polarisation(400.0)
    events = _stream_voltage(shorted)
    assert kinds(events) == ["hard_short"]
    assert events[0].onset_s == 400.0
    # offline with the source and level known (a journal export) decides the same
    th = Thresholds.build(area_cm2=AREA)
    arrays = [np.asarray(x) for x in (shorted.t, shorted.v, shorted.i)]
    source = np.asarray([2 if s == 2 else 1 for s in shorted.step])
    level = np.where(source == 2, np.asarray(shorted.level), np.nan)
    temperature = np.full(len(shorted), 25.0)
    assert (
        detect_arrays(*arrays, thresholds=th, level=level, source=source, temperature=temperature)
        == events
    )
