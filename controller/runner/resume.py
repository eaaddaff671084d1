"""Continue an interrupted run from its journal (``heatcycler resume``, the service).

The journal's last checkpoint says which step ran and the executor's state then; the
samples stored after it (up to the last committed batch, ≤ ~1 s before the crash) are
replayed into that state, so nothing already done is done twice. Per-step rules live in
the executors: a soak keeps its time in band, a cycle continues the interrupted half with
the rest of its time or charge, a ``ccd_ramp`` ends as ``interrupted`` (the cell's
history changed) and its ``on_interrupt`` decides what follows. The gap is journaled
(``gap`` event: from, to, length) and test time continues across it.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from controller.journal import Journal, JournalReader, is_locked
from controller.problems import UserError
from controller.rig import RigConfig
from controller.runner.engine import RunOutcome, ServiceHooks, StartPoint
from controller.runner.session import RunOptions, execute, load_valid_protocol, run_loop

#: states a journal can be resumed from without --force
RESUMABLE = frozenset({"running", "paused", "interrupted"})


def read_start(path: Path) -> tuple[dict[str, str], StartPoint, float, dict[str, Any]]:
    """(meta, start point, last unix time, gap data) of an interrupted journal."""
    with JournalReader(path) as reader:
        meta = reader.meta()
        checkpoint = reader.last_checkpoint()
        conn = reader._conn
        last_t, last_unix = (
            max(
                [
                    float(v)
                    for table in ("samples", "events", "checkpoints")
                    if (v := conn.execute(f"SELECT max({col}) FROM {table}").fetchone()[0])
                    is not None
                ]
                or [0.0]
            )
            for col in ("t", "unix")
        )
        if checkpoint is None:
            return meta, StartPoint(t=last_t), last_unix, {"replayed": 0}
        state = checkpoint.state
        step_state = state.get("step_state")
        position = int(state.get("position", 0))
        replayed: list[tuple[float, float, float | None]] = []
        if step_state is not None and state.get("step_started"):
            rows = conn.execute(
                "SELECT t, current, temperature FROM samples WHERE seq > ? AND step = ? "
                "ORDER BY seq",
                (checkpoint.sample_seq, position + 1),
            ).fetchall()
            replayed = [(float(t), float(i), temp) for t, i, temp in rows]
        start = StartPoint(
            position=position,
            step_state=step_state,
            step_started=bool(state.get("step_started")),
            cycle=int(state.get("cycle_base", state.get("cycle", 0))),
            t=last_t,
            sample_t=state.get("sample_t"),
            replay=tuple(replayed),
            replay_from=float(state.get("t", checkpoint.t)),
        )
        return meta, start, last_unix, {"replayed": len(replayed)}


def resume_run(
    path: Path,
    rig: RigConfig,
    *,
    mqtt: str | None = None,
    hooks: ServiceHooks | None = None,
    options: RunOptions | None = None,
    force: bool = False,
) -> RunOutcome:
    """Continue the run in ``path`` on ``rig`` until it ends (see the module doc)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such journal", "give the run's .sqlite file")
    if is_locked(path):
        raise UserError(
            f"{path} is held by a running controller",
            "it is still running; stop it first (or wait for it to end)",
        )
    try:
        meta, start, last_unix, info = read_start(path)
    except Exception as exc:
        raise UserError(f"{path}: not a readable run journal ({exc})", "") from None
    state = meta.get("state", "")
    if state not in RESUMABLE and not (force and state == "faulted"):
        hint = (
            "a faulted run resumes only with --force, after the cause was fixed"
            if state == "faulted"
            else "only running, paused or interrupted runs can be resumed"
        )
        raise UserError(f"{path}: the run is {state or 'of unknown state'}", hint)
    text = meta.get("protocol_text")
    if not text:
        raise UserError(f"{path}: the journal has no protocol text", "")
    protocol = load_valid_protocol(Path(meta.get("protocol_path", "protocol.yaml")), rig, text)
    options = options or RunOptions()
    if mqtt is not None:
        options = replace(options, mqtt=mqtt)
    if hooks is not None:
        options = replace(options, hooks=hooks)
    journal = Journal.open(path, durable=not options.virtual, threaded=not options.virtual)
    if not journal.lock():
        journal.close()
        raise UserError(f"{path} is held by another controller", "")
    now_unix = time.time() if not options.virtual else last_unix + 1.0
    gap = max(0.0, now_unix - last_unix)
    start = replace(start, t=start.t + gap, gap=(start.t, start.t + gap, gap, info["replayed"]))
    journal.set_meta("state", "idle")
    run_id = meta.get("run_id", path.stem)

    async def main() -> RunOutcome:
        return await execute(protocol, rig, journal, run_id, start, options)

    return run_loop(main, virtual=options.virtual, unix_epoch=now_unix)  # type: ignore[no-any-return]
