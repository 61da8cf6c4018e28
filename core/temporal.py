"""The Temporal client, built once per process from settings."""

import gc
import logging

from temporalio import activity
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.common import MetricMeter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from core.codec import data_converter
from core.settings import SEARCH_ATTRIBUTES, Settings
from core.temporal_credentials import connect_options, follow_token_file

# Buckets (seconds) of the business histograms; Temporal's own metrics keep the SDK's defaults.
HISTOGRAM_BUCKETS = {
    "delivery_status_duration_seconds": [1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200],
    "dispatch_planning_seconds": [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
}
# This process's runtimes: by metrics address, and under None the one for clients without metrics.
_runtimes: dict[str | None, Runtime] = {}


def metrics_runtime(bind_address: str) -> Runtime | None:
    """A Temporal runtime serving the SDK's and the workflows'/activities' metrics at http://ADDRESS/metrics.

    One per address and process: the endpoint binds its port when the runtime is made. If the port is taken,
    the error is logged and None returned: a worker without metrics still delivers orders.
    """
    if bind_address not in _runtimes:
        prometheus = PrometheusConfig(bind_address=bind_address, durations_as_seconds=True,
                                      histogram_bucket_overrides=HISTOGRAM_BUCKETS)
        try:
            _runtimes[bind_address] = Runtime(telemetry=TelemetryConfig(metrics=prometheus))
        except (ValueError, RuntimeError) as exc:  # the bridge reports "Address already in use" as ValueError
            logging.getLogger(__name__).error("no metrics: cannot serve Prometheus metrics on %s: %s",
                                              bind_address, exc)
            return None
    return _runtimes[bind_address]


def plain_runtime() -> Runtime:
    """This process's runtime for clients without metrics: one of our own rather than the SDK's default, which
    lives until the interpreter finalizes, so that `stop_runtimes` can stop it."""
    if None not in _runtimes:
        _runtimes[None] = Runtime(telemetry=TelemetryConfig())
    return _runtimes[None]


def stop_runtimes() -> None:
    """Stop this process's runtimes now, while the interpreter is whole; call it once no client is used any more.

    The SDK has no close for a client or a runtime: a runtime's threads (Rust, Tokio) are stopped and joined, with
    the GIL released, when its last reference goes, and a client holds its runtime inside a reference cycle, so
    only the garbage collector lets it go. Left to the interpreter's exit, those threads may still call into Python
    while it finalizes, and the process aborts (`Fatal Python error: PyGILState_Release`, exit status 134).
    """
    _runtimes.clear()
    gc.collect()


def activity_meter() -> MetricMeter:
    """The running activity's metric meter (the worker's Prometheus endpoint); a no-op outside an activity."""
    return activity.metric_meter() if activity.in_activity() else MetricMeter.noop


async def connect(settings: Settings, *, metrics: bool = True, identity: str | None = None) -> Client:
    """Connect to the configured Temporal namespace with our data converter (pydantic, payloads encrypted).

    With `metrics` and a `metrics_port` setting (worker processes), the client's runtime serves Prometheus
    metrics on that port; workers built on this client report through it. TLS and the bearer token come from the
    settings (`core.temporal_credentials`); `identity` is what the server records as the caller (default pid@host).
    """
    address = settings.metrics_address if metrics else None
    client = await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        **connect_options(settings),
        **({"identity": identity} if identity else {}),
        data_converter=data_converter(settings),
        runtime=(metrics_runtime(address) if address else None) or plain_runtime(),
    )
    follow_token_file(client, settings)
    return client


async def ensure_search_attributes(client: Client) -> list[str]:
    """Register the delivery search attributes that the namespace lacks; return those added."""
    listing = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=client.namespace)
    )
    missing = [name for name in SEARCH_ATTRIBUTES if name not in listing.custom_attributes]
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=client.namespace,
                search_attributes={name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for name in missing},
            )
        )
    return missing
