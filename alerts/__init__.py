"""Alert engine: archive-room standards as data, rules, alert lifecycle and notifications."""

from alerts.engine import AlertEngine
from alerts.history import MemoryHistory, ReadingHistory
from alerts.model import Condition, Transition
from alerts.profiles import StandardProfile, list_profiles, load_profile, resolve_profile
from alerts.service import AlertService
from alerts.site import check_config
from alerts.store import AlertReader, AlertStore

__all__ = [
    "AlertEngine",
    "AlertReader",
    "AlertService",
    "AlertStore",
    "Condition",
    "MemoryHistory",
    "ReadingHistory",
    "StandardProfile",
    "Transition",
    "check_config",
    "list_profiles",
    "load_profile",
    "resolve_profile",
]
