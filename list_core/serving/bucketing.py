"""Where a batch's rows and tokens go in the scripted forward, worked out in Python from the
rows' lengths (no tensor read, no device sync): attention buckets, each group's token count,
picked-token positions and the row counts the Linear layers run on."""

from collections.abc import Sequence

# Where a bucket sits: [first row, rows, first token, tokens, longest row].
Span = list[int]

# Cost model of one attention bucket, in units of one padded query-key pair: rows * longest^2
# pairs, plus BUCKET_COST for the bucket's own calls (three pads, attention, one unpad per
# layer). Measured on MiniLM (2 CPU threads): splitting a 31-row batch of sst-2 sentences
# (9-39 tokens) this way cut its attention time by about half.
BUCKET_COST = 4096


def attention_buckets(lengths: Sequence[int]) -> list[int]:
    """Rows per attention bucket: the split of the rows, in order, into consecutive runs that
    minimises padded attention work plus a fixed cost per run (exact, by dynamic programming;
    a batch is at most a few dozen rows)."""
    count = len(lengths)
    best = [0] * (count + 1)
    cut = [0] * (count + 1)
    for end in range(1, count + 1):
        longest, best[end] = 0, -1
        for start in range(end - 1, -1, -1):
            longest = max(longest, lengths[start])
            cost = best[start] + (end - start) * longest * longest + BUCKET_COST
            if best[end] < 0 or cost < best[end]:
                best[end], cut[end] = cost, start
    rows = []
    end = count
    while end > 0:
        rows.append(end - cut[end])
        end = cut[end]
    return rows[::-1]


def bucket_spans(lengths: list[int], bucket_rows: list[int]) -> list[Span]:
    """Each bucket of consecutive rows as [first row, rows, first token, tokens, longest row],
    from the lengths the caller has in Python (no tensor read, no device sync)."""
    spans, first_row, first_token = [], 0, 0
    for rows, tokens in zip(bucket_rows, token_counts(lengths, bucket_rows), strict=True):
        longest = max(lengths[first_row : first_row + rows])
        spans.append([first_row, rows, first_token, tokens, longest])
        first_row += rows
        first_token += tokens
    return spans


def token_counts(lengths: list[int], group_rows: list[int]) -> list[int]:
    """Real tokens per group of consecutive rows."""
    counts, start = [], 0
    for rows in group_rows:
        counts.append(sum(lengths[start : start + rows]))
        start += rows
    return counts


def packed_positions(lengths: list[int], positions: list[int]) -> list[int]:
    """Where each row's token at `positions[row]` sits among the rows' packed real tokens."""
    packed, start = [], 0
    for length, position in zip(lengths, positions, strict=True):
        if not 0 <= position < length:
            raise ValueError(f"output position {position} is outside a row of {length} tokens")
        packed.append(start + position)
        start += length
    return packed


def linear_rows(tokens: int) -> int:
    """`tokens` rounded up to one of a few sizes: at most 1/8 more (and at least 8 rows), so
    about eight sizes per doubling.

    Why: on the CPU, oneDNN runs bf16 Linear layers and keeps state for every input shape it
    has seen. With one shape per batch's exact token count, a bf16 forward's RSS grew about
    1.6 MB per batch over varied batches (+486 MB in 300; fp32 through MKL: +11 MB), and it
    kept growing until the cache held about a thousand shapes. Rounded, a workload meets only
    a few dozen shapes: +69 MB, levelling off (`python -m benchmarks.micro.forward_memory`)."""
    step = max(8, 1 << max(0, tokens.bit_length() - 4))
    return -(-tokens // step) * step
