"""Simulators of every device kind archmon talks to (MQTT sensors, Modbus slaves, serial lines)."""
