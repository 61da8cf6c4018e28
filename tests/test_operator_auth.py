"""Operators and services prove themselves to Temporal: TLS and a token from the settings reach the client, and
`deliveryctl ops` acts with the operator's own token, recorded under the identity it names.

The CLI runs as a subprocess against the session's Temporal dev server, where a stub workflow answers the operator
updates in place of a delivery and keeps what it was sent.
"""

import asyncio
import base64
import json
import os
import subprocess
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
from temporalio import workflow
from temporalio.client import Client
from temporalio.service import TLSConfig
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from cli.ops import CredentialError, operator_of, token_identity
from core import temporal
from core.contracts import OperatorAction
from core.settings import Settings, SettingsError, load_settings, settings_environment
from core.temporal_credentials import follow_token_file
from tests.support.cli import ROOT, deliveryctl
from workflows.delivery import workflow_id

AES_KEY = "k1:" + base64.b64encode(bytes(range(32))).decode()
PRODUCTION = {"DELIVERY_PROFILE": "production", "DELIVERY_PII_KEYS": AES_KEY, "DELIVERY_PAYLOAD_KEYS": AES_KEY,
              "DELIVERY_CODEC_JWKS_URL": "https://idp.example/jwks"}


def jwt(**claims) -> str:
    """A JWT as an identity provider issues it; its signature is the frontend's to check, so any bytes do here."""
    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256', 'typ': 'JWT', 'kid': 'dev'})}.{part(claims)}.c2lnbmF0dXJl"


# ---- settings -> client ----------------------------------------------------------------------------


@pytest.fixture
def captured(monkeypatch) -> dict:
    """The keyword arguments `core.temporal.connect` hands to `Client.connect`, without connecting."""
    seen: dict = {}

    async def fake_connect(target_host, **kwargs):
        seen.update(kwargs, target_host=target_host)
        return SimpleNamespace(api_key=kwargs.get("api_key"))

    monkeypatch.setattr(temporal.Client, "connect", fake_connect)
    return seen


async def test_unset_credentials_leave_the_client_as_it_was(captured):
    await temporal.connect(load_settings(), metrics=False)
    assert not {"tls", "api_key", "rpc_metadata", "identity"} & set(captured)


async def test_tls_files_and_the_service_token_reach_the_client(captured, tmp_path):
    files = {name: tmp_path / f"{name}.pem" for name in ("ca", "cert", "key")}
    for name, path in files.items():
        path.write_bytes(f"-----{name}-----".encode())
    (tmp_path / "token").write_text(jwt(sub="worker-dispatch") + "\n")
    settings = load_settings(temporal_tls_ca=files["ca"], temporal_tls_cert=files["cert"],
                             temporal_tls_key=files["key"], temporal_tls_server_name="temporal",
                             temporal_api_key_file=tmp_path / "token")

    await temporal.connect(settings, metrics=False, identity="deliveryctl: ana@example.com")

    assert captured["tls"] == TLSConfig(server_root_ca_cert=b"-----ca-----", client_cert=b"-----cert-----",
                                        client_private_key=b"-----key-----", domain="temporal")
    assert captured["api_key"] == jwt(sub="worker-dispatch")
    assert captured["identity"] == "deliveryctl: ana@example.com"
    assert following_token_files() == 1  # the client follows its token file from now on
    await stop_following()


def following_token_files() -> int:
    return sum(1 for task in asyncio.all_tasks() if task.get_name() == "temporal-token-file" and not task.done())


async def stop_following() -> None:
    followers = [task for task in asyncio.all_tasks() if task.get_name() == "temporal-token-file"]
    for task in followers:
        task.cancel()
    await asyncio.gather(*followers, return_exceptions=True)


