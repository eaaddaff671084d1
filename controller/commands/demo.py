"""Run the bundled heat-therapy campaign and its control on the simulated rig, and compare.

Both protocols (protocols/heat-therapy-LiBH4.yaml and protocols/control-no-therapy-
LiBH4.yaml) run to the short on the in-process software rig in virtual time — about a
week of rig time each — then each gets a report and the two a comparison (cycles to
short: the paper's > 130 with therapy vs ≈ 38 without). Written to --out (default
./demo): data/ (the journals), report-therapy/, report-control/, compare/ and a snapshot
of the live console taken mid-campaign (console.svg, console.txt). The README's figure
and console snapshot are made with `heatcycler demo --out docs/demo`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

PROTOCOLS = {
    "therapy": "heat-therapy-LiBH4.yaml",
    "control": "control-no-therapy-LiBH4.yaml",
}
#: the console snapshot is taken at this cycle of the post-therapy cycling
SNAPSHOT_CYCLE = 40


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", type=Path, default=Path("demo"), metavar="DIR", help="where to write (./demo)"
    )
    parser.add_argument("--seed", type=int, default=0, help="the software rig's seed (0)")
    parser.add_argument(
        "--protocols",
        type=Path,
        default=None,
        metavar="DIR",
        help="where the bundled protocols are (default: the repo's protocols/)",
    )


def protocols_dir(given: Path | None) -> Path:
    from controller.problems import UserError

    candidates = [given] if given is not None else []
    candidates += [Path("protocols"), Path(__file__).resolve().parents[2] / "protocols"]
    for d in candidates:
        if d is not None and (d / PROTOCOLS["therapy"]).exists():
            return d
    raise UserError(
        "the bundled protocols are not here",
        "run from the repository, or pass --protocols DIR (the repo's protocols/)",
    )


class SnapshotTaker:
    """An observer that keeps the run's status the first time the cycling after the
    therapy reaches ``SNAPSHOT_CYCLE`` (what a technician would see on the console)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.status: Any = None
        self.events: list[Any] = []

    def started(self, status: Any) -> None:
        self.inner.started(status)

    def update(self, status: Any) -> None:
        self.inner.update(status)
        step = status.step
        if (
            self.status is None
            and step is not None
            and step.kind == "cycle"
            and status.cycle >= SNAPSHOT_CYCLE + 5
        ):
            self.status = status

    def event(self, event: Any, status: Any) -> None:
        self.inner.event(event, status)

    def finished(self, status: Any) -> None:
        self.inner.finished(status)

    def close(self) -> None:
        self.inner.close()


def run(args: argparse.Namespace) -> int:
    import sys

    from controller.rig import simulated_rig
    from controller.runner.session import RunOptions, start_run
    from controller.ui.compare import load_compared, write_compare
    from controller.ui.console import make_console, snapshot
    from controller.ui.locate import open_journal
    from controller.ui.report import write_report

    source = protocols_dir(args.protocols)
    out: Path = args.out
    data = out / "data"
    rig = simulated_rig(data, seed=args.seed)
    journals: dict[str, Path] = {}
    taker: SnapshotTaker | None = None
    for name, file in PROTOCOLS.items():
        print(f"demo: {name}: {source / file} on the simulated rig (virtual time)", flush=True)

        def observe(telemetry: Any, name: str = name) -> Any:
            nonlocal taker
            inner = make_console(sys.stdout, mode="plain", link=lambda: "journal-only")
            if name == "therapy":
                taker = SnapshotTaker(inner)
                return taker
            return inner

        outcome = start_run(
            source / file,
            rig,
            data_dir=data,
            options=RunOptions(virtual=True, seed=args.seed, mqtt="off", observer_factory=observe),
        )
        journals[name] = outcome.journal
    compared = []
    for name, path in journals.items():
        with open_journal(path, data) as reader:
            report = write_report(reader, path, out / f"report-{name}")
            compared.append(load_compared(reader, path))
        print(f"demo: report of the {name} run in {report.out}")
    files = write_compare(compared, out / "compare")
    if taker is not None and taker.status is not None:
        snapshot(taker.status, "journal-only", out / "console.svg")
        print(f"demo: console snapshot {out / 'console.svg'}")
    for name, c in zip(journals, compared, strict=True):
        shorted = (
            f"shorted after {c.cycles_to_short} cycles"
            if c.cycles_to_short is not None
            else f"no short in {c.cycles_completed} cycles"
        )
        print(f"demo: {name:8s} {c.protocol}: {hours_text(c.therapy_s)} at ≥ 150 °C, {shorted}")
    print("demo: comparison:", ", ".join(str(f) for f in files))
    return 0


def hours_text(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h"
