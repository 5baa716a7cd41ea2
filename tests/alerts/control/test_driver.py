"""The confirming driver in simulated time: a command counts once the device reports it; bounded repeats,
then "not responding"; probes; recovery; changes at the device; auto-off renewals.

The device here is a small in-process one (it answers through the driver's ``report`` the way a link
delivers a report); the same behaviours over a real broker and a real serial line are in test_faults.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from alerts.control.driver import ActuatorDriver, Cause, DriverTiming
from archmon.errors import TransportError

T0 = 1_719_792_000_000
TIMING = DriverTiming(confirm_ms=10_000, retries=2, poll_ms=300_000, probe_ms=600_000)
CAUSE = Cause("system", "demand", {"value": 56.0})


@dataclass
class Device:
    """A plug that answers every command and question with its state, unless ``mute``."""

    driver: ActuatorDriver | None = None
    on: bool = False
    mute: bool = False
    broken_wire: bool = False
    now: int = T0
    sent: list[bool | None] = field(default_factory=list)
    auto_off: list[int | None] = field(default_factory=list)

    def send(self, actuator: str, on: bool, *, auto_off_s: int | None) -> None:
        if self.broken_wire:
            raise TransportError("broker not connected")
        self.sent.append(on)
        self.auto_off.append(auto_off_s)
        if not self.mute:
            self.on = on
            assert self.driver is not None
            self.driver.report(on, "state", self.now)

    def ask(self, actuator: str) -> bool:
        self.sent.append(None)
        if not self.mute:
            assert self.driver is not None
            self.driver.report(self.on, "state", self.now)
        return True


def make(timing: DriverTiming = TIMING, **device: object) -> tuple[ActuatorDriver, Device]:
    plug = Device(**device)  # type: ignore[arg-type]
    driver = ActuatorDriver("dehum1", plug, timing)
    plug.driver = driver
    return driver, plug


def kinds(driver: ActuatorDriver) -> list[str]:
    return [event.kind for event in driver.take_events()]


def test_read_back_then_a_confirmed_command() -> None:
    driver, plug = make()
    driver.start(T0)
    assert kinds(driver) == ["readback"]
    driver.want(True, CAUSE, T0)
    events = driver.take_events()
    assert [e.kind for e in events] == ["command", "confirmed"]
    assert events[1].cause == CAUSE and events[1].on is True
    driver.want(True, CAUSE, T0 + 1000)  # already on: nothing sent
    assert plug.sent == [None, True] and not driver.awaiting


def test_unanswered_command_is_repeated_then_not_responding_and_no_more_commands() -> None:
    driver, plug = make()
    driver.start(T0)
    plug.mute = True
    driver.take_events()
    driver.want(True, CAUSE, T0)
    for second in range(1, 200):
        plug.now = T0 + second * 1000
        driver.tick(plug.now)
        driver.want(True, CAUSE, plug.now)  # the loop keeps wanting it
    assert plug.sent.count(True) == 3  # the first send and two repeats: bounded
    assert kinds(driver) == ["command", "retry", "retry", "failed"]
    assert driver.down and "no report of ON after 3 attempt(s)" in driver.down_detail


def test_probes_while_down_and_recovery_on_the_first_report() -> None:
    driver, plug = make()
    driver.start(T0)
    plug.mute = True
    driver.want(True, CAUSE, T0)
    for second in (10, 20, 30):
        driver.tick(T0 + second * 1000)
    assert driver.down
    driver.take_events()
    driver.tick(T0 + 629_000)
    assert plug.sent[-1] is True  # no probe before its interval
    plug.mute = False
    plug.now = T0 + 630_000
    driver.tick(plug.now)
    assert plug.sent[-1] is None  # a probe: a question, not a command
    assert kinds(driver) == ["recovered"] and not driver.down
    driver.want(True, CAUSE, plug.now)
    assert kinds(driver) == ["command", "confirmed"]


def test_unanswered_polls_fail_an_idle_device_too() -> None:
    driver, plug = make()
    driver.start(T0)
    driver.take_events()
    plug.mute = True
    for minute in range(1, 5):
        driver.tick(T0 + minute * 60_000)
    assert not driver.down and plug.sent == [None]  # the first poll is due after 5 min
    for second in range(300, 340):
        driver.tick(T0 + second * 1000)
    assert driver.down and "no answer to state queries" in driver.down_detail
    assert plug.sent.count(None) == 1 + 3


def test_a_change_at_the_device_is_noticed() -> None:
    driver, _ = make()
    driver.start(T0)
    driver.take_events()
    driver.report(True, "state", T0 + 5000)  # someone pressed the plug's button
    events = driver.take_events()
    assert [(e.kind, e.on) for e in events] == [("external", True)]


def test_transport_errors_count_as_unanswered_attempts() -> None:
    driver, plug = make()
    driver.start(T0)
    plug.broken_wire = True
    driver.want(True, CAUSE, T0)
    for second in (10, 20, 30):
        driver.tick(T0 + second * 1000)
    assert driver.down and "broker not connected" in driver.down_detail


def test_device_offline_message_marks_it_down_at_once() -> None:
    driver, _ = make()
    driver.start(T0)
    driver.availability(False, "LWT", T0 + 1000)
    assert driver.down and "offline" in driver.down_detail
    assert kinds(driver)[-2:] == ["offline", "failed"]


def test_auto_off_is_renewed_every_third_of_its_time_while_on() -> None:
    driver, plug = make(DriverTiming(confirm_ms=10_000, retries=2, poll_ms=3_600_000, probe_ms=600_000,
                                     auto_off_s=1800))
    driver.start(T0)
    driver.want(True, CAUSE, T0)
    assert plug.auto_off[-1] == 1800
    for minute in range(1, 61):
        plug.now = T0 + minute * 60_000
        driver.tick(plug.now)
    assert driver.refreshes == 6  # every 10 minutes for an hour
    assert plug.sent.count(True) == 7
    assert "command" not in kinds(driver)[2:]  # renewals are not new commands in the record
    driver.want(False, CAUSE, plug.now)
    assert plug.auto_off[-1] is None
    for minute in range(61, 120):
        driver.tick(T0 + minute * 60_000)
    assert driver.refreshes == 6  # off: nothing to renew
