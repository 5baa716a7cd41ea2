"""Commands confirmed by the device's own report: one :class:`ActuatorDriver` per device, clock-injected.

A command counts as done only when the device reports the new state *after* it was sent (a report
counter, not a time comparison, tells a fresh report from an old one). Until then it is repeated every
``confirm_timeout`` up to ``retries`` times; then the device is **not responding**: the driver stops
commanding it (no endless retries), asks for its state every ``probe_interval`` and is back as soon as the
device reports anything. While idle it asks for the state every ``poll_interval`` (where the device can
be asked) and an unanswered poll is retried and fails the same way, so a dead plug is noticed before it is
needed. A device's own "offline" (LWT, availability) marks it not responding at once.

A device with a device-side auto-off (``auto_off_s``) has its ON renewed every third of that time while it
should stay on: if archmon dies, the device switches itself off within ``auto_off_s``.

The driver only queues :class:`DriverEvent` objects (:meth:`ActuatorDriver.take_events`); the controller
writes them to the audit log. Links may report from any thread: the controller serialises the calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from archmon.errors import RetryLater

__all__ = ["ActuatorDriver", "Cause", "DriverEvent", "DriverTiming", "EventKind", "Link", "Reported"]

EventKind = Literal["command", "confirmed", "retry", "failed", "recovered", "external", "readback", "offline",
                    "online", "refresh_failed"]


class Link(Protocol):
    """How a driver reaches its device (``alerts.control.mqtt_link``, ``alerts.control.modbus_link``)."""

    def send(self, actuator: str, on: bool, *, auto_off_s: int | None) -> None:
        """Send the command (the report comes later, or already came, through the controller).

        Raises:
            RetryLater: the command could not be sent (broker not connected, port gone).
        """

    def ask(self, actuator: str) -> bool:
        """Ask for the state; False when this device cannot be asked.

        Raises:
            RetryLater: the question could not be sent.
        """
        ...


@dataclass(frozen=True, slots=True)
class Cause:
    """Who or what wants a state: ``actor`` (``system`` or a person's name), the loop's reason code and
    details for the record (value, set-points, sensors)."""

    actor: str
    reason: str
    details: dict[str, object] | None = None


@dataclass(frozen=True, slots=True)
class DriverEvent:
    """Something the audit log must hold.

    Attributes:
        kind: ``command`` sent, ``confirmed`` by the device, ``retry`` sent again, ``failed`` (not responding),
            ``recovered`` (heard again), ``external`` (the device changed state without a command: its button,
            its own auto-off), ``readback`` (first state heard), ``offline``/``online`` (its own LWT),
            ``refresh_failed`` (an auto-off renewal went unanswered, retried).
        actuator: the device.
        ts_ms: when.
        on: the state commanded or reported (None for a state query).
        attempt: the attempt number of a command.
        cause: why (commands and their outcome).
        detail: a short text for people.
        latency_ms: from the first send to the confirmation.
    """

    kind: EventKind
    actuator: str
    ts_ms: int
    on: bool | None = None
    attempt: int = 0
    cause: Cause | None = None
    detail: str = ""
    latency_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Reported:
    """The newest state the device reported: ``on``, the report counter ``seq``, when, and by which message."""

    on: bool
    seq: int
    at_ms: int
    via: str


@dataclass(frozen=True, slots=True)
class DriverTiming:
    """The driver's times (ms) and repeat count."""

    confirm_ms: int
    retries: int
    poll_ms: int
    probe_ms: int
    auto_off_s: int | None = None


@dataclass(slots=True)
class _Pending:
    target: bool | None  # None: a state query, answered by any report
    cause: Cause | None
    seq: int  # reports seen when first sent: a confirming report has a higher number
    first_ms: int
    deadline_ms: int
    attempt: int = 1
    refresh: bool = False


class ActuatorDriver:
    """Sends one device's commands and confirms them (see the module docstring).

    Args:
        actuator: the device's id.
        link: how to reach it.
        timing: timeouts, repeats and intervals.
    """

    def __init__(self, actuator: str, link: Link, timing: DriverTiming) -> None:
        self.actuator = actuator
        self.link = link
        self.timing = timing
        self.reported: Reported | None = None
        self.down = False
        self.down_detail = ""
        self.offline = False
        self.commands_sent = 0
        self.refreshes = 0
        self.last_error = ""
        self._seq = 0
        self._pending: _Pending | None = None
        self._next_poll: int | None = None
        self._next_probe: int | None = None
        self._next_refresh: int | None = None
        self._events: list[DriverEvent] = []

    # -- what the controller reads --------------------------------------------------------------
    @property
    def awaiting(self) -> bool:
        """Whether a command or query waits for the device's report."""
        return self._pending is not None

    @property
    def wanted(self) -> bool | None:
        """The state a command under way asks for (None: none under way)."""
        return self._pending.target if self._pending is not None and not self._pending.refresh else None

    def take_events(self) -> list[DriverEvent]:
        """The events since the last call, oldest first."""
        events, self._events = self._events, []
        return events

    # -- inputs ---------------------------------------------------------------------------------
    def start(self, now_ms: int) -> None:
        """Read the state back (at start and after a restart of archmon): ask, and wait for the answer."""
        self._query(now_ms)

    def report(self, on: bool, via: str, now_ms: int) -> None:
        """The device reported its state (from its state topic, a query's answer, a coil read)."""
        self._seq += 1
        previous = self.reported
        self.reported = Reported(on, self._seq, now_ms, via)
        self.last_error = ""
        pending = self._pending
        if self.down:
            self.down, self.down_detail = False, ""
            self._emit("recovered", now_ms, on=on, detail=f"heard again ({via})")
        changed = previous is not None and previous.on != on
        answered = pending is not None and (pending.target is None or pending.target == on)
        if pending is not None and answered:
            self._pending = None
            if pending.target is not None and not pending.refresh:
                self._emit("confirmed", now_ms, on=on, attempt=pending.attempt, cause=pending.cause, detail=via,
                           latency_ms=now_ms - pending.first_ms)
                changed = False
        if previous is None:
            self._emit("readback", now_ms, on=on, detail=via)
        elif changed:
            self._emit("external", now_ms, on=on, detail=via)
        if self._pending is None:
            self._next_poll = now_ms + self.timing.poll_ms
        if not on:
            self._next_refresh = None
        elif answered or self._next_refresh is None:
            self._schedule_refresh(now_ms)

    def availability(self, online: bool, via: str, now_ms: int) -> None:
        """The device's own online/offline message (recorded when it changes: a retained "online" at every
        connection is no news)."""
        if online:
            if self.offline:
                self.offline = False
                self._emit("online", now_ms, detail=via)
            if self.down:
                self._next_probe = now_ms  # ask at once: it may answer now
            return
        if not self.offline:
            self.offline = True
            self._emit("offline", now_ms, detail=via)
        if not self.down:
            self._fail(now_ms, f"device reports itself offline ({via})")

    def want(self, on: bool, cause: Cause, now_ms: int) -> None:
        """Bring the device to ``on`` (nothing if it is there or on its way; nothing while not responding)."""
        if self.down:
            return
        pending = self._pending
        if pending is not None and pending.target == on:
            return
        if (pending is None or pending.target is None) and self.reported is not None and self.reported.on == on:
            return  # there already (a state question under way does not change that)
        if pending is not None and pending.target is None and self.reported is None:
            return  # still reading the state back: decide once it is known (or the read-back fails)
        self._pending = _Pending(on, cause, self._seq, now_ms, now_ms + self.timing.confirm_ms)
        self._emit("command", now_ms, on=on, attempt=1, cause=cause)
        self._send(on, now_ms)

    def tick(self, now_ms: int) -> None:
        """Time-driven work: unconfirmed commands, polls, probes and auto-off renewals that fall due."""
        pending = self._pending
        if pending is not None and now_ms >= pending.deadline_ms:
            if pending.attempt <= self.timing.retries:
                pending.attempt += 1
                pending.deadline_ms = now_ms + self.timing.confirm_ms
                if pending.target is None:
                    self._ask(now_ms)
                else:
                    kind: EventKind = "refresh_failed" if pending.refresh else "retry"
                    waited = f"no report of {_word(pending.target)} within {self.timing.confirm_ms / 1000:g} s"
                    self._emit(kind, now_ms, on=pending.target, attempt=pending.attempt, cause=pending.cause,
                               detail=waited)
                    self._send(pending.target, now_ms)
            else:
                self._pending = None
                what = ("no answer to state queries" if pending.target is None
                        else f"no report of {_word(pending.target)}")
                self._fail(now_ms, f"{what} after {pending.attempt} attempt(s), "
                                   f"{self.timing.confirm_ms / 1000:g} s each", cause=pending.cause,
                           on=pending.target)
            return
        if self.down:
            if self._next_probe is not None and now_ms >= self._next_probe:
                self._next_probe = now_ms + self.timing.probe_ms
                self._ask(now_ms)
            return
        if pending is not None:
            return
        if self._next_refresh is not None and now_ms >= self._next_refresh and self.reported is not None \
                and self.reported.on:
            self.refreshes += 1
            self._pending = _Pending(True, None, self._seq, now_ms, now_ms + self.timing.confirm_ms, refresh=True)
            self._next_refresh = None
            self._send(True, now_ms)
            return
        if self._next_poll is not None and now_ms >= self._next_poll:
            self._query(now_ms)

    # -- internals ------------------------------------------------------------------------------
    def _query(self, now_ms: int) -> None:
        self._next_poll = now_ms + self.timing.poll_ms
        self._pending = _Pending(None, None, self._seq, now_ms, now_ms + self.timing.confirm_ms)
        if not self._ask(now_ms) and self.reported is not None:
            self._pending = None  # cannot be asked and its state is known: nothing to wait for

    def _ask(self, now_ms: int) -> bool:
        try:
            return self.link.ask(self.actuator)
        except RetryLater as exc:
            self.last_error = str(exc)
            return True  # it could be asked: the question is lost and its deadline stands

    def _send(self, on: bool, now_ms: int) -> None:
        self.commands_sent += 1
        try:
            self.link.send(self.actuator, on, auto_off_s=self.timing.auto_off_s if on else None)
        except RetryLater as exc:
            self.last_error = str(exc)  # the deadline stands: the next attempt sends it again

    def _schedule_refresh(self, now_ms: int) -> None:
        auto_off = self.timing.auto_off_s
        if auto_off and self.reported is not None and self.reported.on:
            self._next_refresh = now_ms + auto_off * 1000 // 3

    def _fail(self, now_ms: int, detail: str, *, cause: Cause | None = None, on: bool | None = None) -> None:
        if self.last_error:
            detail = f"{detail}; last error: {self.last_error}"
        self.down, self.down_detail = True, detail
        self._pending = None
        self._next_probe = now_ms + self.timing.probe_ms
        self._emit("failed", now_ms, on=on, cause=cause, detail=detail)

    def _emit(self, kind: EventKind, now_ms: int, **fields: object) -> None:
        self._events.append(DriverEvent(kind, self.actuator, now_ms, **fields))  # type: ignore[arg-type]


def _word(on: bool | None) -> str:
    return "ON" if on else "OFF"
