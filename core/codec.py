"""Workflow payloads encrypted before they reach Temporal: what a delivery carries (addresses, names, notes) is
never stored in clear in histories, and only a holder of the keys (our processes, or an operator through the
codec server) reads it.

Each payload is serialized whole (its metadata and data) and sealed with AES-GCM under the current key of
`DELIVERY_PAYLOAD_KEYS`; the key id travels in the clear metadata, so a rotation (a new key first, the old one
kept until no running delivery holds payloads sealed with it) decrypts old and new alike. A payload without our
encoding (one written before encryption was turned on) passes through unchanged.
"""

import dataclasses
import os
from collections.abc import Sequence

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, PayloadCodec

from core.crypto import development_key, parse_keys
from core.settings import Settings

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
NONCE_BYTES = 12


class PayloadCipherError(Exception):
    """A payload sealed with a key this process does not hold, or altered after it was sealed."""


class PayloadCipher(PayloadCodec):
    """AES-GCM over whole payloads, with named keys: seals with the current one, opens with any it holds."""

    def __init__(self, keys: dict[str, bytes], current: str):
        self._keys = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self.current = current

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.seal(payload) for payload in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.open(payload) for payload in payloads]

    def seal(self, payload: Payload) -> Payload:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._keys[self.current].encrypt(nonce, payload.SerializeToString(), self.current.encode())
        return Payload(metadata={"encoding": ENCODING, KEY_ID: self.current.encode()}, data=nonce + sealed)

    def open(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        key_id = payload.metadata.get(KEY_ID, b"").decode()
        key = self._keys.get(key_id)
        if key is None:
            raise PayloadCipherError(f"payload sealed with key {key_id!r}, which DELIVERY_PAYLOAD_KEYS lacks")
        try:
            plain = key.decrypt(payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:], key_id.encode())
        except Exception as exc:  # cryptography's InvalidTag carries no message of its own
            raise PayloadCipherError(f"payload sealed with key {key_id!r} does not open: altered") from exc
        opened = Payload()
        opened.ParseFromString(plain)
        return opened


def payload_cipher(settings: Settings) -> PayloadCipher:
    """The cipher for `DELIVERY_PAYLOAD_KEYS`; without them (the dev profile only: production settings refuse to
    load), a key made once in the data dir and shared by the dev stack's processes."""
    return PayloadCipher(*parse_keys(settings.payload_keys or development_key(settings.data_dir, "payload")))


def data_converter(settings: Settings) -> DataConverter:
    """The converter every client of ours uses: pydantic models to JSON, then sealed with the payload cipher."""
    return dataclasses.replace(pydantic_data_converter, payload_codec=payload_cipher(settings))
