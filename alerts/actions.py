"""What people do to alerts, through the store alone (usable without a running engine, e.g. the CLI).

Acknowledging an active alert keeps it open until it clears (then it closes at once); acknowledging a
cleared alert closes it. Clearing by hand flags the alert so the engine re-checks its condition and raises
it again if it still holds.
"""

from __future__ import annotations

from alerts.model import Transition
from alerts.store import AlertStore

__all__ = ["acknowledge", "clear_by_hand"]


def acknowledge(store: AlertStore, alert_id: int, by: str, comment: str, ts_ms: int) -> list[Transition]:
    """Acknowledge an alert.

    Active → acknowledged; cleared → closed; pending or already acknowledged: the comment is appended.

    Raises:
        KeyError: unknown alert id.
        ValueError: empty name, or the alert is closed or cancelled.
    """
    if not by.strip():
        raise ValueError("an acknowledgement needs the name of who acknowledges (--by)")
    with store.tx():
        alert = store.alert(alert_id)
        if alert is None:
            raise KeyError(alert_id)
        if alert["state"] in ("closed", "cancelled"):
            raise ValueError(f"alert {alert_id} is {alert['state']}; nothing to acknowledge")
        out: list[Transition] = []
        if alert["state"] == "active":
            out.append(store.set_state(alert_id, "acknowledged", ts_ms, by=by, note=comment))
        elif alert["state"] == "cleared":
            out.append(store.set_state(alert_id, "closed", ts_ms, by=by, note=comment))
        store.add_comment(alert_id, ts_ms, by, comment)
        store.audit(ts_ms, "ack", by, f"alert:{alert_id}", {"state": alert["state"], "comment": comment})
    return out


def clear_by_hand(store: AlertStore, alert_id: int, by: str, comment: str, ts_ms: int) -> list[Transition]:
    """Clear an active or acknowledged alert by hand; the engine re-checks its condition.

    Raises:
        KeyError: unknown alert id.
        ValueError: the alert is not active or acknowledged.
    """
    with store.tx():
        alert = store.alert(alert_id)
        if alert is None:
            raise KeyError(alert_id)
        if alert["state"] not in ("active", "acknowledged"):
            raise ValueError(f"alert {alert_id} is {alert['state']}; only active alerts can be cleared by hand")
        out = [store.set_state(alert_id, "cleared", ts_ms, by=by, note=f"cleared by hand: {comment}")]
        if alert["state"] == "acknowledged":
            out.append(store.set_state(alert_id, "closed", ts_ms, by=by, note="cleared by hand after acknowledgement"))
        store.add_comment(alert_id, ts_ms, by, comment)
        store.set_manual_clear(alert_id, True)
    return out
