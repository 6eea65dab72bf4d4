"""The batching modes the serving benchmark compares mixed batching against (`batch_mode`).

Each runs with the production queue, flush policy and model threads (service/serving/batcher.py)
and changes only how a flush's rows become forwards:
- `unbatched`: one request per flush, so one forward per request;
- `per_adapter`: each task's rows form their own batches, as model-multiplexing servers do;
- `swap`: one adapter slot is made active by copying a task's weights into it, its rows run,
  then the next is swapped in, as single-model PEFT serving does. Each model thread has its own
  slot, as separate single-model workers would.
"""

import threading
from collections.abc import Callable

from list_core.adapters import AdapterConfig, AdapterSet
from list_core.backbone import Backbone
from list_core.task_model import TaskModel
from service.serving.flush import Batching, FlushItem, ForwardChunks, MixedBatching
from service.serving.metrics import ADAPTER_SWAPS


class UnbatchedBatching(MixedBatching):
    name = "unbatched"
    single_request_flushes = True


def by_adapter(items: list[FlushItem]) -> list[list[FlushItem]]:
    """The flush's rows grouped by task model, in order of first appearance."""
    groups: dict[int, list[FlushItem]] = {}
    for item in items:
        groups.setdefault(id(item.model), []).append(item)
    return list(groups.values())


class PerAdapterBatching:
    name = "per_adapter"
    single_request_flushes = False
    swaps = 0

    def forward(self, items: list[FlushItem], forward_chunks: ForwardChunks) -> None:
        for group in by_adapter(items):
            forward_chunks(group, None)


class SwapBatching:
    name = "swap"
    single_request_flushes = False

    def __init__(self, backbone: Backbone) -> None:
        self.backbone = backbone
        self.swaps = 0
        self._swaps_lock = threading.Lock()
        self._local = threading.local()  # each model thread's slots

    def forward(self, items: list[FlushItem], forward_chunks: ForwardChunks) -> None:
        for group in by_adapter(items):
            forward_chunks(group, self.swap_in(group[0].model))

    def swap_in(self, model: TaskModel) -> AdapterSet:
        """Copy `model`'s adapter weights into the calling model thread's one active slot."""
        slots: dict[AdapterConfig, AdapterSet] = self._local.__dict__.setdefault("slots", {})
        config = model.adapter_config
        slot = slots.get(config)
        if slot is None:
            slot = AdapterSet(config, self.backbone.sites, self.backbone.hidden_size)
            slot = slot.to(self.backbone.device).requires_grad_(False)
            slots[config] = slot
        for key in slot.site_keys:
            slot.down[key].copy_(model.adapters.down[key])
            slot.up[key].copy_(model.adapters.up[key])
        with self._swaps_lock:
            self.swaps += 1
        ADAPTER_SWAPS.inc()
        return slot


BATCHINGS: dict[str, Callable[[Backbone], Batching]] = {
    "mixed": lambda backbone: MixedBatching(),
    "unbatched": lambda backbone: UnbatchedBatching(),
    "per_adapter": lambda backbone: PerAdapterBatching(),
    "swap": SwapBatching,
}


def batching_for(mode: str, backbone: Backbone) -> Batching:
    """The `Batching` of setting `batch_mode` (already validated by the settings)."""
    return BATCHINGS[mode](backbone)
