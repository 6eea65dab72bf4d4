"""A batch's adapter weights laid out as the scripted forward takes them (`PackedAdapters`):
site by site, per row (`gather`) or per run of rows with one adapter set (`group`)."""

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from list_core.adapters import PLACEMENTS, AdapterSet, AdapterSite, check_apply_mode
from list_core.serving.bucketing import attention_buckets
from list_core.tuning import Tuner


@dataclass(frozen=True)
class PackedAdapters:
    """A batch's adapter weights as the scripted forward takes them.

    `downs` and `ups` list the weights site by site. Within a site there is one entry per row
    (`gather`), one per run of consecutive rows with the same set (`group`), or one for a batch
    with one set. `group_rows` (`group` only) counts each run's rows, in the order `order` puts
    the batch's rows in; `order` is None when the rows are in that order already.
    `bucket_rows` fixes the attention buckets (rows per bucket, in `order`) when the runs were
    formed inside them; None lets the forward choose (`attention_buckets`).
    """

    downs: list[torch.Tensor]
    ups: list[torch.Tensor]
    gelu: bool
    group_rows: list[int]
    order: list[int] | None = None
    bucket_rows: list[int] | None = None


class _NoAdapter:
    """The stand-in set of rows whose tuner changes nothing inside the encoder."""

    down: dict = {}  # noqa: RUF012 - read only: no site has weights
    up: dict = {}  # noqa: RUF012


_NO_ADAPTER = _NoAdapter()


class AdapterPacker:
    """Packs batches' adapter sets for one encoder's sites (every layer, both placements)."""

    def __init__(
        self, sites: Sequence[AdapterSite], hidden_size: int, device: torch.device | None = None
    ) -> None:
        """`device` holds the zero stand-ins of a batch whose rows have no adapter at all."""
        self.device = torch.device("cpu") if device is None else device
        layers = sorted({site.layer for site in sites})
        self.site_keys = [AdapterSite(layer, place).key for layer in layers for place in PLACEMENTS]
        self.hidden_size = hidden_size
        self._zeros: dict[tuple, torch.Tensor] = {}

    def pack(
        self, row_adapters: Sequence[Tuner], lengths: Sequence[int], mode: str = "gather"
    ) -> PackedAdapters | None:
        """The rows' adapter weights as `PackedAdapters` (zeros where a set has no adapter at a
        site, and for rows whose tuner changes nothing in the encoder) for the `gather` or
        `group` computation. Only references: nothing is copied until a gathered forward
        stacks one site. `group` orders the rows by set inside each attention bucket, which
        `lengths` (real tokens per row) decide. None when the sets differ in bottleneck or
        kind, or a row's tuner is not `scriptable`: only the eager forward handles those."""
        check_apply_mode(mode)
        if not all(tuner.scriptable for tuner in row_adapters):
            return None
        # Tuners that change nothing inside the encoder (linear, mlp, side) share one zero set.
        row_adapters = [a if isinstance(a, AdapterSet) else _NO_ADAPTER for a in row_adapters]
        sets = list({id(adapters): adapters for adapters in row_adapters}.values())
        real = [a for a in sets if a is not _NO_ADAPTER]
        shapes = {(a.config.bottleneck, a.config.kind) for a in real}
        if len(shapes) > 1:
            return None
        bottleneck, kind = shapes.pop() if shapes else (1, "list")
        first = next((p for a in real for p in a.parameters()), None)
        dtype = torch.float32 if first is None else first.dtype
        device = self.device if first is None else first.device
        zero_down = self._zero_adapter(bottleneck, dtype, device)
        zero_up = zero_down.T
        gelu = kind == "houlsby"
        if mode != "group" or len(sets) == 1:
            listed = sets if len(sets) == 1 else list(row_adapters)
            downs = [a.down.get(k, zero_down) for k in self.site_keys for a in listed]
            ups = [a.up.get(k, zero_up) for k in self.site_keys for a in listed]
            return PackedAdapters(downs, ups, gelu, [])
        set_of_row = {id(a): i for i, a in enumerate(sets)}
        groups = [set_of_row[id(a)] for a in row_adapters]
        bucket_rows = attention_buckets(lengths)
        order: list[int] = []
        runs: list[int] = []  # the set of each run of consecutive rows with one set
        group_rows: list[int] = []
        start = 0
        for rows in bucket_rows:
            by_set = sorted(range(start, start + rows), key=groups.__getitem__)
            for run, members in itertools.groupby(by_set, key=groups.__getitem__):
                members = list(members)
                order += members
                runs.append(run)
                group_rows.append(len(members))
            start += rows
        downs = [sets[run].down.get(k, zero_down) for k in self.site_keys for run in runs]
        ups = [sets[run].up.get(k, zero_up) for k in self.site_keys for run in runs]
        in_order = order == list(range(len(order)))
        return PackedAdapters(
            downs, ups, gelu, group_rows, None if in_order else order, bucket_rows
        )

    def _zero_adapter(
        self, bottleneck: int, dtype: torch.dtype, device: torch.device
    ) -> torch.Tensor:
        """The stand-in for a site a set has no adapter at, made once per shape (read only)."""
        key = (bottleneck, dtype, device)
        if key not in self._zeros:
            self._zeros[key] = torch.zeros(self.hidden_size, bottleneck, dtype=dtype, device=device)
        return self._zeros[key]
