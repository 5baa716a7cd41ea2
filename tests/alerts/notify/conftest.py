"""Fixtures of the notification tests (real SMTP and HTTP servers on loopback, pty-linked modem simulator)."""

from tests.alerts.notify.servers import certs, provider, smtp_server

__all__ = ["certs", "provider", "smtp_server"]
