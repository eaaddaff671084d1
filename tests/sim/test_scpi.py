"""The SCPI parser: mnemonics, optional nodes, `;` paths, parameters, error numbers."""

from __future__ import annotations

import pytest
from firmware_sim.scpi import (
    Command,
    CommandTree,
    Param,
    ScpiError,
    compile_pattern,
    parse,
    short_form,
    split_params,
)
from hypothesis import given
from hypothesis import strategies as st


def tree() -> CommandTree:
    t = CommandTree()
    t.add(":SOURce[1]:CURRent[:LEVel][:IMMediate][:AMPLitude]", write=lambda c: "level")
    t.add(":SOURce[1]:CURRent:VLIMit[:LEVel]", write=lambda c: "vlim", query=lambda c: "vlim?")
    t.add("[:SENSe[1]]:FUNCtion[:ON]", write=lambda c: "sense-func")
    t.add(":SOURce[1]:FUNCtion[:MODE]", write=lambda c: "source-func")
    t.add("*IDN", query=lambda c: "idn")
    return t


def resolve(line: str) -> list[str | int]:
    """What each command of ``line`` runs (handler result) or its error code."""
    t = tree()
    out: list[str | int] = []
    for item in parse(line):
        if isinstance(item, ScpiError):
            out.append(item.code)
            break
        try:
            result = t.execute(item)
        except ScpiError as exc:
            out.append(exc.code)
            continue
        assert result is not None
        out.append(result)
    return out


@pytest.mark.parametrize(
    "line",
    [
        ":SOURce:CURRent:LEVel 1",
        ":SOUR:CURR 1",
        "sour:curr:lev 1",
        "SOUR:CURR:LEV:IMM:AMPL 1",
        ":source1:current:level:immediate:amplitude 1",
        "SoUr:CuRrEnT 1",
        ":SOUR:CURR:AMPL 1",
    ],
)
def test_long_short_and_optional_nodes_resolve_to_one_command(line: str) -> None:
    assert resolve(line) == ["level"]


@pytest.mark.parametrize(
    ("line", "code"),
    [
        (":SOURC:CURR 1", -113),  # neither short nor long form
        (":SOUR:CURRE 1", -113),
        (":SOUR2:CURR 1", -114),  # only [1] is allowed
        (":SOUR:CURR1 1", -114),
        (":SOUR:CURR:BOGUS 1", -113),
        (":SOUR:CURR:LEV:LEV 1", -113),
        (":SOUR$CURR 1", -102),
    ],
)
def test_bad_headers_carry_the_standard_error_numbers(line: str, code: int) -> None:
    assert resolve(line) == [code]


def test_a_command_after_a_semicolon_continues_at_the_same_level() -> None:
    # :SOUR:CURR:VLIM sets the path to SOUR:CURR, so LEV is :SOUR:CURR:LEV
    assert resolve(":SOUR:CURR:VLIM 2;LEV 1") == ["vlim", "level"]
    # :SOUR:CURR sets the path to SOUR: VLIM alone is :SOUR:VLIM, undefined
    assert resolve(":SOUR:CURR 1;VLIM 2") == ["level", -113]
    # a leading colon goes back to the root
    assert resolve(":SOUR:CURR 1;:SOUR:CURR:VLIM 2") == ["level", "vlim"]
    # common commands do not move the path
    assert resolve(":SOUR:CURR:VLIM 2;*IDN?;LEV 1") == ["vlim", "idn", "level"]


def test_the_optional_root_node_makes_func_the_sense_function() -> None:
    assert resolve(':FUNC "VOLT"') == ["sense-func"]
    assert resolve(':SENS:FUNC "VOLT"') == ["sense-func"]
    assert resolve(":SOUR:FUNC CURR") == ["source-func"]


def test_a_parse_error_discards_the_rest_of_the_line() -> None:
    assert resolve(":SOUR:CURR 1,;:SOUR:CURR:VLIM 2") == [-102]
    assert resolve(':SOUR:CURR "1;:SOUR:CURR:VLIM 2') == [-151]


def test_query_and_command_forms_are_distinct() -> None:
    assert resolve(":SOUR:CURR:VLIM?") == ["vlim?"]
    assert resolve(":SOUR:CURR?") == [-113]  # no query handler registered here
    assert resolve("*IDN?") == ["idn"]
    assert resolve("*IDN") == [-113]


