"""The collector in a long-running process: what was loaded at start-up is never scanned again."""

import gc


def settle_heap() -> None:
    """Collect once, then move every object alive now out of the collector's reach (`gc.freeze`).

    A process that has imported the app, its models and the SDK holds about 100,000 objects or more that live as
    long as it does: modules, classes, mapped tables, schemas. Every full collection scanned them all, a pause of tens
    of milliseconds (`python -m bench.heap`) that each request or task in flight waited out. Frozen, they are
    still freed when nothing refers to them; a full collection scans only what was made since start-up. Call it
    once, when start-up is done.
    """
    gc.collect()
    gc.freeze()
