"""Shared fixtures: real Mosquitto brokers, serial ports and time-series servers live in tests/fixtures/."""

import logging

pytest_plugins = ["tests.fixtures.mosquitto", "tests.fixtures.serial_ports", "tests.fixtures.tsdb",
                  "tests.fixtures.tcp_proxy"]

# aiosmtpd reports every connection at INFO; once a test has installed archmon's log handler those lines
# would fill the test output without saying anything about archmon.
logging.getLogger("mail.log").setLevel(logging.WARNING)
