"""The labelled corpus: precision and recall, latency, and streaming == offline.

The score table is printed in pytest's terminal summary (tests/detect/conftest.py).
Targets: hard shorts recall 1 and no false hard short; hard shorts confirmed within 2
samples of the onset at ≥ 1 s sampling; soft shorts precision and recall ≥ 0.9; voltage
limits precision and recall 1.
"""

from __future__ import annotations

import pytest
from detect_corpus import CORPUS, generator, labels, run_offline, run_streaming, score_corpus
from detect_traces import AREA

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


@pytest.fixture(scope="module")
def offline_score():  # type: ignore[no-untyped-def]
    return score_corpus("offline")


def test_the_corpus_is_what_its_generator_writes() -> None:
    files = generator().build()
    on_disk = sorted(p.name for p in CORPUS.iterdir() if p.suffix in {".csv", ".json"})
    assert sorted(files) == on_disk
    for name, text in files.items():
        assert (CORPUS / name).read_text(encoding="utf-8") == text, f"{name} is stale"


def test_corpus_covers_what_the_detector_must_tell_apart() -> None:
    meta = labels()
    periods = {m["sample_period_s"] for m in meta.values()}
    assert periods == {0.1, 1.0, 10.0}
    kinds = [e["kind"] for m in meta.values() for e in m["events"]]
    assert kinds.count("hard_short") >= 10
    assert kinds.count("soft_short") >= 10
    assert kinds.count("voltage_limit") >= 1
    no_short = [
        n for n, m in meta.items() if not any(e["kind"] == "hard_short" for e in m["events"])
    ]
    assert len(no_short) >= 12
    needed_cases = (
        "glitches",
        "current_steps",
        "reversal",
        "heating",
        "rest_near_0V",
        "contact_loss",
        "noise_bursts",
        "ccd_symmetric",
        "ccd_one_way",
        "soft_then_hard",
    )
    for needed in needed_cases:
        assert any(needed in n for n in meta), needed


def test_precision_and_recall_meet_the_targets(offline_score, record) -> None:  # type: ignore[no-untyped-def]
    score, _ = offline_score
    record("corpus (offline)", score.table())
    assert score.recall("hard_short") == 1.0, score.misses
    assert score.precision("hard_short") == 1.0, score.false  # zero false hard shorts
    assert score.recall("soft_short") >= 0.9, score.misses
    assert score.precision("soft_short") >= 0.9, score.false
    assert score.recall("voltage_limit") == 1.0, score.misses
    assert score.precision("voltage_limit") == 1.0, score.false


def test_hard_shorts_are_confirmed_within_two_samples_at_1_s_and_slower(offline_score) -> None:  # type: ignore[no-untyped-def]
    score, _ = offline_score
    slow = [(n, dt, lat) for n, dt, lat in score.latencies if dt >= 1.0]
    assert len(slow) >= 8
    assert all(lat <= 2 for _, _, lat in slow), slow
    fast = [lat for _, dt, lat in score.latencies if dt < 1.0]
    assert fast
    assert max(fast) <= 4


def test_ccd_and_cycle_at_the_short(offline_score) -> None:  # type: ignore[no-untyped-def]
    _, found = offline_score
    checked = 0
    for name, meta in labels().items():
        expect = meta.get("expect", {})
        hard = [e for e in found[name] if e.kind == "hard_short"]
        if "ccd" in expect:
            assert abs(hard[0].current / AREA) == pytest.approx(expect["ccd"], rel=0.01)
            checked += 1
        if "cycle" in expect:
            assert hard[0].cycle == expect["cycle"]
            checked += 1
    assert checked >= 8


@pytest.mark.parametrize("name", sorted(labels()))
def test_streaming_and_offline_decide_identically(name: str) -> None:
    meta = labels()[name]
    assert run_streaming(name, meta, commanded=False) == run_offline(name, meta)


def test_streaming_with_commanded_levels_meets_the_same_targets(record) -> None:  # type: ignore[no-untyped-def]
    score, _ = score_corpus("commanded")
    record("corpus (streaming, commanded levels)", score.table())
    assert score.recall("hard_short") == 1.0, score.misses
    assert score.precision("hard_short") == 1.0, score.false
    assert score.recall("soft_short") >= 0.9
    assert score.precision("soft_short") >= 0.9
