"""`deliveryctl bench`: throughput and latency of the real stack, against a bare Temporal baseline of the same shape.

- `bench.bare`: the baseline, a no-op workflow shaped like one real delivery's history, and its workers.
- `bench.stack`: `deliveryctl up` as a subprocess on free ports, stopped cleanly whatever happens.
- `bench.seed`: the bench partner, its stores, and extra robots and pilots for the West Hollywood market.
- `bench.receiver`: the bench partner's webhook endpoint, verifying Standard Webhooks signatures.
- `bench.sampler`: CPU seconds and peak RSS of the stack's processes, sampled every 0.5 s.
- `bench.history`: activities per task queue and updates, counted from a real delivery's history.
- `bench.stats`: latency percentiles, as `deliveryctl demo` reports them too.
- `bench.plot`: throughput and p95 latency against concurrency, ours and bare.

The command itself is `cli/bench.py`.
"""
