"""Shared fixtures: real Mosquitto brokers, serial ports and time-series servers live in tests/fixtures/.

Temporary folders go to a RAM file system (``/dev/shm``) when it is a tmpfs with room to spare, or to
``ARCHMON_TEST_TMPDIR`` when set: the store runs ``synchronous=FULL``, and on this project's disks every
commit's fsync took about 7 ms against 0.01 ms on tmpfs, thousands of times per run. The files are real
SQLite files in WAL mode either way; what a crash (SIGKILL) leaves is the same, since the kernel keeps the
written pages; a power cut, the one thing the fsync is for, no test can make.
"""

import logging
import os
import tempfile

pytest_plugins = ["tests.fixtures.mosquitto", "tests.fixtures.serial_ports", "tests.fixtures.tsdb",
                  "tests.fixtures.tcp_proxy"]

# aiosmtpd reports every connection at INFO; once a test has installed archmon's log handler those lines
# would fill the test output without saying anything about archmon.
logging.getLogger("mail.log").setLevel(logging.WARNING)

_RAM_DIR = "/dev/shm"
_RAM_FREE_BYTES = 4 << 30  # a container's default 64 MiB /dev/shm is too small: the disk then


def _fast_temp_dir() -> str | None:
    chosen = os.environ.get("ARCHMON_TEST_TMPDIR")
    if chosen:
        return chosen
    try:
        with open("/proc/mounts", encoding="utf-8") as mounts:
            tmpfs = any(line.split()[1:3] == [_RAM_DIR, "tmpfs"] for line in mounts)
        stat = os.statvfs(_RAM_DIR)
    except OSError:
        return None
    if tmpfs and stat.f_bavail * stat.f_frsize >= _RAM_FREE_BYTES and os.access(_RAM_DIR, os.W_OK):
        return _RAM_DIR
    return None


def pytest_configure() -> None:
    """Point ``tmp_path`` (pytest's base folder is made lazily from ``tempfile``) and children at the fast folder."""
    folder = _fast_temp_dir()
    if folder:
        os.makedirs(folder, exist_ok=True)
        os.environ["TMPDIR"] = folder
        tempfile.tempdir = folder
