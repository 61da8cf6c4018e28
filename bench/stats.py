"""Latency statistics, as the bench and `deliveryctl demo` report them."""

import statistics


def percentile(values: list[float], q: float) -> float | None:
    """The value at quantile `q` (0 to 1) of `values`, nearest rank; None without values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def stats(values: list[float]) -> dict:
    """p50, p95, p99, mean and max, rounded to 0.1 ms; all None without values."""
    if not values:
        return {"p50": None, "p95": None, "p99": None, "mean": None, "max": None}
    return {"p50": round(percentile(values, 0.50), 4), "p95": round(percentile(values, 0.95), 4),
            "p99": round(percentile(values, 0.99), 4), "mean": round(statistics.fmean(values), 4),
            "max": round(max(values), 4)}
