"""Plot the heater block's response: 25 -> 160 °C under full power, then the lease lapses.

    uv run python firmware-sim/plot_heater.py [OUT.png]

A host talks to the simulated board as the controller would — `T?` and `DUTY 1000 3000`
every second — until the thermocouple reads 160 °C, then stops refreshing the lease: the
board drops the heater 3 s later and the block coasts. The plot shows the block (= cell)
temperature, the lagging thermocouple node, the MAX31855's 0.25 °C readings and the duty.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from firmware_sim.board import frame, unframe
from firmware_sim.rig import ManualClock, SimRig

HERE = Path(__file__).resolve().parent


def simulate(seconds: float = 600.0, dt: float = 0.5) -> dict[str, list[float]]:
    clock = ManualClock()
    rig = SimRig(clock, seed=1)
    rows: dict[str, list[float]] = {k: [] for k in ("t", "block", "sensor", "reading", "duty")}
    heating = True
    t = 0.0
    while t <= seconds:
        clock.set(t)
        reply = rig.board.handle(frame("T?"))
        assert reply is not None
        fields = (unframe(reply) or "").split()
        reading, duty = float(fields[1]), int(fields[5]) / 1000
        if heating and reading >= 160.0:
            heating = False  # stop refreshing: the lease runs out 3 s later
        if heating and t % 1.0 == 0:
            rig.board.handle(frame("DUTY 1000 3000"))
        for key, value in zip(
            rows, (t, rig.heater.block, rig.heater.sensor, reading, duty), strict=True
        ):
            rows[key].append(value)
        t += dt
    return rows


def plot(rows: dict[str, list[float]], out: Path) -> None:
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=120)
    ax.plot(rows["t"], rows["block"], label="block (= cell)", color="tab:red", lw=1.6)
    ax.plot(rows["t"], rows["sensor"], label="thermocouple node (2 s lag)", color="tab:orange")
    ax.step(rows["t"], rows["reading"], where="post", label="MAX31855 reading", color="k", lw=0.7)
    ax.axhline(160.0, color="grey", ls=":", lw=0.8)
    ax.set_xlabel("time / s")
    ax.set_ylabel("temperature / °C")
    ax.set_ylim(20, 175)
    ax.set_title("Heater block, 100 W from 25 °C until the reading hits 160 °C, then off")
    duty_ax = ax.twinx()
    duty_ax.fill_between(
        rows["t"], rows["duty"], step="post", alpha=0.12, color="tab:blue", label="duty"
    )
    duty_ax.set_ylim(0, 4)
    duty_ax.set_yticks([0, 1])
    duty_ax.set_ylabel("heater duty")
    zoom = ax.inset_axes((0.47, 0.42, 0.3, 0.42))
    window = [i for i, t in enumerate(rows["t"]) if 126.0 <= t <= 146.0]
    for key, style in (("block", "tab:red"), ("sensor", "tab:orange")):
        zoom.plot([rows["t"][i] for i in window], [rows[key][i] for i in window], color=style)
    zoom.step(
        [rows["t"][i] for i in window],
        [rows["reading"][i] for i in window],
        where="post",
        color="k",
        lw=0.7,
    )
    zoom.axhline(160.0, color="grey", ls=":", lw=0.8)
    zoom.set_title("reading hits 160 °C; lease ends 3 s later", fontsize=7)
    zoom.tick_params(labelsize=7)
    zoom.grid(alpha=0.3)
    lines, labels = ax.get_legend_handles_labels()
    more, more_labels = duty_ax.get_legend_handles_labels()
    ax.legend(lines + more, labels + more_labels, loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out)


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "heater-response.png"
    rows = simulate()
    plot(rows, out)
    crossing = next(t for t, r in zip(rows["t"], rows["reading"], strict=True) if r >= 160.0)
    peak = max(rows["block"])
    print(f"wrote {out}: reading 160 °C at {crossing:.1f} s, block peak {peak:.1f} °C")


if __name__ == "__main__":
    main()
