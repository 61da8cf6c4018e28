"""Typed settings for every process, read from `DELIVERY_*` environment variables."""

import base64
import binascii
import os
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.contracts import LifecyclePolicy
from core.services import Service

SEARCH_ATTRIBUTES = (
    "DeliveryStatus",
    "PartnerId",
    "ExternalDeliveryId",
    "RobotId",
    "Market",
    "AttentionReason",
)


class SettingsError(Exception):
    """Settings that cannot be used; the message names the setting."""


class Settings(BaseSettings):
    """Where every part of the stack lives. Unset database URLs mean the embedded Postgres.

    Every listener of the dev stack binds loopback (127.0.0.1) unless its own setting names another address: the
    API (`api_host`), the embedded Postgres (`postgres_host`), the Temporal dev server's frontend (the host of
    `temporal_address`) and Web UI (`temporal_ui_host`), the payload codec (`codec_host`) and the workers' metrics
    (`metrics_host`).
    """

    model_config = SettingsConfigDict(env_prefix="DELIVERY_", env_nested_delimiter="__", extra="ignore")

    data_dir: Path = Path(".data")
    profile: str = Field("dev", pattern="^(dev|production)$",
                         description="production refuses webhook URLs into private networks and plain http")

    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_ui_port: int = Field(8233, ge=1, le=65535)
    temporal_ui_host: str | None = Field(None, description="where the dev server's Web UI listens; unset: the host of "
                                                         "temporal_address, where its frontend listens")
    temporal_embedded: bool = True
    temporal_metrics_port: int = Field(0, ge=0, le=65535, description="where the embedded dev server serves its "
                                                                      "Prometheus metrics; 0: a port it picks")
    temporal_tls_ca: Path | None = Field(None, description="PEM of the CA that signed the frontend's certificate; "
                                                           "set, the client speaks TLS")
    temporal_tls_cert: Path | None = Field(None, description="PEM client certificate (mTLS); needs the key")
    temporal_tls_key: Path | None = Field(None, description="PEM private key of the client certificate")
    temporal_tls_server_name: str | None = Field(None, description="name the frontend's certificate must carry, "
                                                                   "when it differs from the address's host")
    temporal_api_key: str | None = Field(None, repr=False,
                                         description="bearer token (JWT) or API key sent to the frontend on every "
                                                     "call; a service's own token, never an operator's")
    temporal_api_key_file: Path | None = Field(None, description="file holding that token, read at connect")
    operator_token: str | None = Field(None, repr=False,
                                       description="the operator's own token (JWT from the identity provider) that "
                                                   "`deliveryctl ops` sends instead of the service's")
    operator_token_file: Path | None = Field(None, description="file holding the operator's token")

    postgres_host: str = "127.0.0.1"
    postgres_port: int = Field(55432, ge=1, le=65535)

    integrations_database_url: str | None = None
    deliveries_database_url: str | None = None
    dispatch_database_url: str | None = None
    operations_database_url: str | None = None
    trip_monitor_database_url: str | None = None
    state_database_url: str | None = None
    device_database_url: str | None = None

    walking_speed_mps: float = Field(1.4, gt=0, description="robot cruising speed, metres per second")
    battery_reserve: float = Field(0.2, ge=0, lt=1, description="charge a robot must keep after a trip")
    pilot_max_robots: int = Field(3, ge=1, description="robots one pilot supervises at once")
    planner: str = Field("ready", pattern="^(batch|greedy|ready)$",
                         description="dispatch planner: batch (min-cost assignment), greedy (first come) or ready "
                                     "(lateness and robot time, orders' ready times, sticky proposals)")
    demand_hold_seconds: float = Field(300, gt=0, description="rounds keep planning a demand this long after its "
                                                              "delivery last asked for a robot (it asks every "
                                                              "`lifecycle.robot_retry_seconds`)")
    planning_round_seconds: float = Field(5, gt=0, description="interval of the periodic planning rounds")
    preparation_seconds: float = Field(0, ge=0, description="an order whose partner gave no ready time, from a "
                                                            "store without its own estimate, is taken to be ready "
                                                            "this long after it was placed")
    max_click_to_door_minutes: float = Field(90, gt=0, description="every market's limit: an order whose predicted "
                                                                   "dropoff is further from its placing is refused "
                                                                   "as no_capacity")
    battery_swap_below: float = Field(0.25, ge=0, le=1,
                                      description="a robot reporting less charge gets a battery_swap field task")

    lifecycle: LifecyclePolicy = LifecyclePolicy()
    pii_keys: str | None = Field(None, repr=False, validate_default=True,
                                 description="id:base64key,... (AES keys of 16, 24 or 32 bytes), the first "
                                             "encrypts; required in production, where every process shares them")
    payload_keys: str | None = Field(None, repr=False, validate_default=True,
                                     description="id:base64key,... AES keys that encrypt workflow payloads in "
                                                 "Temporal, the first encrypts; required in production")
    codec_host: str = Field("127.0.0.1", description="where the payload codec server listens")
    codec_port: int = Field(8234, ge=1, le=65535, description="the payload codec server's port; the Temporal UI "
                                                              "shows payloads decrypted through it")
    codec_jwks_url: str | None = Field(None, description="JWKS of the operators' OIDC provider: the codec server "
                                                         "answers only their bearer tokens; required in production")
    codec_issuer: str | None = Field(None, description="the `iss` an operator's token must carry")
    codec_audience: str | None = Field(None, description="the `aud` an operator's token must carry")
    codec_ui_origin: str | None = Field(None, description="the Temporal UI's origin, which browsers may let call "
                                                          "the codec server; unset: the dev stack's UI")
    geocoder: str = Field("offline", description="`offline`, or `package.module:factory` taking the settings")
    geocoder_addresses_file: Path | None = Field(None, description="JSON {address: [lat, lon]} the offline geocoder adds")
    quote_valid_seconds: float = Field(300, gt=0, description="how long a quote's price and ETAs hold")
    quote_max_pickup_seconds: float = Field(2700, gt=0, description="a quote whose pickup is further away than "
                                                                    "this is refused as no_capacity")
    uber_quote_valid_seconds: float = Field(900, gt=0, description="how long an Uber-dialect quote holds")
    uber_access_token_seconds: int = Field(2_592_000, gt=0, description="lifetime of an Uber-dialect access token")
    pii_retention_days: float = Field(30, ge=0, description="days after a delivery ends before its PII is purged")
    stranded_order_grace_seconds: float = Field(
        120, gt=0, description="an order stored this long ago whose delivery workflow never started is started by "
                               "the stranded-orders schedule")
    api_rate_limit_per_second: float = Field(20, gt=0, description="sustained requests per second per partner")
    api_rate_limit_burst: int = Field(40, ge=1, description="requests a partner may send at once")
    api_max_body_bytes: int = Field(65536, ge=1024, description="largest request body the API accepts")
    simulator: bool = True
    sim_speed: str = "30"
    workflow_cache_size: int = Field(400, ge=0, description="workflows a workflow worker keeps in memory (~150 KB "
                                                           "each); one evicted replays its history on its next task")
    workers: str = Field("single", pattern="^(single|shared|per-queue)$",
                         description="worker processes `up` starts: single (one for every queue), shared (one for "
                                     "the workflows, one for every activity queue) or per-queue (one per task "
                                     "queue, as production deploys)")
    api_processes: int = Field(1, ge=1, le=64, description="API processes `up` starts, all serving the one API port "
                                                           "(SO_REUSEPORT); each rate-limits on its own")
    background_niceness: int = Field(5, ge=0, le=19, description="How much lower `up` schedules the workers and the "
                                     "simulator than the API (nice): when the CPU is short, partners' and robots' "
                                     "requests go first and background work waits. 0 schedules them all alike")
    api_cpus: str = Field("", pattern=r"^(\d+(-\d+)?(,\d+(-\d+)?)*)?$",
                          description="CPUs `up` gives the API processes alone, as a Linux CPU list (`0`, `0-1`, "
                                      "`0,2`); every other process it starts runs on the remaining ones. Empty: "
                                      "the OS places every process on any CPU")

    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=1, le=65535)
    public_base_url: str | None = Field(None, description="the API's address as partners reach it (tracking links)")

    metrics_host: str = Field("127.0.0.1", description="where worker Prometheus endpoints listen")
    metrics_port: int | None = Field(None, ge=1, le=65535,
                                     description="this worker process's Prometheus port; unset: no metrics")
    metrics_base_port: int = Field(9400, ge=0, le=65535,
                                   description="`up` gives worker i the port base+i; 0 turns worker metrics off")

    @field_validator("temporal_address")
    @classmethod
    def _host_and_port(cls, value: str) -> str:
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("must be HOST:PORT, e.g. 127.0.0.1:7233")
        return value

    @model_validator(mode="after")
    def _demands_held_between_asks(self) -> "Settings":
        """A delivery waiting for a robot asks again before the rounds would drop its demand."""
        if self.lifecycle.robot_retry_seconds >= self.demand_hold_seconds:
            raise ValueError(f"DELIVERY_LIFECYCLE__ROBOT_RETRY_SECONDS ({self.lifecycle.robot_retry_seconds:g}) must "
                             f"be below DELIVERY_DEMAND_HOLD_SECONDS ({self.demand_hold_seconds:g}): the planning "
                             "rounds would drop a waiting demand between its delivery's asks")
        return self

    @model_validator(mode="after")
    def _temporal_credentials(self) -> "Settings":
        """A client certificate comes with its key, and a token from one place only."""
        if (self.temporal_tls_cert is None) != (self.temporal_tls_key is None):
            given, missing = ("CERT", "KEY") if self.temporal_tls_key is None else ("KEY", "CERT")
            raise ValueError(f"DELIVERY_TEMPORAL_TLS_{given} is set without DELIVERY_TEMPORAL_TLS_{missing}: "
                             "a client certificate needs its private key")
        for token, file in (("TEMPORAL_API_KEY", "TEMPORAL_API_KEY_FILE"), ("OPERATOR_TOKEN", "OPERATOR_TOKEN_FILE")):
            if getattr(self, token.lower()) is not None and getattr(self, file.lower()) is not None:
                raise ValueError(f"DELIVERY_{token} and DELIVERY_{file} are both set: give the token one way")
        return self

    @property
    def temporal_tls(self) -> bool:
        """True when the client speaks TLS to the frontend: a CA, a client certificate or a server name is set."""
        return any(value is not None for value in (self.temporal_tls_ca, self.temporal_tls_cert,
                                                   self.temporal_tls_server_name))

    @field_validator("pii_keys", "payload_keys")
    @classmethod
    def _aes_keys(cls, value: str | None, info: ValidationInfo) -> str | None:
        """Well-formed keys; and in production, keys at all: a process must never seal with a key of its own."""
        if value is None:
            if info.data.get("profile") == "production":
                raise ValueError("required with DELIVERY_PROFILE=production (id:base64key, current key first)")
            return value
        for item in value.split(","):
            key_id, _, encoded = item.strip().partition(":")
            try:
                size = len(base64.b64decode(encoded, validate=True))
            except binascii.Error:
                size = 0
            if not key_id or size not in (16, 24, 32):
                raise ValueError(f"key {key_id or '(no id)'!r} must be id:base64 of a 16, 24 or 32 byte key")
        return value

    @field_validator(*(f"{s.value}_database_url" for s in Service))
    @classmethod
    def _postgres_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("postgresql://", "postgresql+asyncpg://")):
            raise ValueError("must start with postgresql:// or postgresql+asyncpg://")
        return value

    @property
    def embedded_postgres(self) -> bool:
        """True when any service database is left to the embedded Postgres."""
        return any(getattr(self, f"{s.value}_database_url") is None for s in Service)

    @property
    def allow_private_webhooks(self) -> bool:
        return self.profile == "dev"

    @property
    def public_url(self) -> str:
        return (self.public_base_url or f"http://{self.api_host}:{self.api_port}").rstrip("/")

    def database_url(self, service: Service) -> str:
        """The SQLAlchemy (asyncpg) URL of a service's database; on the embedded Postgres, as its own role."""
        url = getattr(self, f"{service.value}_database_url")
        if url is None:
            url = f"postgresql://{service.value}@{self.postgres_host}:{self.postgres_port}/{service.value}"
        return url.replace("postgresql://", "postgresql+asyncpg://", 1)

    def database_dsn(self, service: Service) -> str:
        """The same database as a libpq DSN that psql accepts."""
        return self.database_url(service).replace("postgresql+asyncpg://", "postgresql://", 1)

    @property
    def postgres_admin_dsn(self) -> str:
        """The embedded Postgres's superuser on its maintenance database: it makes the services' roles."""
        return f"postgresql://postgres@{self.postgres_host}:{self.postgres_port}/postgres"

    def on_embedded_postgres(self, service: Service) -> bool:
        """True when the service's database lives on the embedded Postgres (postgres_host:postgres_port)."""
        url = urlsplit(self.database_dsn(service))
        return (url.hostname, url.port) == (self.postgres_host, self.postgres_port)

    def server_dsn(self, service: Service) -> str:
        """The maintenance database of the server holding a service's database, reachable before that database
        and its role exist: as the embedded Postgres's superuser, or else with the URL's own credentials."""
        if self.on_embedded_postgres(service):
            return self.postgres_admin_dsn
        return urlsplit(self.database_dsn(service))._replace(path="/postgres").geturl()

    @property
    def temporal_host(self) -> str:
        return self.temporal_address.rpartition(":")[0]

    @property
    def temporal_port(self) -> int:
        return int(self.temporal_address.rpartition(":")[2])

    @property
    def api_url(self) -> str:
        return f"http://{self.api_host}:{self.api_port}"

    @property
    def codec_url(self) -> str:
        return f"http://{self.codec_host}:{self.codec_port}"

    @property
    def temporal_ui_ip(self) -> str:
        """The address the dev server's Web UI binds (`--ui-ip`)."""
        return self.temporal_ui_host or self.temporal_host

    @property
    def temporal_ui_url(self) -> str:
        return f"http://{self.temporal_ui_ip}:{self.temporal_ui_port}"

    @property
    def temporal_metrics_url(self) -> str:
        return f"http://{self.temporal_host}:{self.temporal_metrics_port}/metrics"

    @property
    def metrics_address(self) -> str | None:
        """HOST:PORT of this process's Temporal Prometheus endpoint, or None when metrics are off."""
        return f"{self.metrics_host}:{self.metrics_port}" if self.metrics_port else None


def load_settings(**overrides) -> Settings:
    """Read settings, turning validation errors into one line that names the setting."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            if not error["loc"]:  # a rule across settings names them in its message
                problems.append(error["msg"].removeprefix("Value error, "))
                continue
            name = "DELIVERY_" + "__".join(str(p) for p in error["loc"]).upper()
            problems.append(f"{name}: {error['msg']}")
        raise SettingsError("invalid setting " + "; ".join(problems)) from None


def settings_environment(settings: Settings) -> dict[str, str]:
    """The environment that makes a child process read exactly these settings."""
    env = dict(os.environ)
    for name, value in settings.model_dump().items():
        if isinstance(value, dict):
            env.update({f"DELIVERY_{name.upper()}__{k.upper()}": str(v) for k, v in value.items()})
        elif value is not None:
            env[f"DELIVERY_{name.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
    return env
