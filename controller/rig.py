"""The rig configuration: which instruments, their limits, PID gains, broker, data.

A second YAML file describes the rig (``deploy/rig.example.yaml``). Its limits win over a
protocol's: a protocol that asks for more than the rig allows is refused before anything
is energised. ``--sim`` uses :func:`simulated_rig`.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from controller.protocol import Model, problem
from controller.units import (
    Current,
    Duration,
    Power,
    Temperature,
    TemperatureDelta,
    TemperatureRate,
    TemperatureTime,
    Voltage,
)
from drivers.heater_board import TTL_MAX, TTL_MIN


class SmuDriver(StrEnum):
    KEITHLEY_2450 = "keithley2450"
    KEYSIGHT_B2900 = "keysight_b2900"


class SmuConfig(Model):
    """Source-measure unit. ``resource`` is a VISA resource string, or ``sim`` for the
    in-process software rig."""

    driver: SmuDriver = SmuDriver.KEITHLEY_2450
    resource: str = Field(
        description="e.g. TCPIP::192.168.1.50::5025::SOCKET or "
        "USB0::0x05E6::0x2450::04412345::INSTR"
    )
    visa_backend: str = Field("@py", description="pyvisa backend: '@py' (pyvisa-py) or '@ivi'")
    channel: int = Field(1, ge=1, le=2, description="B2902A has two channels")
    timeout: Duration = Field(2.0, description="every instrument call times out after this")
    current_max: Current = Field(0.1, description="largest |current| this rig may source")
    voltage_max: Voltage = Field(20.0, description="largest |voltage| / compliance allowed")
    output_off_mode: Literal["himp"] = Field(
        "himp",
        description="output off opens the relay (high impedance); NORMal would source 0 V "
        "and discharge the cell, so it is not offered",
    )
    working_electrode: Literal["hi", "lo"] = Field(
        "hi",
        description="which SMU terminal the working electrode is wired to; heatcycler's "
        "+current plates the working electrode, so with `hi` a plating current is sourced "
        "negative (out of LO)",
    )
    nplc: float = Field(1.0, ge=0.01, le=10, description="integration time in power-line cycles")
    remote_sense: bool = Field(True, description="4-wire sense at the cell")


class PidGains(Model):
    """Gains per kelvin of error; the output is a heater duty fraction 0..1.

    The defaults are ``heatcycler autotune --setpoint 160degC --sim`` on the simulated
    block (≈ 90 J/K, 100 W, ≈ 3 s dead time): Tyreus–Luyben PI from the relay experiment.
    Tune a real rig with ``heatcycler autotune --rig RIG --write``.
    """

    kp: float = Field(0.1618, ge=0, description="duty per K of error")
    ki: float = Field(0.00644, ge=0, description="duty per K·s of integrated error")
    kd: float = Field(
        0.0,
        ge=0,
        description="duty per K/s, on the filtered reading; 0 (PI): 0.25 K sensor steps make "
        "D noisy and a lag-dominated block gains little from it",
    )


class HeaterConfig(Model):
    port: str = Field(description="serial device, e.g. /dev/heatcycler-heater, or `sim`")
    baudrate: int = 115200
    timeout: Duration = 0.5
    lease: Duration = Field(3.0, description="the board drops the duty to 0 after this")
    power: Power = Field(100.0, description="heater cartridge power, for planning")
    pid: PidGains = PidGains()
    max_ramp_up: TemperatureRate = Field(20 / 60, description="fastest heating ramp allowed")
    max_ramp_down: TemperatureRate = Field(
        5 / 60, description="fastest cooling ramp the block achieves (passive cooling)"
    )
    period: Duration = Field(1.0, description="control period of the PID loop")
    heat_capacity: float = Field(
        90.0,
        gt=0,
        description="J/K of the block and cell holder: the loop's ramp feedforward "
        "(heatcycler autotune measures it)",
    )
    loss: float = Field(
        0.1,
        gt=0,
        description="W/K from the block to the room: the first estimate of the holding duty "
        "(the loop learns the real value while holding; heatcycler autotune measures it)",
    )

    @model_validator(mode="after")
    def _lease_fits(self) -> HeaterConfig:
        # the board takes leases of TTL_MIN…TTL_MAX only (firmware-sim/PROTOCOL.md), and a
        # lease no longer than the control period lets the duty drop between two ticks
        if not TTL_MIN <= self.lease <= TTL_MAX:
            raise problem(
                f"{self.lease:g} s is outside what the board accepts ({TTL_MIN:g}…{TTL_MAX:g} s)",
                "the lease is how long the board heats without hearing from the host: "
                "keep it short, a few control periods, e.g. lease: 3 s",
                "lease",
            )
        if self.lease <= self.period:
            raise problem(
                f"{self.lease:g} s is not longer than heater.period ({self.period:g} s): the "
                "duty would drop to 0 between two control ticks",
                f"e.g. lease: {min(3 * self.period, TTL_MAX):g} s",
                "lease",
            )
        return self


class SafetyLimits(Model):
    """Safety supervisor thresholds; defaults from DESIGN.md. The rig may tighten them."""

    temperature_max: Temperature = Field(185.0, description="hard maximum reading")
    setpoint_max: Temperature = Field(170.0, description="no setpoint above this")
    temperature_min: Temperature = Field(5.0, description="below this: broken wire")
    thermocouple_fault_reads: int = Field(3, ge=1, description="fault bits N reads in a row")
    stale_after: Duration = Field(3.0, description="no new reading for this long")
    heating_rise: TemperatureDelta = Field(2.0, description="after a raise, rise at least this…")
    heating_within: Duration = Field(60.0, description="…within this time")
    runaway_band: TemperatureDelta = Field(3.0, description="below setpoint − this while holding…")
    runaway_integral: TemperatureTime = Field(300.0, description="…for this many K·s")
    overshoot_instant: TemperatureDelta = Field(10.0, description="above setpoint by this at once")
    overshoot_sustained: TemperatureDelta = Field(5.0, description="above setpoint by this…")
    overshoot_for: Duration = Field(60.0, description="…for this long")
    heating_while_off_rise: TemperatureDelta = Field(
        3.0, description="rising this much with duty 0…"
    )
    heating_while_off_within: Duration = Field(60.0, description="…within this time")
    heating_while_off_after: Duration = Field(
        10.0,
        description="…counted from this long after the duty went to 0 (the sensor lags the "
        "block, which keeps rising for a few seconds after a full-power approach)",
    )
    missed_reads: int = Field(2, ge=1, description="host trips after this many missed reads")

    @model_validator(mode="after")
    def _ordered(self) -> SafetyLimits:
        if self.setpoint_max >= self.temperature_max:
            raise problem(
                f"safety.setpoint_max ({self.setpoint_max:g} degC) must be below "
                f"safety.temperature_max ({self.temperature_max:g} degC)",
                "leave headroom for overshoot, e.g. setpoint_max: 170 degC and "
                "temperature_max: 185 degC",
            )
        if self.temperature_min >= self.setpoint_max:
            raise problem("safety.temperature_min must be below setpoint_max", "e.g. 5 degC")
        return self


class MqttConfig(Model):
    """The broker this rig publishes to and takes commands from (controller/telemetry/)."""

    url: str = Field(description="mqtt://host:1883 or mqtts://host:8883")
    username: str | None = None
    password_file: Path | None = Field(None, description="file holding the password")
    password_env: str | None = Field(None, description="environment variable holding it")
    ca_file: Path | None = Field(None, description="CA bundle that signed the broker's cert")
    cert_file: Path | None = Field(None, description="client certificate (optional)")
    key_file: Path | None = Field(None, description="client key (with cert_file)")
    prefix: str = Field(
        "heatcycler",
        pattern=r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$",
        description="topics live under <prefix>/<rig>/…",
    )
    homeassistant: bool = Field(False, description="publish Home Assistant MQTT discovery")
    homeassistant_prefix: str = Field(
        "homeassistant", pattern=r"^[A-Za-z0-9_.-]+$", description="HA discovery prefix"
    )
    keepalive: int = Field(30, ge=5)
    client_id: str | None = Field(
        None, max_length=128, description="MQTT client id; default heatcycler-<rig>"
    )
    commands: bool = Field(True, description="accept pause/resume/abort/status over MQTT")
    batch_samples: int = Field(500, ge=1, le=5000, description="samples per telemetry message")
    status_interval: Duration = Field(5.0, description="refresh of the retained status")
    reconnect_max: Duration = Field(10.0, description="longest wait between reconnects")
    drain_timeout: Duration = Field(30.0, description="end of run: wait this long to publish")

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        scheme, sep, rest = url.partition("://")
        if not sep or scheme not in ("mqtt", "mqtts") or not rest.strip("/"):
            raise problem(
                f"{url!r} is not an MQTT URL",
                "write mqtt://host:1883 (plain) or mqtts://host:8883 (TLS)",
            )
        if "@" in rest and ":" in rest.split("@", 1)[0]:
            raise problem(
                "mqtt.url must not carry a password",
                "put it in a file (mqtt.password_file) or an environment variable "
                "(mqtt.password_env) so that it never shows in logs or `ps`",
            )
        return url

    @model_validator(mode="after")
    def _credentials(self) -> MqttConfig:
        if self.password_file is not None and self.password_env is not None:
            raise problem(
                "mqtt: give password_file or password_env, not both",
                "keep the one your deployment uses",
            )
        if self.key_file is not None and self.cert_file is None:
            raise problem("mqtt.key_file needs mqtt.cert_file", "add the client certificate")
        return self


class ResumePolicy(StrEnum):
    AUTO = "auto"  # resume an interrupted run on boot
    NEVER = "never"  # leave it for a technician (`heatcycler resume`)


class ResumeConfig(Model):
    on_boot: ResumePolicy = ResumePolicy.AUTO
    max_gap: Duration = Field(
        7200.0, description="refuse to resume automatically after a longer outage"
    )


class SimConfig(Model):
    """Settings of the software rig behind `sim` resources."""

    seed: int = 0
    ambient: Temperature = 25.0
    realtime: bool = Field(False, description="wall-clock pace instead of virtual time")


class RigConfig(Model):
    rig: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$", description="rig id, in topics")
    smu: SmuConfig
    heater: HeaterConfig
    safety: SafetyLimits = SafetyLimits()
    mqtt: MqttConfig | None = None
    data_dir: Path = Path("/var/lib/heatcycler")
    resume: ResumeConfig = ResumeConfig()
    sim: SimConfig | None = None

    @property
    def simulated(self) -> bool:
        return self.smu.resource == "sim" or self.heater.port == "sim"


def simulated_rig(data_dir: Path | None = None, seed: int = 0) -> RigConfig:
    """The built-in rig of ``--sim``: the software rig, in-process, in virtual time."""
    return RigConfig.model_validate(
        {
            "rig": "sim",
            "smu": {"resource": "sim", "current_max": "100 mA", "voltage_max": "20 V"},
            "heater": {"port": "sim"},
            "data_dir": str(data_dir or Path("data")),
            "sim": {"seed": seed},
        }
    )