def test_quoted_strings_keep_separators_and_doubled_quotes() -> None:
    params = split_params("\"def;buf,1\", READ ,  'it''s'")
    assert params == (Param("def;buf,1", True), Param("READ"), Param("it's", True))
    commands = [c for c in parse(':READ? "a;b", READ;*IDN?') if isinstance(c, Command)]
    assert [c.header for c in commands] == [("READ",), ("*IDN",)]
    assert commands[0].params[0] == Param("a;b", True)


@pytest.mark.parametrize("text", ['"unterminated', "1,", ",1", "1,,2"])
def test_malformed_parameter_lists_are_errors(text: str) -> None:
    with pytest.raises(ScpiError) as err:
        split_params(text)
    assert err.value.code in (-102, -151)


@pytest.mark.parametrize(
    ("text", "unit", "expected"),
    [
        ("1e-3", "A", 1e-3),
        ("+.5", "V", 0.5),
        ("10mA", "A", 0.01),
        ("10 MA", "A", 0.01),  # SCPI: M is milli; with the unit A, "MA" reads as milli-amp
        ("2.5uA", "A", 2.5e-6),
        ("1.5KV", "V", 1500.0),
        ("3V", "V", 3.0),
        ("100nA", "A", 1e-7),
    ],
)
def test_numbers_with_suffixes(text: str, unit: str, expected: float) -> None:
    assert Param(text).number(unit) == pytest.approx(expected)


def test_min_max_def_and_range() -> None:
    p = dict(minimum=-1.05, maximum=1.05, default=0.0)
    assert Param("MAX").number("A", **p) == 1.05
    assert Param("minimum").number("A", **p) == -1.05
    assert Param("DEF").number("A", **p) == 0.0
    with pytest.raises(ScpiError) as err:
        Param("2").number("A", **p)
    assert err.value.code == -222
    with pytest.raises(ScpiError) as err:
        Param("1mV").number("A", **p)
    assert err.value.code == -131
    with pytest.raises(ScpiError) as err:
        Param("abc").number("A", **p)
    assert err.value.code == -104
    with pytest.raises(ScpiError) as err:
        Param('"1"', quoted=True).number("A", **p)
    assert err.value.code == -104


def test_booleans_and_character_data() -> None:
    assert [Param(t).boolean() for t in ("ON", "off", "1", "0", "0.4", "0.6")] == [
        True,
        False,
        True,
        False,
        False,
        True,
    ]
    assert Param("himp").choice("NORMal", "HIMPedance") == "HIMPedance"
    assert Param("HIMPEDANCE").choice("NORMal", "HIMPedance") == "HIMPedance"
    for bad in ("HIMPE", "HI"):
        with pytest.raises(ScpiError) as err:
            Param(bad).choice("NORMal", "HIMPedance")
        assert err.value.code == -141


def test_parameter_counts() -> None:
    cmd = Command(("OUTP",), False, ())
    with pytest.raises(ScpiError) as err:
        cmd.expect(1)
    assert err.value.code == -109
    cmd = Command(("OUTP",), False, (Param("ON"), Param("OFF")))
    with pytest.raises(ScpiError) as err:
        cmd.expect(1)
    assert err.value.code == -108


def test_bad_patterns_are_refused_at_definition() -> None:
    with pytest.raises(ValueError, match="bad SCPI pattern"):
        compile_pattern(":SOURce[:CURRent")


PATTERN_WORDS = ["SOURce", "CURRent", "LEVel", "IMMediate", "AMPLitude"]


@given(
    forms=st.lists(st.sampled_from(["long", "short"]), min_size=5, max_size=5),
    cases=st.lists(st.sampled_from(["upper", "lower", "as-is"]), min_size=5, max_size=5),
    keep=st.lists(st.booleans(), min_size=3, max_size=3),
    colon=st.booleans(),
)
def test_any_spelling_of_the_level_header_resolves(
    forms: list[str], cases: list[str], keep: list[bool], colon: bool
) -> None:
    words = []
    for i, (word, form, case) in enumerate(zip(PATTERN_WORDS, forms, cases, strict=True)):
        if i >= 2 and not keep[i - 2]:
            continue  # optional nodes may go
        text = word if form == "long" else short_form(word)
        text = {"upper": text.upper(), "lower": text.lower(), "as-is": text}[case]
        words.append(text)
    line = (":" if colon else "") + ":".join(words) + " 1e-3"
    assert resolve(line) == ["level"]
