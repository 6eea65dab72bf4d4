"""Every knob of the service, read from `LISTSERVE_*` environment variables.

A short core holds what an operator sets: where things live, who may administer, the limits the
API enforces and the tenants' quotas. The tuning knobs, whose defaults come from measured runs,
sit apart in `settings.expert`. Every setting keeps one flat name whichever group it is in: the
variable `LISTSERVE_<NAME>` and the keyword `Settings(<name>=...)` set `expert` fields too, so
deployments and benchmarks never see the grouping. docs/configuration.md lists them all.
Secrets are `SecretStr` so they never show up in a repr or a log line.
"""

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from service.process.allocator import Allocator

ENV_PREFIX = "LISTSERVE_"
# Restated here, so the settings load without torch; the tests check they match the code's.
ApplyMode = Literal["auto", "gather", "group"]
BatchMode = Literal["mixed", "unbatched", "per_adapter", "swap"]


class ExpertSettings(BaseModel):
    """Tuning knobs: the serving forward, batching, threads, the process, job timings."""

    # The serving forward.
    serving_precision: Literal["auto", "fp32", "int8", "bf16"] = Field(
        "auto",
        description="serving twin of the backbone: auto = bf16 where the device has native bf16 "
        "(AVX512-BF16/AMX CPUs, CUDA), else fp32; int8 is CPU only",
    )
    serving_compile: bool = Field(
        False, description="torch.compile the backbone's adapter-free blocks for serving"
    )
    serving_scripted: bool = Field(
        True, description="TorchScript serving forward (GIL released once, no Linear work on pads)"
    )
    serving_prepack: bool = Field(
        True,
        description="let the scripted bf16 forward run its Linear layers on weights prepacked "
        "for oneDNN (a second copy of them); false keeps the plain weights",
    )
    apply_mode: ApplyMode = Field(
        "auto",
        description="per-row adapters: stacked weights and one bmm (gather), or one matmul per "
        "adapter's rows (group); auto = group on a CPU, gather on a GPU",
    )
    warmup: bool = Field(True, description="run one forward before /ready turns true")

    # Batching.
    batch_mode: BatchMode = Field(
        "mixed",
        description="mixed (production) or a benchmark baseline: unbatched, per_adapter, swap",
    )
    max_batch_rows: int = Field(32, description="rows per flush and per forward")
    max_batch_tokens: int = Field(8192, description="padded tokens per flush and per forward")
    max_wait_ms: float = Field(5.0, ge=0, description="how long a flush waits for more rows")
    max_wait_for_loads_ms: float = Field(
        50.0, ge=0, description="how long a flush may wait for rows whose adapters are loading"
    )

    # Threads.
    model_threads: int = Field(
        0,
        ge=0,
        le=64,
        description="model threads, each serving its own batches (0: auto, two on a CPU "
        "with two or more cores, else one)",
    )
    torch_threads: int = Field(
        0,
        ge=0,
        le=1024,
        description="torch threads per forward in the API process (0: auto, the usable "
        "cores split between the model threads on a CPU, unless OMP_NUM_THREADS is set)",
    )
    training_threads: int = Field(1, description="in-process training jobs run at once")

    # The process.
    allocator: Allocator = Field(
        "auto",
        description="API process's malloc: jemalloc when installed (auto), required, or glibc's",
    )
    heap_trim_interval_s: float = Field(
        2.0, ge=0, description="malloc_trim the heap at most this often (0: never)"
    )
    compute_nice: int = Field(
        10,
        ge=0,
        le=19,
        description="how much lower the CPU priority (nice) of the threads that run the model "
        "is: serving forwards and training, in-process or in a Celery worker (Linux; 0: equal)",
    )
    gil_switch_interval_ms: float = Field(
        1.0, gt=0, le=100, description="how long a thread may keep the GIL while another waits"
    )

    # Job timings.
    lease_seconds: float = Field(60.0, description="a running job's lease, renewed by heartbeats")
    heartbeat_seconds: float = Field(2.0, description="how often a running job renews its lease")
    progress_interval_seconds: float = Field(
        2.0, description="how often a running job writes its progress"
    )
    sweep_interval_seconds: float = Field(
        15.0, description="how often jobs whose lease expired or left queued are re-submitted"
    )
    auth_cache_seconds: float = Field(30.0, description="how long a resolved API key is cached")
    event_poll_seconds: float = Field(
        0.5, gt=0, le=60, description="how often a job's event stream reads new events"
    )
    event_keepalive_seconds: float = Field(
        15.0, gt=0, description="how long an idle event stream waits before a keep-alive line"
    )
    event_stream_max_seconds: float = Field(
        30.0, gt=0, description="how long one event stream stays open before the client resumes"
    )
    serving_history_seconds: float = Field(
        5.0, gt=0, le=3600, description="how often serving health is sampled for the dashboard"
    )
    serving_history_samples: int = Field(
        720, ge=1, le=100_000, description="serving health samples kept (a ring; oldest dropped)"
    )

    @field_validator("batch_mode", mode="before")
    @classmethod
    def _normalise_batch_mode(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value


EXPERT_NAMES = frozenset(ExpertSettings.model_fields)


class _ExpertEnvironment(PydanticBaseSettingsSource):
    """The `expert` fields from their flat variables (`LISTSERVE_MAX_WAIT_MS`), read by the
    same rules as the core's, so every variable keeps the name it had before the grouping."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)
        self._environment = EnvSettingsSource(settings_cls)

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._environment.get_field_value(field, field_name)

    def __call__(self) -> dict[str, Any]:
        found = {}
        for name, field in ExpertSettings.model_fields.items():
            value, _, _ = self.get_field_value(field, name)
            if value is not None:
                found[name] = value
        return {"expert": found} if found else {}


class Settings(BaseSettings):
    """The core an operator sets, and the tuning knobs in `expert`."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    # Where things live.
    backbone: str = Field("auto", description="HF id, local folder, or `auto`")
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N")
    database_url: str = Field(
        "sqlite:///./data/listserve.db", description="SQLite file or postgresql+psycopg:// URL"
    )
    store: Path = Field(Path("./data/adapters"), description="folder of the adapter files")
    broker_url: str | None = Field(
        None, description="Redis URL for Celery workers; unset: jobs run in-process"
    )
    admin_token: SecretStr | None = Field(
        None, description="bearer token for /admin/*; unset: the admin API answers 503"
    )
    host: str = Field("127.0.0.1", description="bind address of `listserve serve`")
    port: int = Field(8000, description="port of `listserve serve`")
    log_level: str = Field("INFO", description="level of the JSON log lines on stderr")

    # Task validation limits.
    min_labels: int = Field(2, description="fewest labels a task may have")
    max_labels: int = Field(50, description="most labels a task may have")
    max_examples: int = Field(1000, description="most labelled examples per task")
    max_unlabeled: int = Field(20000, description="most unlabelled texts per task")
    max_evaluation: int = Field(2000, description="most evaluation examples per task")
    max_text_chars: int = Field(2000, description="longest text, in training or predict")
    max_name_chars: int = Field(200, description="longest task or tenant name")
    max_label_chars: int = Field(100, description="longest label")
    max_label_word_chars: int = Field(50, description="longest label word")
    max_template_chars: int = Field(500, description="longest prompt template")
    max_training_steps: int = Field(20000, description="most training steps a task may ask for")
    max_body_bytes: int = Field(10 * 1024 * 1024, description="largest request body")
    max_predict_inputs: int = Field(64, description="most texts in one predict request")
    max_queue_rows: int = Field(
        2048, description="rows the batcher queues before predict answers 429"
    )
    prediction_id_ttl_seconds: float = Field(
        7 * 24 * 3600.0, gt=0, description="how long a prediction id is accepted as feedback"
    )
    suggestion_pool: int = Field(
        2000, ge=1, description="most unlabelled texts scored for one suggestions request"
    )
    max_suggestions: int = Field(100, ge=1, description="most suggestions in one answer")

    # Per-tenant quotas.
    max_tasks_per_tenant: int = Field(100, description="tasks one tenant may have")
    max_active_jobs_per_tenant: int = Field(2, description="queued or running jobs per tenant")
    predict_rate_per_second: float = Field(20.0, description="predict requests per second")
    predict_burst: int = Field(40, description="predict requests a tenant may burst to")

    # Jobs and serving.
    max_attempts: int = Field(3, description="attempts a job gets (a worker that died costs one)")
    adapter_cache_bytes: int = Field(
        512 * 1024 * 1024, description="byte budget of the adapters held in memory"
    )

    expert: ExpertSettings = Field(
        default_factory=ExpertSettings, description="tuning knobs; each has its flat name too"
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        expert = _ExpertEnvironment(settings_cls)
        return init_settings, env_settings, expert, dotenv_settings, file_secret_settings

    @model_validator(mode="before")
    @classmethod
    def _group_expert_keywords(cls, data: Any) -> Any:
        """`Settings(max_wait_ms=1)` sets `expert.max_wait_ms`, as `LISTSERVE_MAX_WAIT_MS` does;
        a keyword wins over the environment and over the same field in an `expert` value."""
        if not isinstance(data, dict) or not EXPERT_NAMES & data.keys():
            return data
        rest = {key: value for key, value in data.items() if key not in EXPERT_NAMES}
        expert = rest.get("expert") or {}
        if isinstance(expert, BaseModel):
            expert = expert.model_dump()
        flat = {key: value for key, value in data.items() if key in EXPERT_NAMES}
        return {**rest, "expert": {**expert, **flat}}

    def flat_values(self) -> dict[str, Any]:
        """Every setting under its flat name, the variable `LISTSERVE_<NAME>` sets (to hand
        these settings to another process, for one)."""
        return {**self.model_dump(exclude={"expert"}), **self.expert.model_dump()}

    @property
    def sqlite_path(self) -> Path | None:
        """The database file when the URL is SQLite on disk (its folder is created at start)."""
        prefix = "sqlite:///"
        if not self.database_url.startswith(prefix):
            return None
        raw = self.database_url[len(prefix) :].split("?", 1)[0]
        return None if raw in ("", ":memory:") else Path(raw)
