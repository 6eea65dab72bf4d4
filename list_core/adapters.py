"""LiST adapters: bottlenecks with a skip connection inserted into a frozen encoder.

The encoder's attention-output and FFN-output `dense` layers are wrapped once. What the wrapper
adds is decided per call by the *adapter plan* active in the current thread: none (the plain
backbone), one adapter set for the whole batch (training), or one adapter set per row (mixed
serving). Adapter sets are ordinary modules holding only their own tensors, so any number of
them — LiST's teacher and student, or thousands of tenants' tasks — share one backbone.
"""

import contextlib
import contextvars
import re
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from list_core.placeholders import placeholder

ADAPTER_KINDS = ("list", "houlsby")
PLACEMENTS = ("attention", "ffn")
APPLY_MODES = ("gather", "group")


AUTO_APPLY_MODE = "auto"


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
class AdapterSite:
    """Where one adapter sits: a layer index and `attention` or `ffn`."""

    layer: int
    place: str

    @property
    def key(self) -> str:
        return f"layer{self.layer}_{self.place}"


@dataclass(frozen=True)
class AdapterConfig:
    """Shape of an adapter set: kind, bottleneck size, placement and init scale."""

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

    def as_dict(self) -> dict:
        data = asdict(self)
        data["placement"] = list(self.placement)
        data["layers"] = None if self.layers is None else list(self.layers)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "AdapterConfig":
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


class AdapterSet(nn.Module):
    """One task's adapters: `h + f(h A) B` at each selected site (f = identity for LiST)."""

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
        """The adapter's addition at `key`, computed in the adapter's own dtype (fp32) even when
        the serving encoder runs in bf16, and returned in the encoder's dtype."""
        if key not in self.down:
            return None
        down = self.down[key]
        middle = self.activation(hidden.to(down.dtype) @ down)
        return (middle @ self.up[key]).to(hidden.dtype)


class AdaptedLinear(nn.Module):
    """A frozen `dense` followed by whatever adapter the active plan assigns to this site."""

    def __init__(self, base: nn.Linear, site: AdapterSite) -> None:
        super().__init__()
        self.base = base
        self.site = site

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.base(x)
        plan = _active_plan.get()
        return hidden if plan is None else plan.apply(self.site.key, hidden)


class SingleAdapterPlan:
    """Every row of the batch uses the same adapter set (training, single-task inference).

    `dropout` > 0 drops units of every wrapped `dense` output, adapted or not: the dropout a
    train-mode encoder applies at exactly these points, which the shared frozen backbone (in
    eval mode for every thread) never does. It is scoped to this plan, so a training thread
    gets the noise self-training relies on while serving threads stay deterministic.
    """

    def __init__(self, adapters: AdapterSet, dropout: float = 0.0) -> None:
        self.adapters = adapters
        self.dropout = dropout

    def apply(self, key: str, hidden: torch.Tensor) -> torch.Tensor:
        delta = self.adapters.delta(key, hidden)
        adapted = hidden if delta is None else hidden + delta
        return F.dropout(adapted, self.dropout) if self.dropout > 0 else adapted


class MixedAdapterPlan:
    """Row i uses `row_adapters[i]`; rows of many tasks share one backbone forward.

    `gather` stacks each row's weights and runs one batched matmul; `group` runs one matmul per
    distinct adapter over its rows. Both give the same numbers; which is faster depends on the
    device and on how many distinct adapters a batch holds. A site where the batch's adapters
    differ in shape or kind (bottleneck size, LiST vs Houlsby) is always grouped.
    """

    def __init__(self, row_adapters: Sequence[AdapterSet], mode: str = "gather") -> None:
        check_apply_mode(mode)
        self.mode = mode
        self.row_adapters = list(row_adapters)
        unique: dict[int, AdapterSet] = {}
        for adapters in self.row_adapters:
            unique.setdefault(id(adapters), adapters)
        self.unique = list(unique.values())
        self.groups = [
            torch.tensor([i for i, a in enumerate(self.row_adapters) if a is adapters])
            for adapters in self.unique
        ]

    def apply(self, key: str, hidden: torch.Tensor) -> torch.Tensor:
        if len(self.unique) == 1:
            return SingleAdapterPlan(self.unique[0]).apply(key, hidden)
        if self.mode == "group":
            return self._apply_grouped(key, hidden)
        return self._apply_gathered(key, hidden)

    def _apply_grouped(self, key: str, hidden: torch.Tensor) -> torch.Tensor:
        out = hidden.clone()
        for adapters, rows in zip(self.unique, self.groups, strict=True):
            rows = rows.to(hidden.device)
            delta = adapters.delta(key, hidden.index_select(0, rows))
            if delta is not None:
                out.index_add_(0, rows, delta)
        return out

    def _apply_gathered(self, key: str, hidden: torch.Tensor) -> torch.Tensor:
        present = [key in a.down for a in self.unique]
        if not any(present):
            return hidden
        shapes = {(a.down[key].shape, type(a.activation)) for a in self.unique if key in a.down}
        if not all(present) or len(shapes) > 1:
            return self._apply_grouped(key, hidden)
        down = torch.stack([a.down[key] for a in self.row_adapters])
        up = torch.stack([a.up[key] for a in self.row_adapters])
        middle = self.unique[0].activation(torch.bmm(hidden.to(down.dtype), down))
        return hidden + torch.bmm(middle, up).to(hidden.dtype)


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


_LAYER = re.compile(r"(?:^|\.)layer\.(\d+)\.")


def _site_for(name: str) -> AdapterSite | None:
    match = _LAYER.search(name)
    if match is None:
        return None
    layer = int(match.group(1))
    if name.endswith("attention.output.dense"):
        return AdapterSite(layer, "attention")
    if re.search(r"layer\.\d+\.output\.dense$", name):
        return AdapterSite(layer, "ffn")
    return None


def install_adapter_sites(encoder: nn.Module) -> list[AdapterSite]:
    """Wrap every attention-output and FFN-output dense once; return the sites found."""
    sites = []
    for name, module in list(encoder.named_modules()):
        if isinstance(module, AdaptedLinear):
            sites.append(module.site)
            continue
        site = _site_for(name)
        if site is None or not isinstance(module, nn.Linear):
            continue
        parent_name, _, attribute = name.rpartition(".")
        parent = encoder.get_submodule(parent_name) if parent_name else encoder
        setattr(parent, attribute, AdaptedLinear(module, site))
        sites.append(site)
    if not sites:
        raise ValueError(
            f"{type(encoder).__name__}: found no `attention.output.dense` / `output.dense` "
            "layers; listserve supports BERT- and RoBERTa-style encoders"
        )
    return sorted(sites, key=lambda s: (s.layer, s.place))
