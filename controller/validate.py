"""Validation of protocol and rig files: every problem, all at once, located in the text.

Two phases. Phase 1 is the schema (pydantic): structure, types, units and the rules inside
each step. Phase 2 needs a valid protocol: the limits of the protocol and the rig
(setpoints, currents for this cell area, voltage window vs compliance, ramp rates).
"""

from __future__ import annotations

import difflib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from controller import protocol as proto
from controller.problems import Problem, UserError, key_path
from controller.source import Source, load_yaml, plain

if TYPE_CHECKING:  # the rig model is built only when a rig is given (startup time)
    from controller.rig import RigConfig


@dataclass
class Loaded:
    """A protocol file after validation: the model (if valid), its text and its problems."""

    source: Source | None
    protocol: proto.Protocol | None
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.protocol is not None and not self.problems


def load_protocol(
    path: Path | str, rig: RigConfig | None = None, text: str | None = None
) -> Loaded:
    """Parse and validate one protocol file; never raises for a user mistake."""
    try:
        src = load_yaml(path, text)
    except UserError as exc:
        problems = exc.problems or [Problem(str(path), 1, 1, "", exc.message, exc.hint)]
        return Loaded(None, None, problems)
    if not isinstance(src.data, dict):
        what = _what_it_is(src.data)
        return Loaded(
            src,
            None,
            [
                Problem(
                    src.file,
                    1,
                    1,
                    "",
                    f"a protocol file must be a mapping (name, cell, safety, steps); "
                    f"this one is {what}",
                    "start from a file in protocols/, e.g. protocols/ccd-ramp-125C.yaml, "
                    "and keep its `key: value` lines",
                )
            ],
        )
    problems, bad_steps = _step_shape_problems(src)
    try:
        model = proto.Protocol.model_validate(plain(src.data))
    except ValidationError as exc:
        for p in translate(exc, src, proto.Protocol):
            if not any(
                p.path == b or p.path.startswith(b + ".") or p.path.startswith(b + "[")
                for b in bad_steps
            ):
                problems.append(p)
        return Loaded(src, None, _dedupe(problems))
    if problems:
        return Loaded(src, None, problems)
    problems = _dedupe(
        [src_problem(src, loc, what, hint) for loc, what, hint in limit_problems(model, rig)]
    )
    return Loaded(src, model if not problems else None, problems)


def load_rig(path: Path | str) -> RigConfig:
    """Parse and validate a rig file; raises UserError with every problem located."""
    from controller.rig import RigConfig

    src = load_yaml(path)
    if not isinstance(src.data, dict):
        raise UserError(
            f"{path}: a rig file must be a mapping (rig, smu, heater, …)",
            "start from deploy/rig.example.yaml",
        )
    try:
        return RigConfig.model_validate(plain(src.data))
    except ValidationError as exc:
        problems = _dedupe(translate(exc, src, RigConfig))
        raise UserError(problems[0].message, problems[0].hint, problems) from None


def _what_it_is(data: Any) -> str:
    if data is None:
        return "empty"
    if isinstance(data, list):
        return "a list"
    if isinstance(data, str):
        short = data if len(data) <= 30 else data[:27] + "..."
        return f"plain text ({short!r})"
    if isinstance(data, bool):
        return "a yes/no value"
    if isinstance(data, int | float):
        return f"a number ({data!r})"
    return f"a {type(data).__name__}"  # pragma: no cover - YAML has no other top-level kinds


def src_problem(
    src: Source, loc: tuple[Any, ...], what: str, hint: str, *, at_key: bool = False
) -> Problem:
    line, col = src.position(loc, at_key=at_key)
    return Problem(src.file, line, col, key_path(loc), what, hint)


def _dedupe(problems: list[Problem]) -> list[Problem]:
    seen: set[tuple[str, str]] = set()
    out = []
    for p in sorted(problems, key=lambda p: (p.line, p.col)):
        if (p.path, p.message) not in seen:
            seen.add((p.path, p.message))
            out.append(p)
    return out


# ------------------------------------------------------------ phase 1: the schema