async def test_a_renewed_token_file_is_sent_from_the_next_call_on(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("first")
    client = SimpleNamespace(api_key="first")
    follow_token_file(client, load_settings(temporal_api_key_file=token_file), interval=0.01)
    try:
        token_file.write_text("renewed\n")
        for _ in range(200):
            if client.api_key == "renewed":
                break
            await asyncio.sleep(0.01)
        assert client.api_key == "renewed"
        token_file.unlink()  # mid-rotation: the token the client has stays
        await asyncio.sleep(0.05)
        assert client.api_key == "renewed" and following_token_files() == 1
    finally:
        await stop_following()
    follow_token_file(client, load_settings(temporal_api_key="inline"))
    assert following_token_files() == 0  # an inline token has nothing to follow


async def test_a_token_alone_keeps_plain_grpc(captured):
    await temporal.connect(load_settings(temporal_api_key="tok"), metrics=False)
    assert captured["api_key"] == "tok" and captured["tls"] is False and following_token_files() == 0


@pytest.mark.parametrize(("settings", "message"), [
    ({"temporal_tls_cert": "/tls/client.pem"}, "DELIVERY_TEMPORAL_TLS_CERT is set without DELIVERY_TEMPORAL_TLS_KEY"),
    ({"temporal_tls_key": "/tls/client-key.pem"},
     "DELIVERY_TEMPORAL_TLS_KEY is set without DELIVERY_TEMPORAL_TLS_CERT"),
    ({"temporal_api_key": "a", "temporal_api_key_file": "/run/secrets/t"},
     "DELIVERY_TEMPORAL_API_KEY and DELIVERY_TEMPORAL_API_KEY_FILE are both set"),
    ({"operator_token": "a", "operator_token_file": "/home/ana/token"},
     "DELIVERY_OPERATOR_TOKEN and DELIVERY_OPERATOR_TOKEN_FILE are both set"),
])
def test_incomplete_credentials_are_refused_naming_the_settings(settings, message):
    with pytest.raises(SettingsError, match=message):
        load_settings(**settings)


@pytest.mark.parametrize(("setting", "variable"), [("temporal_tls_ca", "DELIVERY_TEMPORAL_TLS_CA"),
                                                   ("temporal_api_key_file", "DELIVERY_TEMPORAL_API_KEY_FILE")])
async def test_an_unreadable_credential_file_is_named(captured, tmp_path, setting, variable):
    with pytest.raises(SettingsError, match=f"{variable}: cannot read {tmp_path / 'missing.pem'}"):
        await temporal.connect(load_settings(**{setting: tmp_path / "missing.pem"}), metrics=False)


def test_child_processes_get_the_same_credentials(tmp_path):
    settings = load_settings(temporal_tls_ca=tmp_path / "ca.pem", temporal_tls_cert=tmp_path / "c.pem",
                             temporal_tls_key=tmp_path / "k.pem", temporal_api_key_file=tmp_path / "token")
    env = settings_environment(settings)
    assert env["DELIVERY_TEMPORAL_TLS_KEY"] == str(tmp_path / "k.pem")
    assert env["DELIVERY_TEMPORAL_API_KEY_FILE"] == str(tmp_path / "token")
    assert Settings().temporal_tls is False and settings.temporal_tls is True


# ---- the operator's identity -----------------------------------------------------------------------


def test_the_operator_is_the_one_the_token_names():
    assert token_identity(jwt(sub="u-81", email="ana@example.com")) == "ana@example.com"
    assert token_identity(jwt(sub="u-81")) == "u-81"
    for token, problem in ((jwt(scope="ops"), "names no one"), ("opaque-api-key", "not a JWT"),
                           ("a.!!!.c", "not base64url JSON"),
                           (jwt(sub="u-81", exp=int(time.time()) - 60), "expired")):
        with pytest.raises(CredentialError, match=problem):
            token_identity(token)


def test_without_a_token_the_dev_profile_marks_the_operator_unauthenticated(monkeypatch):
    monkeypatch.setenv("USER", "ana")
    assert operator_of(load_settings()).name == "ana (unauthenticated)"
    assert operator_of(load_settings(), typed_name="bo").name == "bo (unauthenticated)"
    with pytest.raises(CredentialError, match="DELIVERY_PROFILE=production"):
        operator_of(load_settings(profile="production", pii_keys=AES_KEY, payload_keys=AES_KEY,
                                  codec_jwks_url="https://idp.example/jwks"))


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*deliveryctl(), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def cli_env(**variables: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DELIVERY_")}
    return {**env, **variables}


@pytest.mark.parametrize("action", ["retry", "redispatch", "cancel", "resolve", "returned"])
def test_production_refuses_an_operator_action_without_a_credential(action, tmp_path):
    done = run_cli(cli_env(**PRODUCTION, DELIVERY_DATA_DIR=str(tmp_path), DELIVERY_TEMPORAL_ADDRESS="127.0.0.1:9"),
                   "ops", action, str(uuid.uuid4()), "--note", "customer called")
    assert done.returncode == 2, done.stderr
    assert "needs the operator's own token with DELIVERY_PROFILE=production" in done.stderr
    assert "Traceback" not in done.stderr


@workflow.defn(name="OperatorActionStub")
class OperatorActionStub:
    """Answers the `retry` update in place of a parked delivery and keeps each action sent."""

    def __init__(self) -> None:
        self.actions: list[OperatorAction] = []

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)

    @workflow.update(name="retry")
    async def retry(self, action: OperatorAction) -> str:
        self.actions.append(action)
        return f"retry recorded for {action.operator}"

    @workflow.query
    def recorded(self) -> list[OperatorAction]:
        return self.actions


@pytest.fixture(scope="module")
async def stub_stack(temporal_env, tmp_path_factory):
    """Settings for the CLI on the session's Temporal, and a worker running the stub workflow there."""
    settings = load_settings(data_dir=tmp_path_factory.mktemp("ops-auth"),
                             temporal_address=temporal_env.client.service_client.config.target_host)
    client = await temporal.connect(settings, metrics=False)  # the CLI's converter, so the stub reads its actions
    queue = f"operator-auth-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=queue, workflows=[OperatorActionStub],
                      workflow_runner=UnsandboxedWorkflowRunner()):
        yield settings, client, queue


