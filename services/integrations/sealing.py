"""Sealed columns of the Integrations database: each value sealed for its table, row and column, and only there."""

from sqlalchemy import inspect

from core.crypto import Vault
from services.integrations.models import IntegrationsModel


def place(row: IntegrationsModel, column: str) -> str:
    """`table:primary key:column`, the place a sealed value is bound to."""
    (key,) = inspect(type(row)).primary_key
    return f"{row.__tablename__}:{getattr(row, key.name)}:{column}"


def seal(vault: Vault, row: IntegrationsModel, column: str, plaintext: str) -> None:
    setattr(row, column, vault.encrypt(plaintext, place(row, column)))


def unseal(vault: Vault, row: IntegrationsModel, column: str) -> str:
    return vault.decrypt(getattr(row, column), place(row, column))
