"""The platform's own sections: the HTTP gateway in front of the backends, and its stores.

``gateway.api_keys`` maps each key to the accounts it may trade (a list, or
``"*"`` for any); ``LAB_API_KEYS`` adds keys in the same mapping as JSON, so
that keys need not sit in a config file. Keys are secrets: stored and printed
configs mask them (``ExperimentConfig.to_public_dict``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Literal

from pydantic import Field, field_validator, model_validator

from lab.config.base import Int, Section, Str
from lab.errors import ConfigError

__all__ = ["GatewayConfig", "PlatformConfig", "api_keys", "API_KEYS_ENV"]

API_KEYS_ENV = "LAB_API_KEYS"
Accounts = list[Int] | Literal["*"]


class GatewayConfig(Section):
    """The ``gateway`` section: order entry over HTTP (``lab serve``, ``transport: http``)."""

    api_keys: dict[Str, Accounts] = Field(default_factory=dict)
    max_body_bytes: Int = Field(1 << 20, ge=1024)  #: larger bodies get 413
    max_batch: Int = Field(10_000, ge=1)  #: larger batches get 413
    host: Str = "0.0.0.0"
    #: the first backend's gateway port (backend i serves on port + i); 0: any free ports
    port: Int = Field(0, ge=0, le=65535)
    #: every backend serves on ``port`` itself, the kernel spreading connections over
    #: the backends of a node (SO_REUSEPORT): one port per pod, as a Kubernetes Service
    #: needs; any gateway takes any order and forwards it to the backend owning its account
    share_port: bool = False

    @model_validator(mode="after")
    def _a_shared_port_is_a_fixed_one(self) -> GatewayConfig:
        if self.share_port and not self.port:
            raise ValueError("gateway.share_port needs a fixed gateway.port (not 0)")
        return self


class PlatformConfig(Section):
    """The ``platform`` section: what the backends keep outside themselves (both off by default).

    ``cache``: each order's state in Redis; ``journal``: every accepted order and
    every fill in PostgreSQL, acknowledged after the commit (``durability: sync``)
    or after the queue (``async``).
    """

    cache: Str | None = None  #: redis://host:port/db
    journal: Str | None = None  #: postgresql://…
    durability: Literal["sync", "async"] = "sync"
    journal_schema: Str = Field("lab_journal", pattern=r"^[a-z_][a-z0-9_]{0,62}$")

    @field_validator("cache")
    @classmethod
    def _redis_url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"expected a redis:// URL, got {url!r}")
        return url

    @field_validator("journal")
    @classmethod
    def _postgres_url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("postgresql://", "postgres://")):
            raise ValueError("expected a postgresql:// URL")
        return url


def api_keys(gateway: GatewayConfig, env: Mapping[str, str] | None = None) -> dict[str, Accounts]:
    """The config's keys and those of ``LAB_API_KEYS``; ConfigError if that is not a mapping."""
    keys: dict[str, Accounts] = dict(gateway.api_keys)
    text = (os.environ if env is None else env).get(API_KEYS_ENV)
    if not text:
        return keys
    try:
        given = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{API_KEYS_ENV}: not JSON ({exc.msg})") from None
    try:
        keys.update(GatewayConfig(api_keys=given).api_keys)
    except ValueError:
        raise ConfigError(
            f'{API_KEYS_ENV}: expected a JSON object of key -> [accounts] or "*"'
        ) from None
    return keys
