"""Alert engine: archive-room standards as data, rules, alert lifecycle and notifications."""