def _step_shape_problems(src: Source) -> tuple[list[Problem], set[str]]:
    """A step is a mapping with one known kind; say precisely what is off, before pydantic.

    Returns the problems and the key paths of the malformed steps (whose pydantic errors
    would only repeat them)."""
    problems: list[Problem] = []
    bad: set[str] = set()

    def check(steps: Any, loc: tuple[Any, ...]) -> None:
        if not isinstance(steps, list):
            return
        for i, step in enumerate(steps):
            here = (*loc, i)
            before = len(problems)
            _check_one(step, here)
            if len(problems) > before:
                bad.add(key_path(here))
            if (
                isinstance(step, dict)
                and list(step) == ["repeat"]
                and isinstance(step["repeat"], dict)
            ):
                check(step["repeat"].get("steps"), (*here, "repeat", "steps"))

    def _check_one(step: Any, here: tuple[Any, ...]) -> None:
        if step is None:
            problems.append(
                src_problem(
                    src,
                    here,
                    "empty step: a `-` with nothing after it",
                    "write a step after the `-` (e.g. `- rest: {for: 10 min}`) or remove the line",
                )
            )
            return
        if not isinstance(step, dict):
            problems.append(
                src_problem(
                    src,
                    here,
                    f"a step must be a mapping such as `rest: {{for: 1 h}}`, got {step!r}",
                    f"write `- kind: {{key: value, …}}`; step kinds: {', '.join(proto.STEP_KINDS)}",
                )
            )
            return
        keys = [str(k) for k in step]
        known = [k for k in keys if k in proto.STEP_KINDS]
        unknown = [k for k in keys if k not in proto.STEP_KINDS]
        if len(keys) == 1 and not known:
            guess = difflib.get_close_matches(keys[0], proto.STEP_KINDS, n=1, cutoff=0.5)
            problems.append(
                src_problem(
                    src,
                    (*here, keys[0]),
                    f"unknown step kind {keys[0]!r}",
                    f"did you mean {guess[0]!r}?"
                    if guess
                    else f"step kinds: {', '.join(proto.STEP_KINDS)}",
                    at_key=True,
                )
            )
        elif len(known) > 1:
            problems.append(
                src_problem(
                    src,
                    here,
                    f"one list item holds several steps ({', '.join(known)})",
                    "start each step with its own `- ` line",
                )
            )
        elif len(known) == 1 and unknown:
            kind = known[0]
            problems.append(
                src_problem(
                    src,
                    (*here, unknown[0]),
                    f"{unknown[0]!r} is beside the step kind {kind!r}, not inside it",
                    f"indent it under `{kind}:` (e.g. `- {kind}: {{{unknown[0]}: …}}`)",
                    at_key=True,
                )
            )
        elif not keys:
            problems.append(
                src_problem(
                    src,
                    here,
                    "empty step `{}`",
                    "write a step such as `- rest: {for: 10 min}`, or remove it",
                )
            )

    if isinstance(src.data, dict):
        check(src.data.get("steps"), ("steps",))
    return problems, bad


def _clean_loc(loc: tuple[Any, ...], data: Any) -> tuple[Any, ...]:
    """Drop pydantic's union tags from locs, keeping every key the file really has.

    ('steps', 0, 'cycle', 'cycle', 'x') -> ('steps', 0, 'cycle', 'x')."""
    out: list[Any] = []
    node = data
    i = 0
    while i < len(loc):
        part = loc[i]
        if isinstance(part, int):
            node = node[part] if isinstance(node, list) and 0 <= part < len(node) else None
            out.append(part)
            i += 1
            continue
        is_key = isinstance(node, dict) and part in node
        if (
            part in proto.STEP_KINDS
            and i + 1 < len(loc)
            and loc[i + 1] == part
            and out
            and isinstance(out[-1], int)
        ):
            i += 1  # the discriminator's tag; the next part is the key
            continue
        if not is_key and isinstance(part, str) and ("[" in part or part in {"Until", "Threshold"}):
            i += 1  # a union member's tag, not a key of the file
            continue
        node = node[part] if is_key else None
        out.append(part)
        i += 1
    return tuple(out)


