"""Encryption of personal data at rest, and hashing of credentials: nothing secret is stored in clear."""

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from core.settings import Settings


class Vault:
    """AES-GCM with named keys: encrypts with the current key, decrypts with any key it holds (rotation).

    Every value is sealed for one place, `table:row:column`, bound in with the key id as associated data: a
    sealed value copied to another row or column does not open there (`InvalidTag`).
    """

    def __init__(self, keys: dict[str, bytes], current: str):
        self._keys = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self.current = current

    def encrypt(self, plaintext: str, place: str) -> str:
        nonce = os.urandom(12)
        sealed = self._keys[self.current].encrypt(nonce, plaintext.encode(), f"{place}:{self.current}".encode())
        return f"{self.current}:{base64.b64encode(nonce + sealed).decode()}"

    def decrypt(self, token: str, place: str) -> str:
        key_id, _, payload = token.partition(":")
        raw = base64.b64decode(payload)
        return self._keys[key_id].decrypt(raw[:12], raw[12:], f"{place}:{key_id}".encode()).decode()


def vault_from_settings(settings: Settings) -> Vault:
    """The vault for `DELIVERY_PII_KEYS`; without them (the dev profile only: production settings refuse to load),
    a key made once in the data dir."""
    keys, current = parse_keys(settings.pii_keys or development_key(settings.data_dir, "pii"))
    return Vault(keys, current)


def parse_keys(spec: str) -> tuple[dict[str, bytes], str]:
    """Named AES keys from "id:base64key,..." (the form settings validate), and the id of the first: the one
    that encrypts; the others still decrypt, so a rotation prepends a key and drops the oldest later."""
    keys = {}
    for item in spec.split(","):
        key_id, _, encoded = item.strip().partition(":")
        keys[key_id] = base64.b64decode(encoded)
    return keys, spec.split(",")[0].partition(":")[0].strip()


def development_key(data_dir: Path, purpose: str) -> str:
    """A dev stack's key for `purpose`, made once under the data dir and shared by its processes."""
    path = data_dir / "secrets" / f"{purpose}.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".{purpose}.{os.getpid()}.{secrets.token_hex(4)}")
        draft.write_text(f"dev1:{base64.b64encode(os.urandom(32)).decode()}")
        draft.chmod(0o600)
        try:  # processes starting together all end up with the first key linked into place
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_text().strip()


def hash_credential(credential: str) -> str:
    """A stable hash for looking a bearer credential up without storing it."""
    return hashlib.sha256(credential.encode()).hexdigest()


def new_credential(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(24)}"


def new_webhook_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


def sign_webhook(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The Standard Webhooks `webhook-signature` value for one message."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
