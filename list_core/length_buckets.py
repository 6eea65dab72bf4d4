"""A training batch's rows split into runs of similar length, one forward each, so the frozen
encoder does less work on padding.

Why: a batch is padded to its longest row, and the eager encoder computes every padded token.
16 random sst-2 rows held 532 real tokens in a 944-token batch; two forwards over the rows
sorted by length (8 short, 8 long) needed 768 (what that saves a whole job:
docs/notes/training-speed.md). Each forward has a fixed cost too, so a split is only made
where it saves more tokens than that cost. A row's result does not depend on the other rows
of its forward (attention is masked), so the logits are the same up to rounding, in the
batch's own row order.
"""

from collections.abc import Callable, Sequence

import torch

from list_core.batching import TensorBatch, collate
from list_core.prompts import EncodedRow

# The fixed cost of one more forward+backward, in padded tokens: ~20 ms of Python and
# dispatch against ~0.2 ms per token of a 16-row MiniLM batch (measured as above).
FORWARD_COST_TOKENS = 96
MAX_RUNS = 4


def length_runs(lengths: Sequence[int], forward_cost: int = FORWARD_COST_TOKENS) -> list[list[int]]:
    """Row indices in runs of similar length whose padded tokens plus `forward_cost` per run
    are fewest (at most `MAX_RUNS`); one run keeps the rows in their own order."""
    order = sorted(range(len(lengths)), key=lambda row: lengths[row])
    sorted_lengths = [lengths[row] for row in order]
    count = len(order)
    # best[k][j]: least cost of the first j sorted rows in k runs; cut[k][j]: where run k starts
    infinity = float("inf")
    best = [[infinity] * (count + 1) for _ in range(MAX_RUNS + 1)]
    cut = [[0] * (count + 1) for _ in range(MAX_RUNS + 1)]
    best[0][0] = 0
    for runs in range(1, MAX_RUNS + 1):
        for end in range(1, count + 1):
            for start in range(runs - 1, end):
                cost = best[runs - 1][start] + (end - start) * sorted_lengths[end - 1]
                if cost + forward_cost < best[runs][end]:
                    best[runs][end] = cost + forward_cost
                    cut[runs][end] = start
    runs = min(range(1, MAX_RUNS + 1), key=lambda k: (best[k][count], k))
    if runs == 1:
        return [list(range(count))]
    bounds, end = [], count
    for k in range(runs, 0, -1):
        bounds.append((cut[k][end], end))
        end = cut[k][end]
    return [order[start:end] for start, end in reversed(bounds)]


def bucketed(
    forward: Callable[[TensorBatch], torch.Tensor],
    rows: Sequence[EncodedRow],
    pad_id: int,
    device: torch.device,
) -> torch.Tensor:
    """`forward` over `rows` as one batch would give it, computed one run of `length_runs` at
    a time; the result's rows are in the order of `rows`."""
    runs = length_runs([len(row.input_ids) for row in rows])
    if len(runs) == 1:
        return forward(collate(rows, pad_id, device))
    outputs = [forward(collate([rows[i] for i in run], pad_id, device)) for run in runs]
    placed = torch.tensor([i for run in runs for i in run], device=outputs[0].device)
    return torch.cat(outputs).index_select(0, torch.argsort(placed))