def translate(exc: ValidationError, src: Source, root: type[BaseModel]) -> list[Problem]:
    """pydantic errors -> located problems with a hint each."""
    problems = []
    for err in exc.errors(include_url=False):
        loc = _clean_loc(tuple(err["loc"]), src.data)
        kind = err["type"]
        ctx = err.get("ctx") or {}
        given = err.get("input")
        at_key = False
        if kind in ("quantity", "rule"):
            what, hint = str(ctx["what"]), str(ctx.get("hint", ""))
            if ctx.get("field"):
                loc = (*loc, str(ctx["field"]))
                at_key = bool(ctx.get("at_key"))
        elif kind == "missing" and loc:
            name = loc[-1]
            what = f"missing required key {name!r}"
            hint = _missing_hint(str(name), _example(root, loc))
            loc, at_key = loc[:-1], True
        elif kind == "extra_forbidden" and loc:
            name = str(loc[-1])
            allowed = _allowed_keys(root, loc[:-1])
            guess = difflib.get_close_matches(name, allowed, n=1, cutoff=0.5)
            what = f"unknown key {name!r}"
            if guess:
                hint = f"did you mean {guess[0]!r}?"
            else:
                hint = f"allowed here: {', '.join(allowed)}" if allowed else "remove it"
            at_key = True
        elif kind in ("enum", "literal_error"):
            expected = str(ctx.get("expected", ""))
            options = [o.strip(" '") for o in expected.replace(" or ", ",").split(",") if o.strip()]
            guess = difflib.get_close_matches(str(given), options, n=1, cutoff=0.5)
            what = f"{given!r} is not one of {expected}"
            hint = f"did you mean {guess[0]!r}?" if guess else f"use one of {expected}"
        elif kind in ("int_parsing", "int_type", "int_from_float"):
            what = f"expected a whole number, got {given!r}"
            hint = "write a plain whole number without a unit, e.g. `count: 5`"
        elif kind in ("float_parsing", "float_type"):
            what = f"expected a number, got {given!r}"
            hint = "write a plain number"
        elif kind in ("bool_parsing", "bool_type"):
            what = f"expected true or false, got {given!r}"
            hint = "write `true` or `false`"
        elif kind in ("string_type",):
            what = f"expected text, got {given!r}"
            example = _EXAMPLES.get(str(loc[-1]), "some text") if loc else "some text"
            hint = (
                f'write text, e.g. `{loc[-1]}: {example}`; quote what looks like a number: `"07"`'
            )
        elif kind in ("model_type", "model_attributes_type", "dict_type"):
            what = f"expected a mapping of keys, got {given!r}"
            allowed = _allowed_keys(root, loc)
            hint = f"keys here: {', '.join(allowed)}" if allowed else "write `key: value` lines"
        elif kind in ("list_type",):
            what = f"expected a list, got {given!r}"
            hint = (
                "write each step on its own line starting with `- `, e.g. `  - rest: {for: 10 min}`"
                if loc and loc[-1] == "steps"
                else "write a list with one `- item` per line"
            )
        elif kind in ("too_short",):
            what = "must not be empty"
            hint = (
                "add at least one step, e.g. `- rest: {for: 10 min}`"
                if loc and loc[-1] == "steps"
                else "add at least one item"
            )
        elif kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
            what = f"{given!r}: {err['msg'].lower()}"
            hint = "change the value"
        elif kind == "string_pattern_mismatch":
            what = f"{given!r} has characters that are not allowed here"
            hint = "use letters, digits, '.', '_' and '-' only"
        elif kind == "string_too_short":
            what = "must not be empty"
            hint = "write a value"
        elif kind == "step_kind":
            what = "a step must be a mapping with exactly one step kind"
            hint = f"step kinds: {', '.join(proto.STEP_KINDS)}"
        else:
            what = str(err["msg"]).removeprefix("Value error, ")
            hint = "check this value against protocols/schema.json"
        problems.append(src_problem(src, loc, what, hint, at_key=at_key))
    return _drop_implied_missing(problems)


