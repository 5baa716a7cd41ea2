"""Modbus register-map presets as TOML data files (loaded by ``devices.modbus.load_presets``)."""
