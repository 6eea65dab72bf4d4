"""The seam between the frozen encoder and every task's tuner: wrapped sites and plans.

The encoder's word embeddings, each layer's query/key/value, attention-output and FFN
Linear layers and LayerNorms, and each whole layer are wrapped once (`list_core.sites`). What a
wrapper changes is decided per call by the *plan* active in the current thread: none (the plain
backbone), one tuner for the whole batch (training), or one tuner per row (mixed serving).
Tuners (`list_core.tuners`) are ordinary modules holding only their own tensors, so any number
of them — LiST's teacher and student, or thousands of tenants' tasks of any tuner — share one
backbone. The bottleneck adapters (`AdapterConfig`, `AdapterSet`) are one such tuner.
"""

import contextlib
import contextvars
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Self

import torch
from torch import nn
from torch.nn import functional as F

from list_core.placeholders import placeholder
from list_core.sites import PLACEMENTS, WHOLE_LAYER, AdapterSite, site_for
from list_core.tuning import Backbone, Tuner, TunerConfig

if TYPE_CHECKING:
    from list_core.hyperparams import Hyperparameters

ADAPTER_KINDS = ("list", "houlsby")
APPLY_MODES = ("gather", "group")
AUTO_APPLY_MODE = "auto"
__all__ = [
    "ADAPTER_KINDS",
    "APPLY_MODES",
    "AUTO_APPLY_MODE",
    "PLACEMENTS",
    "AdapterConfig",
    "AdapterSet",
    "AdapterSite",
    "MixedAdapterPlan",
    "SingleAdapterPlan",
    "adapter_plan",
    "install_adapter_sites",
]


def resolve_apply_mode(mode: str, device: torch.device, scripted: bool = True) -> str:
    """`mode`, with `auto` made `group` for the scripted forward on a CPU and `gather`
    elsewhere.

    Why: on the CPU `group` (one matmul per run of rows with one adapter, no weight copies)
    cost less CPU per mixed batch of the scripted forward than `gather` (stacked weights, one
    bmm; `benchmarks.micro.adapter_apply`, docs/notes/serving-findings.md). The eager forward (int8
    and compiled twins) makes each of those matmuls a Python-level call that must win the GIL
    back beside a busy event loop, where `group` fell far behind `gather` (the contended
    `adapter_apply` runs). On a GPU each matmul is a kernel launch, and one bmm per site keeps
    them few, as gathered-kernel LoRA servers do; not measured here, so it stays a setting."""
    if mode == AUTO_APPLY_MODE:
        return "group" if device.type == "cpu" and scripted else "gather"
    check_apply_mode(mode)
    return mode


def check_apply_mode(mode: str) -> None:
    """Refuse an unknown `apply_mode` by name, wherever a caller passes one in."""
    if mode not in APPLY_MODES:
        raise ValueError(
            f"apply_mode must be one of {APPLY_MODES} (the adapter apply mode), got {mode!r}"
        )


@dataclass(frozen=True)
class AdapterConfig(TunerConfig):
    """Shape of an adapter set: kind, bottleneck size, placement and init scale."""

    name = "adapter"
    scripted = True

    kind: str = "list"
    bottleneck: int = 32
    placement: tuple[str, ...] = PLACEMENTS
    init_std: float = 2e-4
    layers: tuple[int, ...] | None = field(default=None)

    def __post_init__(self) -> None:
        if self.kind not in ADAPTER_KINDS:
            raise ValueError(f"adapter kind must be one of {ADAPTER_KINDS}, got {self.kind!r}")
        if self.bottleneck < 1:
            raise ValueError(f"adapter bottleneck must be >= 1, got {self.bottleneck}")
        unknown = set(self.placement) - set(PLACEMENTS)
        if not self.placement or unknown:
            raise ValueError(f"adapter placement must be a non-empty subset of {PLACEMENTS}")

    @classmethod
    def from_hyperparameters(cls, hp: "Hyperparameters", backbone: Backbone) -> Self:
        return cls(kind=hp.adapter_kind, bottleneck=hp.bottleneck, placement=hp.placement)

    @classmethod
    def from_dict(cls, data: dict) -> Self:
        layers = data.get("layers")
        return cls(
            kind=data["kind"],
            bottleneck=int(data["bottleneck"]),
            placement=tuple(data["placement"]),
            init_std=float(data.get("init_std", 2e-4)),
            layers=None if layers is None else tuple(layers),
        )

    def selects(self, site: AdapterSite) -> bool:
        in_layers = self.layers is None or site.layer in self.layers
        return site.place in self.placement and in_layers

    def build(
        self, backbone: Backbone, generator: torch.Generator | None, initialise: bool
    ) -> Tuner:
        return AdapterSet(self, backbone.sites, backbone.hidden_size, generator, initialise)