def _drop_implied_missing(problems: list[Problem]) -> list[Problem]:
    """'missing steps' is implied by "unknown key 'setps': did you mean 'steps'?"."""
    guessed = {
        (p.path.rpartition(".")[0] if "." in p.path else "", p.hint.split("'")[1])
        for p in problems
        if p.message.startswith("unknown key") and p.hint.startswith("did you mean")
    }
    return [
        p
        for p in problems
        if not (
            p.message.startswith("missing required key")
            and (p.path, p.message.split("'")[1]) in guessed
        )
    ]


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models inside an annotation (through Optional, list, Annotated, unions)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    out: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        out += _models_in(arg)
    return out


def _models_at(root: type[BaseModel], loc: tuple[Any, ...]) -> list[type[BaseModel]]:
    models = [root]
    for part in loc:
        if isinstance(part, int):
            continue
        nxt: list[type[BaseModel]] = []
        for m in models:
            for name, info in m.model_fields.items():
                if part in (name, info.alias):
                    nxt += _models_in(info.annotation)
        models = nxt
    return models


def _allowed_keys(root: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    keys: list[str] = []
    for m in _models_at(root, loc):
        keys += [info.alias or name for name, info in m.model_fields.items()]
    return list(dict.fromkeys(keys))


#: Examples for keys whose value is not a single quantity (missing-key hints).
_EXAMPLES = {
    "name": "my-protocol",
    "label": "warm-up",
    "description": "what this protocol is for",
    "cell": "{id: S07, electrolyte: LiBH4, area: 0.785 cm^2, thickness: 1.0 mm}",
    "safety": "{voltage: {min: -1 V, max: 1 V}, temperature_max: 175 degC}",
    "voltage": "{min: -1 V, max: 1 V}",
    "id": "S07",
    "electrolyte": "LiBH4",
    "count": "5",
    "direction": "plate",
    "rig": "rig-01",
    "smu": "{resource: TCPIP::192.168.1.50::5025::SOCKET}",
    "heater": "{port: /dev/heatcycler-heater}",
    "resource": "TCPIP::192.168.1.50::5025::SOCKET",
    "port": "/dev/heatcycler-heater",
    "url": "mqtt://localhost:1883",
}


def _missing_hint(name: str, example: str) -> str:
    if name == "steps":
        return "add `steps:` and under it one step per line, e.g. `  - rest: {for: 10 min}`"
    return f"add `{name}: {example}`"


def _example(root: type[BaseModel], loc: tuple[Any, ...]) -> str:
    for m in _models_at(root, loc[:-1]):
        for name, info in m.model_fields.items():
            if loc[-1] in (name, info.alias):
                for meta in info.metadata:
                    schema = getattr(meta, "json_schema", None)
                    if isinstance(schema, dict) and schema.get("examples"):
                        return str(schema["examples"][0])
                if name in _EXAMPLES:
                    return _EXAMPLES[name]
                if "list" in str(info.annotation):
                    return "[…]"
                if _models_in(info.annotation):
                    return "{…}"
    return "…"


# ------------------------------------------------------------ phase 2: the limits


def _level(p: Any, area: float) -> tuple[float, str]:
    """(|current| in A, description) of a step defined by current or current density."""
    if getattr(p, "current", None) is not None:
        return p.current, f"{p.current * 1e3:g} mA"
    density = p.current_density if hasattr(p, "current_density") else p.max
    amps = density * area
    return amps, f"{density * 1e3:g} mA/cm^2 × {area:g} cm^2 = {amps * 1e3:g} mA"


def _temperature_changes(
    steps: list[Any], previous: float, prefix: tuple[int, ...] = ()
) -> tuple[list[tuple[tuple[int, ...], proto.TemperatureParams, float]], float]:
    """Every temperature step with the setpoint it starts from, in run order.

    A repeat is walked twice (when it repeats), so that its second iteration starts from
    the setpoint its body ends at; later iterations start from the same one."""
    out: list[tuple[tuple[int, ...], proto.TemperatureParams, float]] = []
    for i, step in enumerate(steps):
        index = (*prefix, i)
        if isinstance(step, proto.Repeat):
            for _ in range(min(step.repeat.count, 2)):
                inner, previous = _temperature_changes(step.repeat.steps, previous, index)
                out += inner
        elif isinstance(step, proto.TemperatureStep):
            out.append((index, step.temperature, previous))
            previous = step.temperature.setpoint
    return out, previous


def _duration_words(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.3g} h"
    if seconds >= 60:
        return f"{seconds / 60:.3g} min"
    return f"{seconds:.3g} s"


def _thermal_problems(
    model: proto.Protocol, rig: RigConfig | None
) -> list[tuple[tuple[Any, ...], str, str]]:
    """Ramps the rig cannot follow, and timeouts shorter than the ramp they wait for."""
    out: list[tuple[tuple[Any, ...], str, str]] = []
    ambient = rig.sim.ambient if rig is not None and rig.sim is not None else 25.0
    changes, _ = _temperature_changes(list(model.steps), ambient)
    for index, p, previous in changes:
        loc = (*proto.step_loc(index), "temperature")
        delta = p.setpoint - previous
        if delta == 0:
            continue
        heating = delta > 0
        rate = p.ramp
        if rig is not None:
            fastest = rig.heater.max_ramp_up if heating else rig.heater.max_ramp_down
            if p.ramp is not None and p.ramp > fastest * (1 + 1e-9):
                key = "heater.max_ramp_up" if heating else "heater.max_ramp_down"
                way = "heat" if heating else "cool"
                out.append(
                    (
                        (*loc, "ramp"),
                        f"ramp {p.ramp * 60:g} degC/min from {previous:g} to {p.setpoint:g} degC "
                        f"is faster than rig {rig.rig!r} can {way} ({fastest * 60:g} degC/min)",
                        f"use at most {fastest * 60:g} degC/min, or leave `ramp` out for the "
                        f"rig's maximum (rig setting {key})",
                    )
                )
            rate = fastest if p.ramp is None else min(p.ramp, fastest)
        if rate is None or p.timeout is None:
            continue
        needed = abs(delta) / rate
        if p.timeout < needed:
            out.append(
                (
                    (*loc, "timeout"),
                    f"timeout {_duration_words(p.timeout)} is shorter than the ramp from "
                    f"{previous:g} to {p.setpoint:g} degC takes ({_duration_words(needed)} at "
                    f"{rate * 60:g} degC/min)",
                    "raise the timeout, or leave it out (default: the ramp time + 30 min)",
                )
            )
    return out


def limit_problems(
    model: proto.Protocol, rig: RigConfig | None
) -> list[tuple[tuple[Any, ...], str, str]]:
    """Cross-field limits: the protocol against itself and against the rig (rig wins)."""
    out: list[tuple[tuple[Any, ...], str, str]] = []
    area = model.cell.area_cm2
    window = model.safety.voltage
    density_max = model.safety.current_density_max
    for index, step in proto.walk_steps(model.steps):
        kind = proto.step_kind(step)
        assert kind is not None
        p = proto.params(step)
        loc = (*proto.step_loc(index), kind)
        if isinstance(p, proto.HoldVoltageParams | proto.DcPolarizationParams) and not (
            window.min <= p.voltage <= window.max
        ):
            out.append(
                (
                    (*loc, "voltage"),
                    f"{p.voltage:g} V is outside the protocol's voltage window "
                    f"[{window.min:g} V, {window.max:g} V]",
                    "change the voltage or widen safety.voltage",
                )
            )
        densities: list[tuple[str, float]] = []
        if isinstance(p, proto.CcdRampParams):
            densities = [("max", p.level_density(p.levels - 1))]
        elif isinstance(p, proto.CycleParams | proto.HoldCurrentParams) and p.current_density:
            densities = [("current_density", p.current_density)]
        for name, density in densities:
            if density_max is not None and density > density_max + 1e-12:
                out.append(
                    (
                        (*loc, name),
                        f"{density * 1e3:g} mA/cm^2 is above safety.current_density_max "
                        f"({density_max * 1e3:g} mA/cm^2)",
                        "lower the current density or raise safety.current_density_max",
                    )
                )
        if isinstance(p, proto.TemperatureParams):
            if p.setpoint > model.safety.temperature_max:
                out.append(
                    (
                        (*loc, "setpoint"),
                        f"setpoint {p.setpoint:g} degC is above this protocol's "
                        f"safety.temperature_max ({model.safety.temperature_max:g} degC)",
                        "lower the setpoint or raise safety.temperature_max",
                    )
                )
            floor = rig.safety.temperature_min if rig is not None else 5.0
            if p.setpoint < floor + 10:
                kelvin = p.setpoint + 273.15
                hint = (
                    f"`K` means kelvin: {kelvin:g} K is {p.setpoint:g} degC; for degrees Celsius "
                    f"write `{kelvin:g} degC`"
                    if p.setpoint < -50
                    else "the block only heats: use a setpoint above ambient, e.g. `125 degC`"
                )
                out.append(
                    (
                        (*loc, "setpoint"),
                        f"setpoint {p.setpoint:g} degC is too cold for a heater-only block "
                        f"(it cannot cool below ambient; the broken-wire limit is {floor:g} degC)",
                        hint,
                    )
                )
        if rig is None:
            continue
        if isinstance(p, proto.TemperatureParams) and p.setpoint > rig.safety.setpoint_max:
            cap = min(rig.safety.setpoint_max, model.safety.temperature_max)
            out.append(
                (
                    (*loc, "setpoint"),
                    f"setpoint {p.setpoint:g} degC is above the setpoint cap of rig "
                    f"{rig.rig!r} ({rig.safety.setpoint_max:g} degC)",
                    f"use at most {cap:g} degC: the rig's limit (safety.setpoint_max in the rig "
                    "file) wins over the protocol's",
                )
            )
        current_steps = (proto.HoldCurrentParams, proto.CycleParams, proto.CcdRampParams)
        if isinstance(p, current_steps):
            amps, described = _level(p, area)
            if amps > rig.smu.current_max * (1 + 1e-9):
                name = (
                    "max"
                    if isinstance(p, proto.CcdRampParams)
                    else (
                        "current" if getattr(p, "current", None) is not None else "current_density"
                    )
                )
                out.append(
                    (
                        (*loc, name),
                        f"{described} is more than rig {rig.rig!r} may source "
                        f"({rig.smu.current_max * 1e3:g} mA)",
                        "lower the current density (or use a smaller cell); raise smu.current_max "
                        "in the rig file only if the instrument's range allows it",
                    )
                )
        if (
            isinstance(p, proto.HoldVoltageParams | proto.DcPolarizationParams)
            and p.current_limit > rig.smu.current_max
        ):
            out.append(
                (
                    (*loc, "current_limit"),
                    f"current_limit {p.current_limit * 1e3:g} mA is more than rig {rig.rig!r} "
                    f"may source ({rig.smu.current_max * 1e3:g} mA)",
                    f"use at most {rig.smu.current_max * 1e3:g} mA (rig setting smu.current_max)",
                )
            )
    out += _thermal_problems(model, rig)
    total = proto.executed_count(list(model.steps))
    if total > proto.MAX_EXECUTED_STEPS:
        first = next(i for i, step in enumerate(model.steps) if isinstance(step, proto.Repeat))
        out.append(
            (
                ("steps", first, "repeat", "count"),
                f"this protocol runs {total} steps once its repeats are expanded (nested "
                f"repeats multiply); at most {proto.MAX_EXECUTED_STEPS} are allowed",
                "lower the repeat counts, or repeat inside one step (`cycle` with `count:`)",
            )
        )
    if rig is not None:
        for name, value in (("min", window.min), ("max", window.max)):
            if abs(value) > rig.smu.voltage_max:
                out.append(
                    (
                        ("safety", "voltage", name),
                        f"voltage window {name} {value:g} V is beyond the compliance limit of rig "
                        f"{rig.rig!r} (±{rig.smu.voltage_max:g} V)",
                        f"narrow safety.voltage to within ±{rig.smu.voltage_max:g} V (rig setting "
                        "smu.voltage_max)",
                    )
                )
    return out
