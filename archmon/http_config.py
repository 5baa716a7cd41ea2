"""``[http]``: the web dashboard's address, TLS and reverse-proxy settings (part of :class:`archmon.config.Config`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["HttpConfig"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HttpConfig(_Model):
    """The web dashboard's address (``[http]``); TLS when both a certificate and a key are given.

    ``archmon run`` serves it unless ``enabled = false`` (or ``--http off``); an address that cannot be
    used is logged and collection goes on without it.

    Relative ``tls_cert``/``tls_key`` paths are relative to the config file's folder. Behind a reverse
    proxy: ``trusted_proxies`` lists the proxy addresses whose ``X-Forwarded-For``/``-Proto`` are believed
    (none by default: the client address is the connection's), ``public_url`` the address browsers use
    (``https://archive.example.org``), which state-changing requests' ``Origin`` must match.
    """

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    trusted_proxies: list[str] = Field(default_factory=list)
    public_url: str | None = None

    @field_validator("public_url")
    @classmethod
    def _origin(cls, value: str | None) -> str | None:
        if value is None:
            return None
        scheme, sep, rest = value.strip().rstrip("/").partition("://")
        if not sep or scheme.lower() not in ("http", "https") or not rest or "/" in rest or "@" in rest:
            raise ValueError(f"expected the dashboard's public origin, e.g. https://archive.example.org, got {value!r}")
        return f"{scheme.lower()}://{rest.lower()}"

    @model_validator(mode="after")
    def _cert_and_key(self) -> HttpConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("TLS needs both tls_cert and tls_key")
        return self
