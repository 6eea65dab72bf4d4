"""Saving and loading a trained task: `adapter.safetensors` + `config.json`, nothing else.

Only adapter and head tensors are written. Loading reads safetensors only (never pickle) and
refuses an adapter whose recorded backbone fingerprint differs from the running backbone.
"""

import json
import mmap
import os
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, deserialize
from safetensors.torch import save as save_safetensors
from torch import nn

from list_core.adapters import AdapterConfig
from list_core.backbone import Backbone
from list_core.heads.registry import HEAD_TYPES, head_kind_for
from list_core.hyperparams import TEACHERS
from list_core.prompts import TaskSpec
from list_core.task_model import TaskModel
from list_core.tuners.registry import config_from_artifact

WEIGHTS_FILE = "adapter.safetensors"
CONFIG_FILE = "config.json"
FORMAT_VERSION = 1
# safetensors dtype -> (torch dtype, numpy dtype of the same bits). numpy has no bfloat16, so
# its bits are read as uint16 and torch reinterprets them.
DTYPES = {
    "F64": (torch.float64, np.float64),
    "F32": (torch.float32, np.float32),
    "BF16": (torch.bfloat16, np.uint16),
    "F16": (torch.float16, np.float16),
    "I64": (torch.int64, np.int64),
    "I32": (torch.int32, np.int32),
    "BOOL": (torch.bool, np.bool_),
    "U8": (torch.uint8, np.uint8),
}


class AdapterMismatchError(ValueError):
    """The adapter was trained on another backbone, or its files are not a listserve adapter."""


def save_task_model(
    model: TaskModel,
    backbone: Backbone,
    directory: str | Path,
    metrics: dict | None = None,
    hyperparameters: dict | None = None,
) -> Path:
    """Write the two files (each via temp file + fsync + rename) into `directory`."""
    from list_core import __version__

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {name: t.detach().to("cpu").contiguous() for name, t in model.state_dict().items()}
    config = {
        "format_version": FORMAT_VERSION,
        "listserve_version": __version__,
        "backbone": {
            "name": backbone.name,
            "source": backbone.source,
            "fingerprint": backbone.fingerprint,
        },
        "tuner": model.tuner,
        **_tuner_options(model),
        "head_kind": model.head_kind,
        **_blend_fields(model),
        "method": model.method,
        "max_length": model.max_length,
        **model.spec.as_dict(),
        "hyperparameters": hyperparameters or {},
        "metrics": metrics or {},
    }
    weights_tmp = directory / f".{WEIGHTS_FILE}.tmp"
    # Serialised in memory, written by Python: a full disk is a plain OSError (ENOSPC) that
    # callers handle, where safetensors' own writer raises a SafetensorError wrapping it.
    weights_tmp.write_bytes(save_safetensors(tensors, metadata={"format": "pt"}))
    _fsync_and_rename(weights_tmp, directory / WEIGHTS_FILE)
    config_tmp = directory / f".{CONFIG_FILE}.tmp"
    config_tmp.write_text(json.dumps(config, indent=2, sort_keys=True), encoding="utf-8")
    _fsync_and_rename(config_tmp, directory / CONFIG_FILE)
    return directory


