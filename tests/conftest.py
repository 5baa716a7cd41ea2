"""Shared fixtures: real Mosquitto brokers and real serial ports live in tests/fixtures/."""

pytest_plugins = ["tests.fixtures.mosquitto", "tests.fixtures.serial_ports"]
