"""Alert engine: archive-room standards as data, rules, alert lifecycle and notifications."""

from alerts.engine import AlertEngine
from alerts.model import Condition, Transition
from alerts.profiles import StandardProfile, list_profiles, load_profile, resolve_profile
from alerts.service import AlertService
from alerts.site import check_config
from alerts.store import AlertStore

__all__ = [
    "AlertEngine",
    "AlertService",
    "AlertStore",
    "Condition",
    "StandardProfile",
    "Transition",
    "check_config",
    "list_profiles",
    "load_profile",
    "resolve_profile",
]
