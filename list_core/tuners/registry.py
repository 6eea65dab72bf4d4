"""The one list of tuners, and the checks a tuner choice passes.

To add a tuner: write its package under `list_core/tuners/<name>/` (config, layer, model) and
list its config class in `TUNER_CONFIGS`. A task model then builds it (fresh, or as stand-ins
for a load), training trains its tensors, artifacts save its options, and every forward applies
it through the plans of `list_core.adapters`; nothing else names a tuner.
"""

from typing import TYPE_CHECKING

from list_core.field_error import FieldError
from list_core.heads.registry import head_kind_for
from list_core.hyperparams import CONTRASTIVE, SELF_TRAINING_METHOD
from list_core.tuners.adapter.config import AdapterConfig
from list_core.tuners.bitfit.config import BitFitConfig
from list_core.tuners.houlsby.config import HoulsbyConfig
from list_core.tuners.linear.config import LinearConfig
from list_core.tuners.lora.config import LoraConfig
from list_core.tuners.mlp.config import MlpConfig
from list_core.tuners.p_tuning.config import PTuningConfig
from list_core.tuners.partial.config import PartialConfig
from list_core.tuners.prefix.config import PrefixConfig
from list_core.tuners.prompt_tuning.config import PromptTuningConfig
from list_core.tuners.side.config import SideConfig
from list_core.tuning import TunerConfig

if TYPE_CHECKING:
    from list_core.backbone import Backbone
    from list_core.hyperparams import Hyperparameters

TUNER_CONFIGS: dict[str, type[TunerConfig]] = {
    config.name: config
    for config in (
        AdapterConfig,
        HoulsbyConfig,
        LoraConfig,
        BitFitConfig,
        PrefixConfig,
        PromptTuningConfig,
        PTuningConfig,
        LinearConfig,
        MlpConfig,
        PartialConfig,
        SideConfig,
    )
}
TUNERS = tuple(TUNER_CONFIGS)
DEFAULT_TUNER = "adapter"
POOLED_HEAD_KINDS = ("classic", "similarity")


def check_tuner(tuner: str) -> type[TunerConfig]:
    """The config class of `tuner`; an unknown name is a `FieldError` on `tuner`."""
    if tuner not in TUNER_CONFIGS:
        raise FieldError("tuner", f"must be one of {list(TUNERS)}, got {tuner!r}")
    return TUNER_CONFIGS[tuner]


def check_pair(tuner: str, method: str, backbone: "Backbone", teacher: str = "prompt") -> None:
    """Refuse a tuner/method pair that cannot work on `backbone`, naming both fields (and
    `hyperparameters.teacher` when `list`'s teacher is what cannot work)."""
    config = check_tuner(tuner)
    recipe = teacher if method == SELF_TRAINING_METHOD else method
    if recipe == CONTRASTIVE and tuner == LinearConfig.name:
        also = ("method",) if method == CONTRASTIVE else ("method", "hyperparameters.teacher")
        raise FieldError(
            "tuner",
            f"tuner {tuner!r} trains nothing but the head, but method {method!r} "
            f"{'' if method == CONTRASTIVE else 'with teacher contrastive '}trains the text "
            "embedding by contrastive pairs first; choose another tuner (e.g. 'adapter'), or "
            "method 'prompt' or 'classic' for a head alone",
            also=also,
        )
    head_kind = head_kind_for(method, backbone, teacher)
    if getattr(config, "pooled_heads_only", False) and head_kind not in POOLED_HEAD_KINDS:
        raise FieldError(
            "tuner",
            f"tuner {tuner!r} is an MLP over the pooled text, but method {method!r} on this "
            f"backbone trains a {head_kind!r} head, which reads the mask token; use method "
            "'classic' (or a backbone without an MLM head)",
            also=("method",),
        )


def tuner_config(tuner: str, hp: "Hyperparameters", backbone: "Backbone") -> TunerConfig:
    """The options a `tuner` run trains with, from the resolved hyperparameters."""
    return check_tuner(tuner).from_hyperparameters(hp, backbone)


def config_from_artifact(config: dict) -> TunerConfig:
    """The tuner config an artifact's config.json records; one written before tuners existed
    has only its `adapter` options and is the `adapter` tuner."""
    tuner = config.get("tuner", DEFAULT_TUNER)
    if tuner not in TUNER_CONFIGS:
        raise ValueError(f"unknown tuner {tuner!r} in the adapter's config")
    options = config.get("tuner_options")
    if options is None:
        options = config["adapter"]
    return TUNER_CONFIGS[tuner].from_dict(options)


def scripted_tuners() -> list[str]:
    """The tuners whose rows the scripted serving forward computes; a batch with any other
    tuner's rows runs on the eager forward (counted in `list_core.eager_fallback`)."""
    return [name for name, config in TUNER_CONFIGS.items() if config.scripted]
