"""Plot a simulated Li|LiBH4|Li cycling trace at 125 °C: soft shorts, then the hard short.

    uv run python firmware-sim/plot_cell.py [--seed 0] [--out firmware-sim/cell-trace-125C.png]

Rehearses the bundled ``control-no-therapy-LiBH4`` protocol on the cell physics alone
(1 s samples, no instrument noise) and draws the whole run, its last cycles, and one soft
short up close.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib
import numpy as np
from firmware_sim.cell_calibration import bundled
from firmware_sim.rehearse import rehearse

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=HERE / "cell-trace-125C.png")
    args = parser.parse_args(argv)
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run = rehearse(bundled("control-no-therapy-LiBH4"), seed=args.seed, trace_every=1.0)
    t = np.array([s.time for s in run.trace]) / 3600
    v = np.array([s.voltage for s in run.trace])
    temperature = np.array([s.temperature for s in run.trace])
    hard = run.hard_short_time
    assert hard is not None, "the control cell did not short"
    soft = [e for e in run.cell.events if e.kind == "soft_short"]
    cycles = run.step("no-therapy").cycles
    cycle_h = 70 / 60

    # what an instrument still sourcing the last current would read for a minute after
    last = run.trace[-1]
    for _ in range(60):
        run.cell.advance(1.0, last.current, last.temperature)
        t = np.append(t, t[-1] + 1 / 3600)
        v = np.append(v, run.cell.voltage(last.current, last.temperature))
        temperature = np.append(temperature, last.temperature)

    fig = plt.figure(figsize=(10, 10), constrained_layout=True)
    grid = fig.add_gridspec(3, 2)
    axes = [fig.add_subplot(grid[0, :]), fig.add_subplot(grid[1, :])]
    axes += [fig.add_subplot(grid[2, 0]), fig.add_subplot(grid[2, 1])]
    ax = axes[0]
    ax.plot(t, v, lw=0.4, color="tab:blue")
    ax.set_ylabel("voltage / V")
    ax.set_xlabel("test time / h")
    ax.set_title(
        f"Li|LiBH4|Li, 2 mA/cm², 125 °C, no therapy (seed {args.seed}): "
        f"5 pre-cycles, then {cycles} cycles to the hard short"
    )
    twin = ax.twinx()
    twin.plot(t, temperature, color="tab:red", lw=0.8, alpha=0.6)
    twin.set_ylabel("block temperature / °C", color="tab:red")
    ax.axvline(hard / 3600, color="k", ls="--", lw=0.8)
    for e in soft:
        ax.axvline(e.time / 3600, color="tab:orange", lw=0.5, alpha=0.6)

    ax = axes[1]
    start = hard / 3600 - 4 * cycle_h
    keep = t >= start
    ax.plot(t[keep], v[keep], lw=0.6, color="tab:blue")
    for e in soft:
        if e.time / 3600 >= start:
            ax.axvline(e.time / 3600, color="tab:orange", lw=0.6, alpha=0.7)
    ax.axvline(hard / 3600, color="k", ls="--", lw=0.8, label="hard short")
    ax.plot([], [], color="tab:orange", label="soft short (onset)")
    ax.legend(loc="lower left")
    ax.set_xlabel("test time / h")
    ax.set_ylabel("voltage / V")
    ax.set_title("the last four cycles: soft shorts come faster as the filament nears the counter")

    ax = axes[2]
    focus = next((e for e in reversed(soft) if hard - e.time > 120), soft[-1] if soft else None)
    if focus is not None:
        window = (t * 3600 >= focus.time - 30) & (t * 3600 <= focus.time + 90)
        ax.plot(t[window] * 3600 - focus.time, v[window], ".-", ms=3, lw=0.8)
        ax.set_title(
            f"a soft short: {focus.depth:.0%} collapse, τ = {focus.tau:.1f} s "
            f"(reach {focus.reach:.2f})",
            fontsize=10,
        )
    ax.set_xlabel("time from the soft short's onset / s")
    ax.set_ylabel("voltage / V")

    ax = axes[3]
    window = t * 3600 >= hard - 300
    ax.plot(t[window] * 3600 - hard, v[window] * 1e3, ".-", ms=3, lw=0.8)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_title("the hard short: ohmic, near 0 V, permanent", fontsize=10)
    ax.set_xlabel("time from the hard short / s")
    ax.set_ylabel("voltage / mV")
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}: {len(soft)} soft shorts, hard short at {hard / 3600:.2f} h")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
