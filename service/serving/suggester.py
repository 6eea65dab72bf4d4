"""`GET /tasks/{id}/suggestions`: score the task's unlabelled texts with the version it serves
and pick the ones worth labelling (`list_core.suggestions`, which the active-learning
benchmark measures).

The pool is the task's unlabelled texts that are not labelled yet (by an example or feedback),
once each; past `suggestion_pool` texts a fixed sample of that many (seeded by the task id), so
a request costs at most that many rows through the shared batcher, `max_batch_rows` at a time
beside other tenants' requests. A task's data only grows and a version never changes, so an
answer is cached per (task, version, how many examples and texts it has, limit) in this
process until one of those changes.
"""

import random
from collections import OrderedDict
from dataclasses import dataclass

from list_core.suggestions import normalise, suggest
from service.registry import tasks as task_registry
from service.registry.db import Database
from service.serving.errors import TaskNotFoundError
from service.serving.inputs import PredictRow
from service.serving.predictor import Predictor

CACHED_ANSWERS = 256


@dataclass(frozen=True)
class Pool:
    """The texts to score, and what the cache key needs to know about the task's data."""

    texts: list[str]
    examples: int
    unlabeled: int


@dataclass(frozen=True)
class Suggestions:
    version: int
    pool: int
    picks: list[dict]


class Suggester:
    def __init__(self, database: Database, predictor: Predictor, pool_size: int) -> None:
        self.database = database
        self.predictor = predictor
        self.pool_size = pool_size
        self._answers: OrderedDict[tuple, Suggestions] = OrderedDict()

    def pool(self, tenant_id: str, task_id: str) -> Pool:
        """Registry read (run it off the event loop): the unlabelled texts not labelled yet."""
        with self.database.read_session() as session:
            task = task_registry.get_task(session, tenant_id, task_id)
            data = task_registry.get_task_data(session, task_id) if task is not None else None
            if task is None or data is None:
                raise TaskNotFoundError(task_id)
            labelled = {normalise(record["text"]) for record in data.examples}
            examples, unlabeled = len(data.examples), list(data.unlabeled)
        seen: set[str] = set()
        texts = []
        for text in unlabeled:
            key = normalise(text)
            if key not in labelled and key not in seen:
                seen.add(key)
                texts.append(text)
        if len(texts) > self.pool_size:
            texts = random.Random(task_id).sample(texts, self.pool_size)
        return Pool(texts, examples, len(unlabeled))

    async def suggestions(
        self, tenant_id: str, task_id: str, pool: Pool, limit: int
    ) -> Suggestions:
        """The picks, scored by the version the task serves now."""
        target = await self.predictor.target(tenant_id, task_id)
        key = (task_id, target.key.version, pool.examples, pool.unlabeled, limit)
        cached = self._answers.get(key)
        if cached is not None:
            self._answers.move_to_end(key)
            return cached
        rows = [PredictRow(text, None) for text in pool.texts]
        probabilities = await self.predictor.score(target, rows)
        picks = suggest(pool.texts, probabilities, target.labels, limit)
        answer = Suggestions(
            target.key.version,
            len(pool.texts),
            [
                {
                    "text": pool.texts[pick.index],
                    "text_b": None,
                    "label": pick.label,
                    "uncertainty": pick.uncertainty,
                    "scores": pick.scores,
                }
                for pick in picks
            ],
        )
        self._answers[key] = answer
        while len(self._answers) > CACHED_ANSWERS:
            self._answers.popitem(last=False)
        return answer
