"""Every knob of the service, read from `LISTSERVE_*` environment variables.

Each limit the API enforces lives here with a sensible default, so an operator can tune it
without code changes and tests can tighten it to exercise the rule. Secrets are `SecretStr`
so they never show up in a repr or a log line.
"""

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.allocator import Allocator


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LISTSERVE_", extra="ignore")

    # Where things live.
    backbone: str = Field("auto", description="HF id, local folder, or `auto`")
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N")
    database_url: str = "sqlite:///./data/listserve.db"
    store: Path = Path("./data/adapters")
    broker_url: str | None = None
    admin_token: SecretStr | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "INFO"
    warmup: bool = True

    # Task validation limits.
    min_labels: int = 2
    max_labels: int = 50
    max_examples: int = 1000
    max_unlabeled: int = 20000
    max_evaluation: int = 2000
    max_text_chars: int = 2000
    max_name_chars: int = 200
    max_label_chars: int = 100
    max_label_word_chars: int = 50
    max_template_chars: int = 500
    max_training_steps: int = 20000
    max_body_bytes: int = 10 * 1024 * 1024
    max_predict_inputs: int = 64

    # Per-tenant quotas.
    max_tasks_per_tenant: int = 100
    max_active_jobs_per_tenant: int = 2
    predict_rate_per_second: float = 20.0
    predict_burst: int = 40

    # Jobs.
    training_threads: int = 1
    max_attempts: int = 3
    lease_seconds: float = 60.0
    heartbeat_seconds: float = 2.0
    progress_interval_seconds: float = 2.0
    sweep_interval_seconds: float = 15.0

    # Serving.
    adapter_cache_bytes: int = 512 * 1024 * 1024
    max_batch_rows: int = 32
    max_batch_tokens: int = 8192
    max_wait_ms: float = Field(5.0, ge=0, description="how long a flush waits for more rows")
    max_wait_for_loads_ms: float = Field(
        50.0,
        ge=0,
        description="how long a flush may wait for rows whose adapters are loading; see README",
    )
    max_queue_rows: int = 2048
    model_threads: int = Field(
        0,
        ge=0,
        le=64,
        description="model threads, each serving its own batches (0: auto, two on a CPU "
        "with two or more cores, else one); see README",
    )
    torch_threads: int = Field(
        0,
        ge=0,
        le=1024,
        description="torch threads per forward in the API process (0: auto, the usable "
        "cores split between the model threads on a CPU, unless OMP_NUM_THREADS is set)",
    )
    apply_mode: Literal["auto", "gather", "group"] = Field(
        "auto",
        description="per-row adapters: stacked weights and one bmm (gather), or one matmul per "
        "adapter's rows (group); auto = group on a CPU, gather on a GPU; see README",
    )
    serving_precision: Literal["auto", "fp32", "int8", "bf16"] = Field(
        "auto",
        description="serving twin of the backbone: auto = bf16 where the device has native bf16 "
        "(AVX512-BF16/AMX CPUs, CUDA), else fp32; int8 is CPU only; see README",
    )
    serving_compile: bool = False
    serving_scripted: bool = Field(
        True, description="TorchScript serving forward (GIL released once, no Linear work on pads)"
    )
    serving_prepack: bool = Field(
        True,
        description="let the scripted bf16 forward run its Linear layers on weights prepacked "
        "for oneDNN (a second copy of them); false keeps the plain weights; see README",
    )
    allocator: Allocator = Field(
        "auto",
        description="API process's malloc: jemalloc when installed (auto), required, or glibc's",
    )
    heap_trim_interval_s: float = Field(
        2.0, ge=0, description="malloc_trim the heap at most this often (0: never); see README"
    )
    compute_nice: int = Field(
        10,
        ge=0,
        le=19,
        description="how much lower the CPU priority (nice) of the threads that run the model "
        "is: serving forwards and training, in-process or in a Celery worker (Linux; 0: "
        "equal); see README",
    )
    gil_switch_interval_ms: float = Field(
        1.0,
        gt=0,
        le=100,
        description="how long a thread may keep the GIL while another waits; see README",
    )
    auth_cache_seconds: float = 30.0

    @property
    def sqlite_path(self) -> Path | None:
        """The database file when the URL is SQLite on disk (its folder is created at start)."""
        prefix = "sqlite:///"
        if not self.database_url.startswith(prefix):
            return None
        raw = self.database_url[len(prefix) :].split("?", 1)[0]
        return None if raw in ("", ":memory:") else Path(raw)
