"""The service's boot path with the real runner: an interrupted run is resumed and finished.

The interrupted journal is a real one: `heatcycler run --sim --realtime` stopped by
SIGTERM (what systemd does at shutdown). ``run_service`` then decides, calls the real
``controller.runner.resume.resume_run`` (found the way the service finds it), and systemd
— a notify socket opened by the test — hears READY with the resumed run's status and
WATCHDOG pings while it runs; the run finishes, and the service idles. A ``--sim``
journal resumes on a rebuilt in-process software rig (the cell state is not carried
over), which is what a boot test needs.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

import pytest
from servicekit import NotifySocket

from controller.journal import JournalReader
from controller.rig import RigConfig
from controller.service import boot
from controller.service.boot import BootOptions
from controller.service.clocksync import ClockState

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runner"))

from procs import (
    Facts,
    assert_one_sequence,
    assert_steps_once,
    controlled,
    cycle_protocol,
    query,
    start,
    the_journal,
    wait_journal,
    write,
)

pytestmark = pytest.mark.slow

COUNT, HALF = 3, 2.0


def sim_rig(data_dir: Path) -> RigConfig:
    """The --sim rig (its id `sim`, as in the interrupted journal), in data_dir."""
    return RigConfig.model_validate(
        {
            "rig": "sim",
            "smu": {"resource": "sim", "current_max": "100 mA", "voltage_max": "20 V"},
            "heater": {"port": "sim"},
            "data_dir": str(data_dir),
        }
    )


def test_boot_resumes_a_sigtermed_run_with_the_real_runner(
    tmp_path: Path, notify_socket: NotifySocket
) -> None:
    data = tmp_path / "data"
    protocol = write(tmp_path / "p.yaml", cycle_protocol(half=HALF, count=COUNT))
    run = start(
        tmp_path,
        "run",
        "run", str(protocol), "--sim", "--realtime", "--data-dir", str(data),
        "--console", "quiet",
    )  # fmt: skip
    with controlled(run):
        journal = the_journal(data, run)
        wait_journal(
            journal,
            lambda r: bool(query(r, "SELECT 1 FROM samples WHERE cycle = 2")),
            controller=run,
            what="cycle 2",
        )
        run.signal(signal.SIGTERM)
        assert run.wait() == 130, run.output()
    with JournalReader(journal) as reader:
        assert reader.meta()["state"] == "interrupted"

    ns = notify_socket
    stop = threading.Event()
    codes: list[int] = []

    def service() -> None:
        codes.append(
            boot.run_service(
                sim_rig(data),
                options=BootOptions(sync_timeout=0.3),
                clock_reader=lambda: ClockState(True, "test"),
                environ={"NOTIFY_SOCKET": ns.address, "WATCHDOG_USEC": "1000000"},
                stop=stop,
                signals=False,
            )
        )

    thread = threading.Thread(target=service, daemon=True)
    thread.start()
    try:
        ready = ns.wait_for(lambda m: m.startswith("READY=1"), timeout=30)
        assert f"running {journal.stem} (resumed: run {journal.stem} was interrupted" in ready
        idle = ns.wait_for(lambda m: m.startswith("READY=1\nSTATUS=idle"), timeout=60)
        assert f"run {journal.stem} ended (finished)" in idle
    finally:
        stop.set()
        thread.join(20)
    assert not thread.is_alive()
    assert codes == [0]

    texts = ns.texts()
    first_ready = texts.index(ready)
    pings_while_running = [m for m in texts[first_ready : texts.index(idle)] if m == "WATCHDOG=1"]
    assert len(pings_while_running) >= 3  # the run lasted seconds at 1 s watchdog

    facts = Facts.read(journal)
    assert facts.meta["state"] == "finished"
    assert_one_sequence(facts)
    assert_steps_once(facts, {1: "completed"})
    assert len(facts.kinds("gap")) == 1
    assert facts.result(1)["cycles_completed"] == COUNT
    assert [e.data["to"] for e in facts.kinds("state")] == [
        "running",
        "interrupted",
        "running",
        "finished",
    ]
