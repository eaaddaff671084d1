"""Building the instruments a rig file names: transport + driver, identified.

``await open_source_meter(rig.smu)`` and ``await open_heater_board(rig.heater)`` return
ready drivers (the identity checked, nothing energised, nothing configured). For the
software rig (``resource: sim`` / ``port: sim``) the caller passes the firmware as a
``LineDevice`` (``device=``): the same driver code runs over an :class:`InProcessTransport`
carrying the same bytes. ``drivers`` never imports the simulator: the one place that
builds a simulated rig hands its devices in.

The configs are read by attribute (``controller.rig.SmuConfig``/``HeaterConfig``); the
drivers stay instrument-native: a current is + out of the SMU's HI terminal whatever
``smu.working_electrode`` says — mapping heatcycler's "+ plates the working electrode"
onto that is the controller's cell channel's job.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from drivers.base import HeaterBoard, InstrumentError, SourceMeter
from drivers.heater_board import HeaterBoardDriver
from drivers.keithley2450 import Keithley2450
from drivers.keysight_b2900 import KeysightB2900
from drivers.transport import InProcessTransport, LineDevice, Transport

if TYPE_CHECKING:
    from controller.rig import HeaterConfig, RigConfig, SmuConfig

SIM = "sim"


def source_meter_for(config: SmuConfig, transport: Transport) -> SourceMeter:
    """The driver ``smu.driver`` names, over ``transport``, with the rig's limits."""
    driver = str(config.driver)
    if driver == "keithley2450":
        return Keithley2450(
            transport, current_max=config.current_max, voltage_max=config.voltage_max
        )
    if driver == "keysight_b2900":
        return KeysightB2900(
            transport,
            channel=config.channel,
            current_max=config.current_max,
            voltage_max=config.voltage_max,
        )
    raise InstrumentError(
        f"no driver for smu.driver {driver!r}", "smu.driver: keithley2450 or keysight_b2900"
    )


async def smu_transport(config: SmuConfig, device: LineDevice | None = None) -> Transport:
    if config.resource == SIM:
        if device is None:
            raise InstrumentError(
                "smu.resource is `sim` but no simulated SMU was given",
                "run with --sim (the simulated rig), or put a VISA resource in smu.resource",
            )
        return InProcessTransport(device, name="sim SMU", timeout=config.timeout)
    from drivers.visa_transport import VisaTransport

    return await VisaTransport.open(
        config.resource, backend=config.visa_backend, timeout=config.timeout
    )


async def board_transport(config: HeaterConfig, device: LineDevice | None = None) -> Transport:
    if config.port == SIM:
        if device is None:
            raise InstrumentError(
                "heater.port is `sim` but no simulated board was given",
                "run with --sim (the simulated rig), or put the serial port in heater.port",
            )
        return InProcessTransport(device, name="sim heater board", timeout=config.timeout)
    from drivers.serial_transport import SerialTransport

    return await SerialTransport.open(config.port, baudrate=config.baudrate, timeout=config.timeout)


async def open_source_meter(
    config: SmuConfig, *, device: LineDevice | None = None, identify: bool = True
) -> SourceMeter:
    """Open ``smu.resource`` and check it is the instrument ``smu.driver`` drives."""
    smu = source_meter_for(config, await smu_transport(config, device))
    if identify:
        try:
            await smu.identify()
        except BaseException:
            await smu.close()
            raise
    return smu


async def open_heater_board(
    config: HeaterConfig, *, device: LineDevice | None = None, identify: bool = True
) -> HeaterBoard:
    """Open ``heater.port`` and check the board answers as an HCB-1."""
    board = HeaterBoardDriver(await board_transport(config, device))
    if identify:
        try:
            await board.identify()
        except BaseException:
            await board.close()
            raise
    return board


@dataclass
class Instruments:
    smu: SourceMeter
    board: HeaterBoard

    async def close(self) -> None:
        try:
            await self.smu.close()
        finally:
            await self.board.close()


async def open_instruments(
    rig: RigConfig,
    *,
    smu_device: LineDevice | None = None,
    board_device: LineDevice | None = None,
) -> Instruments:
    """Both instruments of a rig file (the board first: it keeps itself safe)."""
    board = await open_heater_board(rig.heater, device=board_device)
    try:
        smu = await open_source_meter(rig.smu, device=smu_device)
    except BaseException:
        await board.close()
        raise
    return Instruments(smu, board)
