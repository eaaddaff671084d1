"""The record rule on the jittery sample times of a real-time run."""

from __future__ import annotations

import random

from controller.protocol import Record
from controller.runner.record import RecordRule


def rule_for(sample_period: str, every: str, delta_voltage: str | None = None) -> RecordRule:
    record = {"sample_period": sample_period, "every": every, "delta_voltage": delta_voltage}
    return RecordRule(Record.model_validate(record))


def stored_times(rule: RecordRule, times: list[float]) -> list[float]:
    kept = []
    for t in times:
        if rule.store(t, 0.0, 0.0):
            rule.stored(t, 0.0, 0.0)
            kept.append(t)
    return kept


def jittered(period: float, n: int, jitter: float, seed: int = 1) -> list[float]:
    rng = random.Random(seed)
    return [k * period + rng.uniform(-jitter, jitter) for k in range(n)]


def test_every_equal_to_the_sample_period_stores_every_jittered_sample() -> None:
    times = jittered(0.1, 600, 0.003)
    rule = rule_for("0.1 s", "0.1 s")
    assert stored_times(rule, times) == times


def test_every_ten_periods_stores_every_tenth_jittered_sample() -> None:
    times = jittered(1.0, 1000, 0.02)
    rule = rule_for("1 s", "10 s")
    assert stored_times(rule, times) == times[::10]


def test_a_voltage_step_is_stored_at_once() -> None:
    rule = rule_for("1 s", "10 s", "1 mV")
    assert rule.store(0.0, 0.0, 0.0)
    rule.stored(0.0, 0.0, 0.0)
    assert not rule.store(1.0, 0.0009, 0.0)
    assert rule.store(2.0, 0.0011, 0.0)
