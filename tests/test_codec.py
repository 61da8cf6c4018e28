"""The payload cipher (rotation, tampering) and the codec server the Temporal UI reads payloads through: real HTTP,
with a stand-in for the operators' OIDC provider (outside the product) publishing its signing keys."""

import base64
import json
import os
import subprocess
import sys
import time

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from fastapi import FastAPI
from temporalio.api.common.v1 import Payload

from api.codec import create_codec_app
from core.codec import ENCODING, PayloadCipher, PayloadCipherError
from core.crypto import parse_keys
from core.settings import Settings
from tests.support.servers import free_port, serving

OLD, NEW = "k1:" + base64.b64encode(b"o" * 32).decode(), "k2:" + base64.b64encode(b"n" * 32).decode()
ISSUER, AUDIENCE = "https://login.example.test", "temporal-ui"


def plain(text: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(text).encode())


async def test_a_rotation_reads_old_and_new_and_seals_with_the_new_key():
    before = PayloadCipher(*parse_keys(OLD))
    sealed_before = (await before.encode([plain("1 Test Way")]))[0]
    assert sealed_before.metadata["encoding"] == ENCODING and b"Test Way" not in sealed_before.data

    after = PayloadCipher(*parse_keys(f"{NEW},{OLD}"))
    sealed_after = (await after.encode([plain("2 Test Way")]))[0]
    assert sealed_after.metadata["encryption-key-id"] == b"k2"
    assert await after.decode([sealed_before, sealed_after]) == [plain("1 Test Way"), plain("2 Test Way")]
    # A payload written before encryption was turned on passes through.
    assert await after.decode([plain("3 Test Way")]) == [plain("3 Test Way")]

    with pytest.raises(PayloadCipherError, match="'k2'.*lacks"):
        await before.decode([sealed_after])
    tampered = Payload()
    tampered.CopyFrom(sealed_after)
    tampered.data = sealed_after.data[:-1] + bytes([sealed_after.data[-1] ^ 1])
    with pytest.raises(PayloadCipherError, match="altered"):
        await after.decode([tampered])


class Provider:
    """The operators' OIDC provider as the codec server sees it: a JWKS endpoint, and tokens it signs."""

    def __init__(self):
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.app = FastAPI()
        numbers = self.key.public_key().public_numbers()
        jwk = {"kty": "RSA", "kid": "op-1", "alg": "RS256", "use": "sig",
               "n": _b64url(numbers.n.to_bytes(256, "big")), "e": _b64url(numbers.e.to_bytes(3, "big"))}
        self.app.get("/jwks")(lambda: {"keys": [jwk]})

    def token(self, key=None, kid="op-1", **claims) -> str:
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "op-7", "email": "ana@ops.example",
                  "exp": int(time.time()) + 300, **claims}
        signing_input = f"{_b64url(json.dumps({'alg': 'RS256', 'kid': kid}).encode())}." \
                        f"{_b64url(json.dumps(claims).encode())}"
        signature = (key or self.key).sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64url(signature)}"


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.fixture
async def codec(tmp_path):
    provider = Provider()
    async with serving(provider.app, free_port()) as provider_url:
        settings = Settings(data_dir=tmp_path, payload_keys=NEW, codec_jwks_url=f"{provider_url}/jwks",
                            codec_issuer=ISSUER, codec_audience=AUDIENCE)
        async with serving(create_codec_app(settings), free_port()) as url:
            async with httpx.AsyncClient(base_url=url, timeout=10) as http:
                yield http, provider, settings


def body(*payloads: Payload) -> dict:
    return {"payloads": [{"metadata": {k: base64.b64encode(v).decode() for k, v in p.metadata.items()},
                          "data": base64.b64encode(p.data).decode()} for p in payloads]}


async def test_an_operator_token_reads_payloads_and_anything_else_is_refused(codec):
    http, provider, settings = codec
    sealed = (await PayloadCipher(*parse_keys(NEW)).encode([plain("1 Test Way")]))[0]
    bearer = {"Authorization": f"Bearer {provider.token()}", "X-Namespace": settings.temporal_namespace}

    decoded = await http.post("/decode", json=body(sealed), headers=bearer)
    assert decoded.status_code == 200, decoded.text
    assert base64.b64decode(decoded.json()["payloads"][0]["data"]) == b'"1 Test Way"'
    encoded = await http.post("/encode", json=decoded.json(), headers=bearer)
    assert base64.b64decode(encoded.json()["payloads"][0]["metadata"]["encoding"]) == ENCODING
    again = await http.post("/decode", json=encoded.json(), headers=bearer)
    assert again.json() == decoded.json()

    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    refused = {
        "no token": {},
        "not a JWT": {"Authorization": "Bearer not-a-jwt"},
        "another signer": {"Authorization": f"Bearer {provider.token(key=stranger)}"},
        "unknown key id": {"Authorization": f"Bearer {provider.token(kid='op-2')}"},
        "expired": {"Authorization": f"Bearer {provider.token(exp=int(time.time()) - 3600)}"},
        "another audience": {"Authorization": f"Bearer {provider.token(aud='billing')}"},
        "another issuer": {"Authorization": f"Bearer {provider.token(iss='https://evil.example')}"},
    }
    for why, headers in refused.items():
        answer = await http.post("/decode", json=body(sealed), headers=headers)
        assert answer.status_code == 401 and answer.json()["code"] == "unauthorized", why
        assert "Test Way" not in answer.text, why

    wrong_namespace = await http.post("/decode", json=body(sealed), headers={**bearer, "X-Namespace": "other"})
    assert wrong_namespace.status_code == 403 and wrong_namespace.json()["code"] == "wrong_namespace"
    garbage = await http.post("/decode", content=b"{not json", headers=bearer)
    assert garbage.status_code == 400 and garbage.json()["code"] == "invalid_payloads"
    foreign = (await PayloadCipher(*parse_keys(OLD)).encode([plain("x")]))[0]
    unreadable = await http.post("/decode", json=body(foreign), headers=bearer)
    assert unreadable.status_code == 422 and unreadable.json()["code"] == "payload_unreadable"


async def test_only_the_temporal_ui_origin_may_call_it_from_a_browser(codec):
    http, _, settings = codec
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
    ui = await http.options("/decode", headers={**preflight, "Origin": settings.temporal_ui_url})
    assert ui.status_code == 200 and ui.headers["access-control-allow-origin"] == settings.temporal_ui_url
    other = await http.options("/decode", headers={**preflight, "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


def test_in_production_the_codec_server_refuses_to_start_without_operator_authentication(tmp_path):
    env = {**os.environ, "DELIVERY_PROFILE": "production", "DELIVERY_DATA_DIR": str(tmp_path),
           "DELIVERY_PII_KEYS": OLD, "DELIVERY_PAYLOAD_KEYS": NEW, "DELIVERY_CODEC_PORT": str(free_port())}
    env.pop("DELIVERY_CODEC_JWKS_URL", None)
    run = subprocess.run([sys.executable, "-m", "cli.main", "codec-server"], env=env, capture_output=True,
                         text=True, timeout=60)
    assert run.returncode != 0
    assert "DELIVERY_CODEC_JWKS_URL is required" in run.stderr and "Traceback" not in run.stderr