def _fsync_and_rename(temporary: Path, final: Path) -> None:
    with open(temporary, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(temporary, final)


def read_config(directory: str | Path) -> dict:
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise AdapterMismatchError(f"{directory}: no {CONFIG_FILE}; not a listserve adapter")
    return json.loads(path.read_text(encoding="utf-8"))


def load_task_model(directory: str | Path, backbone: Backbone) -> TaskModel:
    """Rebuild a TaskModel on `backbone` from its safetensors file; refuse any mismatch."""
    directory = Path(directory)
    config = read_config(directory)
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise AdapterMismatchError(f"{directory}: no {WEIGHTS_FILE} (only safetensors is loaded)")
    return task_model_from_bytes(config, weights.read_bytes(), backbone, str(weights))


def task_model_from_bytes(
    config: dict, weights: bytes, backbone: Backbone, source: str = WEIGHTS_FILE
) -> TaskModel:
    """Rebuild a TaskModel from a parsed config and the safetensors bytes already in memory.

    A caller that verified a digest over these bytes (the service's store) loads exactly what
    it checked, without reading the file a second time. The model is built from stand-ins
    (`placeholders`): every tensor comes from `weights`, as a view into one buffer (see
    `_packed`), and none requires grad.
    """
    recorded = config.get("backbone", {}).get("fingerprint", "")
    if _digest(recorded) != _digest(backbone.fingerprint):
        raise AdapterMismatchError(
            f"adapter was trained on backbone {recorded!r}, but the running backbone is "
            f"{backbone.fingerprint!r}"
        )
    try:
        tensors = _packed(deserialize(weights), backbone.device)
    except (SafetensorError, ValueError, KeyError) as error:
        raise AdapterMismatchError(f"{source}: not a valid safetensors file ({error})") from error
    # The head a task of this method can have (`list` from either teacher); a config whose
    # method and head disagree was edited, and is refused as a wrong config would be.
    method = config["method"]
    kinds = {head_kind_for(method, backbone, teacher) for teacher in TEACHERS}
    head_kind = config.get("head_kind", head_kind_for(method, backbone))
    prior_head_kind = config.get("prior_head_kind")
    if head_kind not in kinds or prior_head_kind not in (None, *HEAD_TYPES):
        raise AdapterMismatchError(
            f"{source}: tensor names do not match: head kind {head_kind!r} (prior "
            f"{prior_head_kind!r}) is not one a {method!r} task has ({sorted(kinds)})"
        )
    model = TaskModel(
        backbone,
        TaskSpec.create(config["labels"], config["template"], config["label_words"]),
        config["method"],
        _tuner_config(config, source),
        int(config["max_length"]),
        initialise=False,
        head_kind=head_kind,
        prior_head_kind=prior_head_kind,
    )
    model.calibration = config.get("calibration")
    stand_ins = model.state_dict(keep_vars=True)
    expected = set(stand_ins)
    if set(tensors) != expected:
        raise AdapterMismatchError(
            f"{source}: tensor names do not match a {config['method']} adapter "
            f"(missing {sorted(expected - set(tensors))[:3]}, extra "
            f"{sorted(set(tensors) - expected)[:3]})"
        )
    _check_shapes(stand_ins, tensors, source)
    _assign(model, tensors)
    return model.eval()


def _blend_fields(model: TaskModel) -> dict:
    """What `list_core.selection` chose (its temperature and blend weight, already folded into
    the heads' weights) and the kind of the prior head a blend carries (`prior_head.*`)."""
    fields = {} if model.calibration is None else {"calibration": model.calibration}
    if model.prior_head is not None:
        fields["prior_head_kind"] = model.prior_head.kind
    return fields


def _tuner_options(model: TaskModel) -> dict:
    """Where config.json keeps the tuner's options: a bottleneck adapter's under `adapter`, as
    before tuners existed (so older readers still load it), any other's under
    `tuner_options`."""
    options = model.adapter_config.as_dict()
    if isinstance(model.adapter_config, AdapterConfig):
        return {"adapter": options}
    return {"tuner_options": options}


def _tuner_config(config: dict, source: str):
    """The artifact's tuner options (`adapter` for one saved before tuners existed)."""
    try:
        return config_from_artifact(config)
    except (KeyError, TypeError, ValueError) as error:
        raise AdapterMismatchError(f"{source}: unreadable tuner options ({error})") from error


def _assign(model: nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    """Put each loaded tensor in its stand-in's place, as a parameter that requires no grad.

    What `load_state_dict(assign=True)` does for this model, whose state is only parameters
    (names and shapes are checked before), without its per-module hooks, checks and
    `__setattr__`: that was about a sixth of a cold load's CPU time.
    """
    modules = dict(model.named_modules())
    for name, tensor in tensors.items():
        owner, _, leaf = name.rpartition(".")
        modules[owner]._parameters[leaf] = nn.Parameter(tensor, requires_grad=False)


def _check_shapes(
    stand_ins: dict[str, torch.Tensor], tensors: dict[str, torch.Tensor], source: str
) -> None:
    """Every tensor has the shape and dtype the adapter's config makes: `load_state_dict` with
    `assign=True` would take another dtype silently and report a shape as a RuntimeError."""
    for name, old in stand_ins.items():
        tensor = tensors[name]
        if old.shape != tensor.shape or old.dtype != tensor.dtype:
            raise AdapterMismatchError(
                f"{source}: {name} is {tuple(tensor.shape)} {tensor.dtype}, the adapter's config "
                f"needs {tuple(old.shape)} {old.dtype}"
            )


def _packed(entries: list[tuple[str, dict]], device: torch.device) -> dict[str, torch.Tensor]:
    """The deserialised safetensors entries as tensors that are views into one buffer.

    One allocation per model: on the CPU the buffer is its own anonymous memory map, and
    dropping the model returns its pages to the OS at once. A server loading and evicting
    thousands of adapters (26 tensors each) in LRU order otherwise fragments the malloc heap:
    RSS grew ~100 MB past the cache's byte budget with 1,024 adapters over a 256 MB budget.

    No torch call here releases the GIL, except to reinterpret bf16 or to copy to a GPU: in a
    busy server each release can cost a switch interval to win the GIL back (`python -m
    benchmarks.micro.cold_load`, contended phase). The bytes are copied in plain Python, tensors of
    one dtype and shape sit side by side, each such group is shaped by numpy (which keeps the
    GIL for this) and handed to torch without a copy, and its rows are taken by indexing.
    Widest dtypes first keeps every view aligned.
    """
    groups: dict[tuple[str, tuple[int, ...]], list[tuple[str, bytes]]] = {}
    for name, entry in sorted(entries):
        groups.setdefault((entry["dtype"], tuple(entry["shape"])), []).append((name, entry["data"]))
    order = sorted(groups, key=lambda key: -DTYPES[key[0]][0].itemsize)
    size = sum(len(data) for key in order for _, data in groups[key])
    buffer = _buffer(max(1, size))
    packed = {}
    start = 0
    for dtype_name, shape in order:
        members = groups[(dtype_name, shape)]
        begin = start
        for _, data in members:
            buffer[start : start + len(data)] = data
            start += len(data)
        dtype, bits = DTYPES[dtype_name]
        rows = np.frombuffer(buffer, bits, (start - begin) // dtype.itemsize, begin)
        block = torch.from_numpy(rows.reshape(len(members), *shape))
        if block.dtype != dtype:
            block = block.view(dtype)
        if device.type != "cpu":
            block = block.to(device)
        packed.update((name, block[i]) for i, (name, _) in enumerate(members))
    return packed


def _buffer(size: int) -> mmap.mmap:
    """`size` bytes of anonymous memory, pre-faulted in one call (one fault per page cost ~20 us
    here)."""
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_POPULATE", 0)
    return mmap.mmap(-1, size, flags=flags)


def adapter_bytes(directory: str | Path) -> int:
    return (Path(directory) / WEIGHTS_FILE).stat().st_size


def _digest(fingerprint: str) -> str:
    return fingerprint.rpartition("@")[2]


__all__ = [
    "CONFIG_FILE",
    "WEIGHTS_FILE",
    "AdapterMismatchError",
    "adapter_bytes",
    "load_task_model",
    "read_config",
    "save_task_model",
    "task_model_from_bytes",
]
