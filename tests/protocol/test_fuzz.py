"""Property: whatever text a technician saves, validate answers cleanly — never a traceback.

Random text, random YAML-ish text and mutations of the bundled protocols (deleted,
duplicated or swapped lines, changed indentation, swapped values, random unicode, numbers
stripped of their units, numbers made zero, negative or huge) go through
``load_protocol`` and through ``heatcycler validate`` in-process. The result is either a
valid protocol (which then also plans) or a list of problems, each with a file, a line
and column inside the text, a message and a hint.
"""

from __future__ import annotations

import contextlib
import io
import re
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from controller.cli import main
from controller.plan import make_plan
from controller.rig import simulated_rig
from controller.validate import load_protocol

PROTOCOLS = Path(__file__).resolve().parent.parent.parent / "protocols"
BUNDLED = {p.name: p.read_text(encoding="utf-8") for p in sorted(PROTOCOLS.glob("*.yaml"))}
SIM = simulated_rig()

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def check_clean(text: str, *, rig: bool = False, name: str = "fuzz.yaml") -> None:
    loaded = load_protocol(name, SIM if rig else None, text=text)
    if loaded.ok:
        assert loaded.protocol is not None
        plan = make_plan(loaded.protocol, SIM if rig else None)
        assert plan.duration.min <= plan.duration.max + 1e-6
        assert all(s.duration.min <= s.duration.max + 1e-6 for s in plan.steps)
        return
    assert loaded.problems, "an invalid file reports at least one problem"
    lines = max(1, len(text.splitlines()) + 1)
    for p in loaded.problems:
        assert p.file == name
        assert 1 <= p.line <= lines, p
        assert p.col >= 1, p
        assert p.message.strip(), p
        assert p.hint.strip(), p


def check_cli(text: str | bytes, *, rig: bool = False) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.yaml"
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["validate", str(path), *(["--sim"] if rig else [])])
    assert code in (0, 2)
    assert "Traceback" not in err.getvalue()
    if code == 0:
        assert out.getvalue() == f"{path}: ok\n"
    else:
        assert err.getvalue().rstrip().endswith("found")
        assert f"{path}:" in err.getvalue()
        assert "    hint: " in err.getvalue()


# --------------------------------------------------------------- random text


@FUZZ
@given(st.text(max_size=400))
@example("-_")  # ruamel.yaml takes these for numbers and then fails to convert them
@example("._")
@example("when: 2026-13-45")
@example("0[:")  # a key that looks like one of pydantic's union tags
def test_random_text(text: str) -> None:
    check_clean(text)


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes_through_the_cli(data: bytes) -> None:
    check_cli(data)


KEYS = [
    "name",
    "cell",
    "safety",
    "steps",
    "rest",
    "for",
    "cycle",
    "count",
    "until",
    "repeat",
    "temperature",
    "setpoint",
    "soak",
    "voltage",
    "min",
    "max",
    "area",
    "ccd_ramp",
    "start",
    "step",
    "short",
]
SCALARS = st.one_of(
    st.sampled_from(
        ["160 degC", "30 min", "2 mA/cm^2", "1 V", "short", "5", "-1 h", "0", "", "~", "[]", "{}"]
    ),
    st.integers(-5, 2000).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.text(alphabet="abc:-{}[],#&*!|>'\"\t µ°", max_size=12),
)


@st.composite
def yamlish(draw: st.DrawFn) -> str:
    """Lines of `key: value`, `- item`, flow collections and odd indentation."""
    lines = []
    for _ in range(draw(st.integers(1, 14))):
        indent = " " * draw(st.sampled_from([0, 0, 2, 4, 6, 8, 3]))
        form = draw(st.integers(0, 4))
        key = draw(st.sampled_from(KEYS))
        value = draw(SCALARS)
        if form == 0:
            lines.append(f"{indent}{key}: {value}")
        elif form == 1:
            lines.append(f"{indent}{key}:")
        elif form == 2:
            lines.append(f"{indent}- {key}: {value}")
        elif form == 3:
            lines.append(f"{indent}- {key}: {{{draw(st.sampled_from(KEYS))}: {value}}}")
        else:
            lines.append(f"{indent}{value}")
    return "\n".join(lines) + "\n"


@FUZZ
@given(yamlish())
def test_random_yaml(text: str) -> None:
    check_clean(text)


# --------------------------------------------------- mutated bundled protocols

NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?")
UNIT = re.compile(r"(\d)\s*(?:[a-zA-Zµ°%][a-zA-Z/^°µ0-9]*)")


@st.composite
def mutated(draw: st.DrawFn) -> str:
    text = BUNDLED[draw(st.sampled_from(sorted(BUNDLED)))]
    lines = text.splitlines()
    for _ in range(draw(st.integers(1, 4))):
        if not lines:
            break
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.integers(0, 9))
        if op == 0:  # delete a line
            del lines[i]
        elif op == 1:  # duplicate a line
            lines.insert(i, lines[i])
        elif op == 2:  # change its indentation
            stripped = lines[i].lstrip(" ")
            lines[i] = " " * draw(st.integers(0, 10)) + stripped
        elif op == 3:  # a tab instead of spaces
            lines[i] = "\t" + lines[i].lstrip(" ")
        elif op == 4:  # swap the values of two `key: value` lines
            j = draw(st.integers(0, len(lines) - 1))
            a, b = lines[i].partition(": "), lines[j].partition(": ")
            if a[1] and b[1]:
                lines[i], lines[j] = a[0] + a[1] + b[2], b[0] + b[1] + a[2]
        elif op == 5:  # random unicode somewhere in the line
            at = draw(st.integers(0, len(lines[i])))
            junk = draw(st.text(min_size=1, max_size=5))
            lines[i] = lines[i][:at] + junk + lines[i][at:]
        elif op == 6:  # numbers lose their units
            lines[i] = UNIT.sub(r"\1", lines[i])
        elif op == 7:  # swap two lines
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == 8:  # another number: zero, negative, huge, tiny
            number = draw(st.sampled_from(["0", "-1", "-0.5", "1e9", "1e308", "1e-9", "100001"]))
            lines[i] = NUMBER.sub(number, lines[i], count=1)
        else:  # cut the file short
            lines = lines[:i]
    return "\n".join(lines) + "\n"


@FUZZ
@given(mutated())
def test_mutated_protocols(text: str) -> None:
    check_clean(text)
    check_clean(text, rig=True)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(), st.booleans())
def test_mutated_protocols_through_the_cli(text: str, rig: bool) -> None:
    check_cli(text, rig=rig)


@FUZZ
@given(st.sampled_from(sorted(BUNDLED)), st.data())
def test_every_number_without_its_unit(name: str, data: st.DataObject) -> None:
    """Strip the unit from one quantity: the problem names the expected unit."""
    text = BUNDLED[name]
    matches = [m for m in UNIT.finditer(text) if not text[: m.start()].endswith("$schema=")]
    m = data.draw(st.sampled_from(matches))
    bad = text[: m.start()] + m.group(1) + text[m.end() :]
    loaded = load_protocol(name, text=bad)
    if loaded.ok:  # e.g. "1 %" -> "1": a fraction needs no unit
        return
    check_clean(bad, name=name)
    line = bad[: m.start()].count("\n") + 1
    assert any(p.line == line for p in loaded.problems), loaded.problems
