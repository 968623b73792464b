"""Server settings: one typed object, from arguments and ``DENSEFACE_*`` environment variables.

| setting | environment | default |
|---|---|---|
| host, port | ``DENSEFACE_HOST``, ``DENSEFACE_PORT`` | 127.0.0.1, 8000 |
| workers (inference processes) | ``DENSEFACE_WORKERS`` | the CPUs it may use (cgroup limit) |
| credentials (TOML file) | ``DENSEFACE_CREDENTIALS`` | env key, else a generated local key |
| default per-key QPS (0 = unlimited; Tencent documents 50) | ``DENSEFACE_QPS`` | 50 |
| deadline per request (s) | ``DENSEFACE_DEADLINE`` | 10 |
| minimum face size (px) | ``DENSEFACE_MIN_FACE_SIZE`` | 34 |
| face finding: ``thorough``, ``fast`` or ``exhaustive`` (cascade.py) | ``DENSEFACE_DETECTOR`` | thorough |
| URL allow-list (CIDRs, comma-separated) | ``DENSEFACE_URL_ALLOW`` | none |
| URL connect timeout / total (s) | ``DENSEFACE_URL_CONNECT_TIMEOUT``, ``DENSEFACE_URL_DEADLINE`` | 3, 8 |
| config dir (local key, the embedded usage store) | ``DENSEFACE_CONFIG_DIR`` | the user config dir |
| shared store for every replica (``redis://…``) | ``DENSEFACE_REDIS_URL`` | none: SQLite in the config dir |
| calls one key may have in progress (a key's own wins) | ``DENSEFACE_KEY_CONCURRENCY`` | 32 |
| open connections (the idlest is closed for a new one) | ``DENSEFACE_MAX_CONNECTIONS`` | 2048 |
| request line + headers (bytes) | ``DENSEFACE_MAX_HEADER_BYTES`` | 65536 |
| deadline to receive headers (s) | ``DENSEFACE_HEADER_TIMEOUT`` | 10 |
| deadline to receive a body (s) | ``DENSEFACE_BODY_TIMEOUT`` | 30 |
| idle keep-alive connection closed after (s) | ``DENSEFACE_KEEPALIVE_TIMEOUT`` | 5 |
| refusals before a signature, per client address (/s; 0: none) | ``DENSEFACE_CLIENT_RATE`` | 20 |
| … and their burst | ``DENSEFACE_CLIENT_BURST`` | 200 |
| bodies read before their signature (bytes) | ``DENSEFACE_PREAUTH_BYTES`` | 64 MiB |
| … of which one client address | ``DENSEFACE_PREAUTH_BYTES_PER_CLIENT`` | 16 MiB |
| bearer token: ``/metrics``, detailed ``/healthz`` | ``DENSEFACE_METRICS_TOKEN`` | none: off |
| Host names accepted (comma-separated) | ``DENSEFACE_ALLOWED_HOSTS`` | none: any |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from denseface.processes import available_cpus


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    workers: int = Field(default_factory=available_cpus, ge=1, le=64)
    credentials: Path | None = None
    model_dir: Path | None = None
    qps: float | None = Field(50.0, ge=0)  # Tencent: 50 requests/s for the 五官定位 interface group
    deadline: float = Field(10.0, gt=0)
    min_face_size: float = Field(34.0, ge=0)
    detector: Literal["fast", "thorough", "exhaustive"] = "thorough"
    url_allow: tuple[str, ...] = ()
    url_connect_timeout: float = Field(3.0, gt=0)
    url_deadline: float = Field(8.0, gt=0)  # below `deadline`, so a slow download is a download error
    config_dir: Path = Field(default_factory=lambda: Path(platformdirs.user_config_dir("denseface")))
    redis_url: str | None = None
    key_concurrency: int = Field(32, ge=1)
    max_connections: int = Field(2048, ge=1)
    max_header_bytes: int = Field(64 * 1024, ge=4096)
    header_timeout: float = Field(10.0, gt=0)
    body_timeout: float = Field(30.0, gt=0)
    keepalive_timeout: float = Field(5.0, gt=0)
    client_rate: float = Field(20.0, ge=0)
    client_burst: float = Field(200.0, ge=1)
    preauth_bytes: int = Field(64 * 1024 * 1024, ge=1024 * 1024)
    preauth_bytes_per_client: int = Field(16 * 1024 * 1024, ge=1024 * 1024)
    metrics_token: str | None = Field(None, repr=False, min_length=16)
    allowed_hosts: tuple[str, ...] = ()

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("redis_url must start with redis://, rediss:// or unix://")
        return value or None

    @field_validator("url_allow", "allowed_hosts", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.url_deadline >= self.deadline:
            raise ValueError("url_deadline must be shorter than deadline")
        return self

    @property
    def default_qps(self) -> float | None:
        """The per-key rate for keys without their own ``qps``; ``None`` = unlimited."""
        return self.qps or None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from ``DENSEFACE_*`` variables, then ``overrides`` (``None`` values are ignored)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name in cls.model_fields:
            key = f"DENSEFACE_{name.upper()}"
            if key in env and env[key] != "":
                values[name] = env[key]
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)
