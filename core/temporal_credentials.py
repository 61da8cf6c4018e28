"""How a process proves itself to the Temporal frontend: TLS (with a client certificate for mTLS) and a bearer token.

Unset, a client speaks plain gRPC without a token, as the embedded dev server expects. In the production shape the
frontend requires a client certificate signed by its CA, and its authorizer reads the caller's permissions from
the token's claims (docs/deploy.md, "Operator authentication").
"""

import asyncio
import logging
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.service import TLSConfig

from core.settings import Settings, SettingsError


def connect_options(settings: Settings) -> dict[str, Any]:
    """The `Client.connect` keyword arguments that carry the settings' TLS and token; empty when none is set."""
    options: dict[str, Any] = {}
    if settings.temporal_tls:
        options["tls"] = tls_config(settings)
    token = service_token(settings)
    if token is not None:
        options["api_key"] = token  # sent as `authorization: Bearer <token>` on every call
        options.setdefault("tls", False)  # a token alone does not turn TLS on: the dev server speaks plain gRPC
    return options


def tls_config(settings: Settings) -> TLSConfig:
    """The client's TLS to the frontend: the CA to trust, the client certificate and key, the name to verify."""
    return TLSConfig(server_root_ca_cert=read_setting_file(settings, "temporal_tls_ca"),
                     client_cert=read_setting_file(settings, "temporal_tls_cert"),
                     client_private_key=read_setting_file(settings, "temporal_tls_key"),
                     domain=settings.temporal_tls_server_name)


def service_token(settings: Settings) -> str | None:
    """The token this process sends: `temporal_api_key`, or the contents of `temporal_api_key_file`."""
    if settings.temporal_api_key is not None:
        return settings.temporal_api_key.strip() or None
    raw = read_setting_file(settings, "temporal_api_key_file")
    if raw is None:
        return None
    if not raw.strip():
        raise SettingsError(f"DELIVERY_TEMPORAL_API_KEY_FILE: {settings.temporal_api_key_file} is empty")
    return raw.decode().strip()


# How often a process re-reads its token file: identity providers issue short-lived tokens, and whatever renews
# the file (a sidecar, a secrets agent) does so well before the old one expires.
TOKEN_FILE_CHECK_SECONDS = 30.0
# The running followers, so the event loop keeps them (it holds tasks only weakly).
_followers: set[asyncio.Task] = set()


def follow_token_file(client: Client, settings: Settings, interval: float = TOKEN_FILE_CHECK_SECONDS) -> None:
    """Keep the client's token equal to `temporal_api_key_file` while the event loop runs: a renewed token is sent
    from the next call on, with no restart. Nothing to follow without the setting."""
    if settings.temporal_api_key_file is None:
        return
    task = asyncio.get_running_loop().create_task(_follow(client, settings, interval), name="temporal-token-file")
    _followers.add(task)
    task.add_done_callback(_followers.discard)


async def _follow(client: Client, settings: Settings, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            token = service_token(settings)
        except SettingsError as exc:  # being rewritten, or gone: keep the token we have and say so
            logging.getLogger(__name__).warning("token file not re-read, the current token stays: %s", exc)
            continue
        if token is not None and token != client.api_key:
            client.api_key = token
            logging.getLogger(__name__).info("Temporal token renewed from %s", settings.temporal_api_key_file)


def read_setting_file(settings: Settings, name: str) -> bytes | None:
    """The bytes of the file a path setting names; SettingsError naming the setting when it cannot be read."""
    path: Path | None = getattr(settings, name)
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SettingsError(f"DELIVERY_{name.upper()}: cannot read {path}: {exc.strerror}") from None
