"""The long-lived parts of one API process and their start-up order.

Migrations run before the server accepts requests. The backbone loads in the background after
that, so `/health` answers at once while `/ready` stays false until the backbone is loaded and a
warm-up forward has run; only then do the adapter cache, the batcher and the job runner start.
Serving runs on `serving`, the backbone's int8/bf16/compiled twin when one is configured; jobs
trained in this process use the full-precision `backbone` the adapters are fingerprinted by.
"""

import asyncio
import gc
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from list_core.backbone import Backbone
from list_core.backbone_choice import (
    BackboneChoice,
    BackboneUnavailableError,
    choose_backbone,
    load_chosen,
)
from list_core.serving.speedups import serving_backbone
from list_core.task_model import TaskModel
from service.api.errors import ApiError
from service.api.tenancy import TenantResolver
from service.backbone_setup import warm_up
from service.jobs.context import JobContext
from service.jobs.factory import default_runner
from service.jobs.runner import JobRunner
from service.process.allocator import active_allocator
from service.process.gil import bound_gil_waits
from service.process.threads import use_serving_threads
from service.ratelimit import TokenBuckets
from service.registry.db import Database
from service.serving.adapter_cache import AdapterCache, AdapterKey
from service.serving.baselines import batching_for
from service.serving.batcher import DynamicBatcher
from service.serving.predictor import Predictor
from service.serving.suggester import Suggester
from service.settings import Settings
from service.store import AdapterStore

log = logging.getLogger(__name__)

RunnerFactory = Callable[[Settings, JobContext], JobRunner]
T = TypeVar("T")

# Threads for the per-request registry lookup of /predict. Below the SQLAlchemy pool's 5 kept
# connections: on the shared 40-thread pool, dozens of concurrent lookups opened and closed
# overflow connections all the time (SQLite pragmas on each) and queued for the pool, while the
# lookups themselves are GIL-bound and gain nothing from more threads.
REGISTRY_READ_THREADS = 4


class Services:
    def __init__(self, settings: Settings, runner_factory: RunnerFactory | None = None) -> None:
        self.settings = settings
        self.runner_factory = runner_factory or default_runner
        self.database = Database(settings.database_url)
        self.store = AdapterStore(settings.store)
        self.tenants = TenantResolver(self.database, settings.expert.auth_cache_seconds)
        self.predict_limiter = TokenBuckets(
            settings.predict_rate_per_second, settings.predict_burst
        )
        self.choice: BackboneChoice | None = None
        self.backbone: Backbone | None = None
        self.serving: Backbone | None = None
        self.cache: AdapterCache | None = None
        self.batcher: DynamicBatcher | None = None
        self.predictor: Predictor | None = None
        self.suggester: Suggester | None = None
        self.runner: JobRunner | None = None
        self.ready = False
        self.status = "starting"
        self.allocator = active_allocator()
        self._startup: asyncio.Task | None = None
        self._registry_reader = ThreadPoolExecutor(
            REGISTRY_READ_THREADS, thread_name_prefix="listserve-registry"
        )

    async def start(self) -> None:
        """Migrate now; load the backbone and everything that needs it in the background."""
        bound_gil_waits(self.settings.expert.gil_switch_interval_ms)
        await asyncio.to_thread(self.database.migrate)
        self.settings.store.mkdir(parents=True, exist_ok=True)
        self._startup = asyncio.create_task(self._load())

    async def _load(self) -> None:
        settings, expert = self.settings, self.settings.expert
        try:
            self.status = "loading backbone"
            choice = await asyncio.to_thread(choose_backbone, settings.backbone)
            backbone, self.choice = await asyncio.to_thread(load_chosen, choice, settings.device)
            serving = await asyncio.to_thread(
                serving_backbone,
                backbone,
                expert.serving_precision,
                expert.serving_compile,
                expert.serving_scripted,
                expert.serving_prepack,
            )
            threads = use_serving_threads(
                expert.model_threads, expert.torch_threads, serving.device.type
            )
            if expert.warmup:
                self.status = "warming up"
                await asyncio.to_thread(warm_up, serving)
            self.backbone = backbone
            self.serving = serving
            self.cache = AdapterCache(self._load_adapter, settings.adapter_cache_bytes)
            self.batcher = DynamicBatcher.from_settings(
                serving,
                settings,
                batching_for(expert.batch_mode, serving),
                threads.model_threads,
            )
            await self.batcher.start()
            self.predictor = Predictor(
                self.database, self.read_registry, self.cache, self.batcher, settings
            )
            self.suggester = Suggester(self.database, self.predictor, settings.suggestion_pool)
            context = JobContext.from_settings(settings, self.database, lambda: backbone)
            self.runner = self.runner_factory(settings, context)
            await asyncio.to_thread(self.runner.start)
        except BackboneUnavailableError as error:
            self.status = f"start-up failed: {error}"
            log.error("start-up failed: %s", error)  # names the setting and the fix
            return
        except Exception as error:
            self.status = f"start-up failed: {type(error).__name__}: {error}"
            log.exception("start-up failed")
            return
        _exempt_startup_objects_from_gc()
        self.ready = True
        self.status = "backbone loaded and warm"
        log.info(
            "ready",
            extra={
                "backbone": backbone.fingerprint,
                "runner": self.runner.kind,
                "allocator": self.allocator,
            },
        )

    def _load_adapter(self, key: AdapterKey) -> TaskModel:
        """The adapter cache's loader: sha256-checked files from the store, safetensors only."""
        return self.store.load(key.path, key.sha256, self.serving)

    async def stop(self) -> None:
        if self._startup is not None and not self._startup.done():
            self._startup.cancel()
        self.ready = False
        if self.runner is not None:
            await asyncio.to_thread(self.runner.stop)
        if self.batcher is not None:
            await self.batcher.stop()
        if self.cache is not None:
            self.cache.close()
        self._registry_reader.shutdown(wait=True, cancel_futures=True)
        self.database.dispose()

    async def read_registry(self, read: Callable[..., T], *args) -> T:
        """Run a hot registry read on the few threads kept for it, off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._registry_reader, read, *args)

    def require_ready(self) -> Backbone:
        if not self.ready or self.backbone is None:
            raise ApiError(
                503,
                "not_ready",
                f"the service is not ready yet ({self.status})",
                None,
                {"Retry-After": "5"},
            )
        return self.backbone


def _exempt_startup_objects_from_gc() -> None:
    """Move everything alive after start-up (torch, transformers, the backbone: ~440k objects)
    out of the cyclic GC's reach. Full collections walked all of them, holding the GIL for
    0.5 s or more in the middle of serving; long-lived objects are freed by refcount as before.
    """
    gc.collect()
    gc.freeze()
