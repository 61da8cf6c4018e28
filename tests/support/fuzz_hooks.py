"""Schemathesis hooks that `st run` loads for tests/lifecycle/test_fuzzing.py (its `hooks` setting names this file).

Uber Direct takes an address as plain text or as its structured address, a JSON string such as
`{"street_address": [...], "city": ..., "state": ..., "zip_code": ..., "country": ...}`. A string drawn from the
schema is almost never that JSON, so the handler's parsing of it would never be reached. Here every Uber body the
fuzzer draws has one or both addresses as such a JSON object, whose parts are any JSON value at all (the schema's
examples and the coverage phase still send plain ones).

Uber's documented answer when no robot can take a trip now is `503 couriers_busy` (docs/partners.md): that answer
is not counted as a server error. Any other 5xx is.
"""

import json

import schemathesis
from hypothesis import strategies as st
from schemathesis.core.failures import ServerError

UBER_PATHS = "/v1/customers/"
ADDRESS_FIELDS = ("pickup_address", "dropoff_address")
PARTS = ("street_address", "city", "state", "zip_code", "country")

ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6)
STRUCTURED_ADDRESS = st.dictionaries(st.sampled_from(PARTS), ANY_JSON, max_size=len(PARTS)).map(json.dumps)


def _with_addresses(drawn: tuple) -> object:
    body, fields, addresses = drawn
    if not isinstance(body, dict):
        return body
    return {**body, **{name: address for name, address in zip(fields, addresses) if name in body}}


@schemathesis.hook
def before_generate_body(context, strategy):
    operation = context.operation
    if operation is None or not operation.path.startswith(UBER_PATHS):
        return strategy
    fields = st.lists(st.sampled_from(ADDRESS_FIELDS), unique=True, min_size=1)
    addresses = st.lists(STRUCTURED_ADDRESS, min_size=len(ADDRESS_FIELDS), max_size=len(ADDRESS_FIELDS))
    return st.tuples(strategy, fields, addresses).map(_with_addresses)


@schemathesis.hook
def filter_failure(context, failure, case, response) -> bool:
    if not (isinstance(failure, ServerError) and response.status_code == 503):
        return True
    try:
        return json.loads(response.content).get("code") != "couriers_busy"
    except (ValueError, AttributeError):
        return True