def bottleneck_delta(
    hidden: torch.Tensor, down: torch.Tensor, up: torch.Tensor, activation: nn.Module
) -> torch.Tensor:
    """The adapter's addition, computed in the adapter's own dtype (fp32) even when the serving
    encoder runs in bf16, and returned in the encoder's dtype."""
    middle = activation(hidden.to(down.dtype) @ down)
    return (middle @ up).to(hidden.dtype)


def gathered_delta(
    hidden: torch.Tensor, downs: list[torch.Tensor], ups: list[torch.Tensor], activation: nn.Module
) -> torch.Tensor:
    """Row i's addition with `downs[i]`, `ups[i]`: the rows' weights stacked, one bmm each."""
    down = torch.stack(downs)
    up = torch.stack(ups)
    middle = activation(torch.bmm(hidden.to(down.dtype), down))
    return torch.bmm(middle, up).to(hidden.dtype)


class AdapterSet(Tuner):
    """One task's adapters; the scripted serving forward computes them too."""

    def __init__(
        self,
        config: AdapterConfig,
        sites: Sequence[AdapterSite],
        hidden_size: int,
        generator: torch.Generator | None = None,
        initialise: bool = True,
    ) -> None:
        """`initialise=False` builds stand-ins (`placeholders`) for weights loaded next."""
        super().__init__()
        self.config = config
        self.site_keys = [site.key for site in sites if config.selects(site)]
        self.down = nn.ParameterDict()
        self.up = nn.ParameterDict()
        for key in self.site_keys:
            if not initialise:
                self.down[key] = placeholder(hidden_size, config.bottleneck)
                self.up[key] = placeholder(config.bottleneck, hidden_size)
                continue
            down = torch.empty(hidden_size, config.bottleneck)
            up = torch.empty(config.bottleneck, hidden_size)
            nn.init.normal_(down, 0.0, config.init_std, generator=generator)
            nn.init.normal_(up, 0.0, config.init_std, generator=generator)
            self.down[key] = nn.Parameter(down)
            self.up[key] = nn.Parameter(up)
        self.activation = nn.GELU() if config.kind == "houlsby" else nn.Identity()

    def delta(self, key: str, hidden: torch.Tensor) -> torch.Tensor | None:
        """The adapter's addition at `key` (in the encoder's dtype), or None for no adapter."""
        if key not in self.down:
            return None
        return bottleneck_delta(hidden, self.down[key], self.up[key], self.activation)

    def at_site(self, key: str, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        delta = self.delta(key, out)
        return out if delta is None else out + delta


class _Transparent(nn.Module):
    """A wrapper whose wrapped module's attributes (`weight`, `bias`, `attention`, ...) read
    through, so code that reads the frozen encoder's structure sees it unchanged."""

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            modules = self.__dict__.get("_modules")
            if name == "base" or modules is None or "base" not in modules:
                raise
            return getattr(modules["base"], name)


class TunedSite(_Transparent):
    """A frozen Linear, LayerNorm or Embedding followed by whatever the active plan does at
    this site (the plan sees the module's input too: LoRA needs it)."""

    def __init__(self, base: nn.Module, site: AdapterSite) -> None:
        super().__init__()
        self.base = base
        self.site = site
        self.key = site.key

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        plan = _active_plan.get()
        return out if plan is None else plan.apply(self.key, x, out)


# The name earlier code and saved structures know the wrapper by.
AdaptedLinear = TunedSite


class TunedLayer(_Transparent):
    """A frozen transformer layer that the active plan may run, for some rows, as a tuner's own
    layer instead (`partial`)."""

    def __init__(self, base: nn.Module, layer: int) -> None:
        super().__init__()
        self.base = base
        self.layer = layer

    def forward(self, *args, **kwargs):
        plan = _active_plan.get()
        if plan is None:
            return self.base(*args, **kwargs)
        return plan.run_layer(self.layer, self.base, args, kwargs)


def _dropout_site(key: str) -> bool:
    return key.endswith(("_attention", "_ffn"))


class SingleAdapterPlan:
    """Every row of the batch uses the same tuner (training, single-task inference).

    `dropout` > 0 drops units of every attention-output and FFN-output dense output, adapted or
    not: the dropout a train-mode encoder applies at exactly these points, which the shared
    frozen backbone (in eval mode for every thread) never does. It is scoped to this plan, so a
    training thread gets the noise self-training relies on while serving threads stay
    deterministic.
    """

    def __init__(self, adapters: Tuner, dropout: float = 0.0) -> None:
        self.adapters = adapters
        self.dropout = dropout
        self.keys = frozenset(adapters.site_keys)

    def apply(self, key: str, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        if key in self.keys:
            out = self.adapters.at_site(key, x, out)
        if self.dropout > 0 and _dropout_site(key):
            return F.dropout(out, self.dropout)
        return out

    def run_layer(self, layer: int, base: nn.Module, args: tuple, kwargs: dict):
        own = self.adapters.layer_module(layer)
        return (base if own is None else own)(*args, **kwargs)


class MixedAdapterPlan:
    """Row i uses `row_adapters[i]`; rows of many tasks and tuners share one backbone forward.

    At a site, each tuner that acts there computes its rows' output (`group`). For bottleneck
    adapters of one shape at a site where every row has one, `gather` stacks each row's weights
    and runs one batched matmul instead. Both give the same numbers; which is faster depends on
    the device and on how many distinct adapters a batch holds. A layer that some rows' tuners
    run themselves (`partial`) runs once per such tuner on its rows and once, shared, on the
    rest.
    """

    def __init__(self, row_adapters: Sequence[Tuner], mode: str = "gather") -> None:
        check_apply_mode(mode)
        self.mode = mode
        self.row_adapters = list(row_adapters)
        unique: dict[int, Tuner] = {}
        for adapters in self.row_adapters:
            unique.setdefault(id(adapters), adapters)
        self.unique = list(unique.values())
        self.rows = [
            [i for i, a in enumerate(self.row_adapters) if a is adapters]
            for adapters in self.unique
        ]
        self.groups = [torch.tensor(rows) for rows in self.rows]
        self.at_key: dict[str, list[int]] = {}
        for position, adapters in enumerate(self.unique):
            for key in adapters.site_keys:
                self.at_key.setdefault(key, []).append(position)

    def apply(self, key: str, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        acting = self.at_key.get(key)
        if not acting:
            return out
        if len(self.unique) == 1:
            return self.unique[0].at_site(key, x, out)
        if self.mode == "gather" and len(acting) == len(self.unique):
            gathered = self._apply_gathered(key, out, acting)
            if gathered is not None:
                return gathered
        return self._apply_grouped(key, x, out, acting)

    def _apply_grouped(
        self, key: str, x: torch.Tensor, out: torch.Tensor, acting: list[int]
    ) -> torch.Tensor:
        result = out.clone()
        for position in acting:
            rows = self.groups[position].to(out.device)
            tuned = self.unique[position].at_site(
                key, x.index_select(0, rows), out.index_select(0, rows)
            )
            result.index_copy_(0, rows, tuned.to(result.dtype))
        return result

    def _apply_gathered(
        self, key: str, out: torch.Tensor, acting: list[int]
    ) -> torch.Tensor | None:
        """One bmm over every row's stacked adapter, when every tuner of the batch is a
        bottleneck adapter of one shape and kind at `key`; None otherwise."""
        sets = [self.unique[position] for position in acting]
        if not all(isinstance(a, AdapterSet) for a in sets):
            return None
        shapes = {(a.down[key].shape, type(a.activation)) for a in sets}
        if len(shapes) > 1:
            return None
        downs = [a.down[key] for a in self.row_adapters]
        ups = [a.up[key] for a in self.row_adapters]
        return out + gathered_delta(out, downs, ups, sets[0].activation)

    def run_layer(self, layer: int, base: nn.Module, args: tuple, kwargs: dict):
        own = [(position, a.layer_module(layer)) for position, a in enumerate(self.unique)]
        own = [(position, module) for position, module in own if module is not None]
        if not own:
            return base(*args, **kwargs)
        hidden = args[0]
        result = torch.empty_like(hidden)
        taken = {row for position, _ in own for row in self.rows[position]}
        shared = [row for row in range(len(self.row_adapters)) if row not in taken]
        runs = [(rows, base) for rows in ([shared] if shared else [])]
        runs += [(self.rows[position], module) for position, module in own]
        for rows, module in runs:
            picks = torch.tensor(rows, device=hidden.device)
            sub_args = [_rows_of(value, picks, hidden.size(0)) for value in args]
            sub_kwargs = {k: _rows_of(v, picks, hidden.size(0)) for k, v in kwargs.items()}
            sub_plan = MixedAdapterPlan([self.row_adapters[row] for row in rows], self.mode)
            with adapter_plan(sub_plan):
                result.index_copy_(0, picks, module(*sub_args, **sub_kwargs).to(result.dtype))
        return result


def _rows_of(value, picks: torch.Tensor, batch: int):
    """`value` restricted to the rows `picks` when it is a per-row tensor of the batch."""
    if isinstance(value, torch.Tensor) and value.dim() > 0 and value.size(0) == batch > 1:
        return value.index_select(0, picks)
    return value


_active_plan: contextvars.ContextVar = contextvars.ContextVar(
    "listserve_adapter_plan", default=None
)


@contextlib.contextmanager
def adapter_plan(plan: SingleAdapterPlan | MixedAdapterPlan | None) -> Iterator[None]:
    """Activate `plan` for backbone forwards in this thread (and only this thread)."""
    token = _active_plan.set(plan)
    try:
        yield
    finally:
        _active_plan.reset(token)


_WRAPPABLE = (nn.Linear, nn.LayerNorm, nn.Embedding)


def install_adapter_sites(encoder: nn.Module) -> list[AdapterSite]:
    """Wrap every site once (`list_core.sites`); return the bottleneck adapters' sites (the
    attention-output and FFN-output dense of every layer)."""
    sites = []
    for name, module in list(encoder.named_modules()):
        if isinstance(module, TunedSite):
            sites.append(module.site)
            continue
        site = site_for(name)
        if site is None or site.place == WHOLE_LAYER or not isinstance(module, _WRAPPABLE):
            continue
        _replace(encoder, name, TunedSite(module, site))
        sites.append(site)
    for name, module in list(encoder.named_modules()):
        site = site_for(name)
        whole = site is not None and site.place == WHOLE_LAYER
        if whole and not isinstance(module, TunedLayer | TunedSite):
            _replace(encoder, name, TunedLayer(module, site.layer))
    adapter_sites = [site for site in sites if site.place in PLACEMENTS]
    if not adapter_sites:
        raise ValueError(
            f"{type(encoder).__name__}: found no `attention.output.dense` / `output.dense` "
            "layers; listserve supports BERT- and RoBERTa-style encoders"
        )
    return sorted(adapter_sites, key=lambda s: (s.layer, s.place))


def _replace(encoder: nn.Module, name: str, wrapper: nn.Module) -> None:
    parent_name, _, attribute = name.rpartition(".")
    parent = encoder.get_submodule(parent_name) if parent_name else encoder
    setattr(parent, attribute, wrapper)
