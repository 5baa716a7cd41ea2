"""What ``archmon run`` keeps resident: the C heap's free memory is given back (``archmon.heap``), sensors
share their repeated configuration strings, and the service's start imports no client library it does not
use (influxdb-client without ``[forward.influxdb]``). The 10,000-sensor figure itself is measured by
``bench/bench_windows.py``; these check the mechanisms."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import pytest

from archmon.heap import trim_heap

ROOT = Path(__file__).resolve().parents[2]
GLIBC = platform.libc_ver()[0] == "glibc"


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is glibc's")
def test_trim_returns_freed_heap_memory_to_the_system() -> None:
    # 60 MiB in 4 KiB blocks (under glibc's mmap threshold: they live in the heap), all freed but the last
    # one, which pins the top of the heap so glibc's own trimming on free cannot give anything back
    out = _run(
        "import sys; from archmon.heap import _rss_kib, trim_heap\n"
        "blocks = [bytearray(4096) for _ in range(15_000)]\n"
        "pin = blocks.pop(); del blocks\n"
        "before = _rss_kib(); released = trim_heap(); after = _rss_kib()\n"
        "print(before, released, after, len(pin))\n"
    )
    before, released, after, _ = (int(x) for x in out.split())
    assert released > 40 * 1024, out  # KiB: most of the 60 MiB freed
    assert after < before - 40 * 1024, out


def test_trim_keeps_what_is_in_use() -> None:
    kept = [bytearray(b"x" * 4096) for _ in range(2_000)]
    trim_heap()
    assert all(block[0] == ord("x") and block[-1] == ord("x") and len(block) == 4096 for block in kept)


def test_service_start_imports_no_influxdb_client_without_a_target() -> None:
    out = _run(
        "import sys\n"
        "import archmon.app, archmon.cli, collector.forward, collector.forward.forwarder, collector.forward.setup\n"
        "import dashboards.web, dashboards.web.app, dashboards.city.series  # the dashboard archmon run serves\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'influxdb_client', 'reactivex', 'urllib3'}))\n"
    )
    assert out == "[]"


def test_forward_package_names_still_resolve() -> None:
    out = _run(
        "import collector.forward as f, collector.forward.influx as influx, collector.forward.reader as reader\n"
        "assert f.InfluxClient is influx.InfluxClient and f.QuerySeries is influx.QuerySeries\n"
        "assert f.InfluxReader is reader.InfluxReader and f.RemotePoint is reader.RemotePoint\n"
        "assert f.RemoteError is influx.RemoteError\n"
        "try:\n    f.NoSuchName\nexcept AttributeError as e:\n    print(e)\n"
    )
    assert "NoSuchName" in out


def test_sensors_share_their_room_source_and_format_strings(tmp_path: Path) -> None:
    from archmon.config import load_config

    rooms = "".join(f'[[rooms]]\nid = "room{r}"\nprofile = "paper"\n' for r in range(2))
    sensors = "".join(
        f'[[sensors]]\nid = "th{i}"\nroom = "room{i % 2}"\nsource = "z2m"\ntopic = "z/th{i}"\nformat = "zigbee2mqtt"\n'
        for i in range(6))
    path = tmp_path / "archmon.toml"
    path.write_text(f'{rooms}[[mqtt]]\nid = "z2m"\n{sensors}', encoding="utf-8")
    config = load_config(path)
    first, *others = config.sensors
    assert [s.room for s in config.sensors] == ["room0", "room1"] * 3  # the values are unchanged
    assert all(s.source is first.source and s.format is first.format for s in others)
    assert config.sensors[2].room is first.room and config.sensors[3].room is config.sensors[1].room
