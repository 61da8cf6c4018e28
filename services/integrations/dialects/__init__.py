"""Each partner dialect's vocabulary in one place: status words, callback events, cancel reasons, callback format.

The API's dialect routes and the status callbacks both read these tables, so what a DoorDash, Uber or Olo
partner sees over HTTP and what its webhook receives always agree.
"""

from services.integrations.dialects import doordash, native, olo, uber
from services.integrations.dialects.base import CallbackFormat

_FORMATS = {f.dialect: f for f in (native.CALLBACKS, doordash.CALLBACKS, uber.CALLBACKS, olo.CALLBACKS)}


def callback_format(dialect: str) -> CallbackFormat:
    """The callback format of a partner's dialect."""
    return _FORMATS[dialect]
