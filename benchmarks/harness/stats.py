"""Latency percentiles as the serving records report them."""


def percentile_ms(seconds: list[float], q: float) -> float | None:
    """The `q` quantile (nearest rank at or below) of `seconds`, in milliseconds (None when
    empty)."""
    if not seconds:
        return None
    ordered = sorted(seconds)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)