async def parked(client: Client, queue: str):
    """A stub standing where a delivery's workflow would: `deliveryctl ops <action> DELIVERY_ID` reaches it."""
    delivery_id = uuid.uuid4()
    handle = await client.start_workflow(OperatorActionStub.run, id=workflow_id(delivery_id), task_queue=queue)
    return delivery_id, handle


async def accepted_identities(handle) -> list[str]:
    """The caller identity Temporal recorded with each accepted update."""
    return [event.workflow_execution_update_accepted_event_attributes.accepted_request.meta.identity
            async for event in handle.fetch_history_events()
            if event.HasField("workflow_execution_update_accepted_event_attributes")]


async def test_an_operator_action_is_recorded_under_the_tokens_identity(stub_stack, tmp_path):
    settings, client, queue = stub_stack
    delivery_id, handle = await parked(client, queue)
    token_file = tmp_path / "ana.jwt"
    token_file.write_text(jwt(sub="u-81", email="ana@example.com", permissions=["default:writer"]))
    env = cli_env(**settings_environment(settings), USER="mallory")

    done = await asyncio.to_thread(run_cli, env, "ops", "retry", str(delivery_id), "--note", "robot freed",
                                   "--token-file", str(token_file))

    assert done.returncode == 0, done.stderr
    assert "retry recorded for ana@example.com" in done.stdout
    [action] = await handle.query(OperatorActionStub.recorded)
    assert (action.operator, action.note) == ("ana@example.com", "robot freed")
    assert await accepted_identities(handle) == ["deliveryctl: ana@example.com"]
    await handle.terminate("test over")


async def test_the_token_may_come_from_the_settings_and_no_one_else_may_be_named(stub_stack):
    settings, client, queue = stub_stack
    delivery_id, handle = await parked(client, queue)
    env = cli_env(**settings_environment(settings), DELIVERY_OPERATOR_TOKEN=jwt(sub="u-99"))

    named = await asyncio.to_thread(run_cli, env, "ops", "retry", str(delivery_id), "--note", "n",
                                    "--operator", "boss")
    done = await asyncio.to_thread(run_cli, env, "ops", "retry", str(delivery_id), "--note", "n")

    assert named.returncode == 2 and "--operator cannot name someone else" in named.stderr
    assert done.returncode == 0, done.stderr
    assert [a.operator for a in await handle.query(OperatorActionStub.recorded)] == ["u-99"]
    await handle.terminate("test over")


async def test_the_dev_stack_without_a_token_records_an_unauthenticated_operator(stub_stack):
    settings, client, queue = stub_stack
    delivery_id, handle = await parked(client, queue)
    env = cli_env(**settings_environment(settings))

    done = await asyncio.to_thread(run_cli, env, "ops", "retry", str(delivery_id), "--note", "n", "--operator", "bo")

    assert done.returncode == 0, done.stderr
    assert [a.operator for a in await handle.query(OperatorActionStub.recorded)] == ["bo (unauthenticated)"]
    assert await accepted_identities(handle) == ["deliveryctl: bo (unauthenticated)"]
    await handle.terminate("test over")


def test_an_expired_token_is_refused_before_anything_is_sent(tmp_path):
    token_file = tmp_path / "old.jwt"
    token_file.write_text(jwt(sub="u-81", exp=int(time.time()) - 3600))
    done = run_cli(cli_env(DELIVERY_DATA_DIR=str(tmp_path), DELIVERY_TEMPORAL_ADDRESS="127.0.0.1:9"),
                   "ops", "retry", str(uuid.uuid4()), "--note", "n", "--token-file", str(token_file))
    assert done.returncode == 2 and "has expired" in done.stderr


def test_a_missing_token_file_is_named(tmp_path):
    missing = Path(tmp_path / "nope.jwt")
    done = run_cli(cli_env(DELIVERY_DATA_DIR=str(tmp_path), DELIVERY_TEMPORAL_ADDRESS="127.0.0.1:9"),
                   "ops", "stuck", "--token-file", str(missing))
    assert done.returncode == 2 and f"cannot read the operator token {missing}" in done.stderr
