"""Which task each request of a load generator goes to: uniform, or Zipf-ranked."""

import random
from collections.abc import Callable

ZIPF_S = 1.1


def task_chooser(tasks: list[str], traffic: str, rng: random.Random) -> Callable[[], str]:
    """A function drawing one of `tasks` per call: `uniform`, or `zipf` with the first task the
    most requested (weight 1 / rank ** ZIPF_S)."""
    if traffic == "uniform":
        return lambda: rng.choice(tasks)
    weights = [1.0 / (rank + 1) ** ZIPF_S for rank in range(len(tasks))]
    return lambda: rng.choices(tasks, weights)[0]
