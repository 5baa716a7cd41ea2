"""Climate control of a paper store through a humid week: time inside the band with the loop vs without.

The loop is closed over real parts (``tests/alerts/control/closed_loop.py``): a real Mosquitto broker with
simulated Zigbee2MQTT and Tasmota plugs (a dehumidifier and an air conditioner), a Modbus RTU relay module
on a pseudo-terminal (a second dehumidifier), a room whose RH and temperature follow the devices, the
weather and the door. The baseline is the same room, weather and door with every actuator disabled, in the
same run.

Prints, for each: the share of minutes with RH inside 45–60 % and temperature inside 14–24 ℃, the RH
range, per device the switches, the shortest on and off spells (against the configured minimum times)
and the run hours; then the ratio of time out of band without to with control, and how fast the closed
loop runs (simulated minutes per wall second).

Run: ``.venv/bin/python bench/bench_control.py [--days 7]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devices.simulators.pty_pair import PtyPair
from tests.alerts.control.closed_loop import MIN_OFF_S, MIN_ON_S, ClosedLoopRoom, WeekResult
from tests.fixtures.mosquitto import MosquittoBroker


def _print(label: str, result: WeekResult, wall_s: float) -> None:
    print(f"{label}: RH in 45–60 % {result.rh_in_band:.2%}, T in 14–24 ℃ {result.t_in_band:.2%}, "
          f"RH {result.rh_min:.1f}–{result.rh_max:.1f} %, {result.minutes / wall_s:,.0f} simulated min per s")
    for name, switches in result.switches.items():
        if not switches:
            continue
        print(f"  {name}: {switches} switches, shortest on {result.shortest_on_s[name]:.0f} s "
              f"(min {MIN_ON_S[name]}), shortest off {result.shortest_off_s[name]:.0f} s (min {MIN_OFF_S[name]}), "
              f"{result.run_hours[name]:g} h run")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=7.0, help="simulated days (default 7)")
    args = parser.parse_args()
    minutes = int(args.days * 24 * 60)
    results: dict[bool, WeekResult] = {}
    with tempfile.TemporaryDirectory(prefix="bench-control-") as folder, \
            MosquittoBroker(Path(folder) / "broker") as broker, PtyPair() as pair:
        for control in (False, True):
            where = Path(folder) / ("control" if control else "baseline")
            where.mkdir()
            room = ClosedLoopRoom(where, host=broker.host, port=broker.port, relay_port=pair.a,
                                  module_port=pair.b, control=control, judge=False)
            try:
                room.start()
                started = time.perf_counter()
                results[control] = room.run(minutes)
                wall = time.perf_counter() - started
            finally:
                room.stop()
            _print("with control" if control else "without control (baseline)", results[control], wall)
    out_with = 1 - results[True].rh_in_band
    out_without = 1 - results[False].rh_in_band
    ratio = out_without / out_with if out_with else float("inf")
    print(f"time out of the RH band: {out_without:.2%} without, {out_with:.2%} with control "
          f"({'∞' if ratio == float('inf') else f'{ratio:,.0f}'}× less with control)")


if __name__ == "__main__":
    main()
