"""The one list of head kinds, and which kind a task's method trains.

To add a kind: write a `TaskHead` subclass in its own module under `list_core/heads/`, list it
in `HEAD_TYPES`, and name it in `METHOD_HEAD_KINDS` for the method that trains it. A task model
then builds it (fresh, or as stand-ins for a load), encodes its rows as the class says, and
inference scores it through the class's `score_groups`; nothing else names a kind.
"""

from list_core.backbone import Backbone
from list_core.heads.base import TaskHead
from list_core.heads.classic import ClassicHead
from list_core.heads.mlm import MlmPromptHead
from list_core.heads.similarity import SimilarityHead
from list_core.hyperparams import CONTRASTIVE, SELF_TRAINING_METHOD

HEAD_TYPES: dict[str, type[TaskHead]] = {
    head.kind: head for head in (MlmPromptHead, SimilarityHead, ClassicHead)
}

# The head kind of each method that trains a head of its own; every other method trains the
# prompt head the backbone supports (`Backbone.prompt_head_kind`: its MLM head if it has one,
# else the similarity head). The contrastive recipe trains the pooled embedding, so its head
# reads the pooled text on every backbone.
METHOD_HEAD_KINDS: dict[str, str] = {"classic": ClassicHead.kind, CONTRASTIVE: SimilarityHead.kind}


def head_kind_for(method: str, backbone: Backbone, teacher: str = "prompt") -> str:
    """The kind of head a task trained with `method` on `backbone` has; `list` from a
    contrastive `teacher` has the contrastive method's (its students learn that teacher)."""
    if method == SELF_TRAINING_METHOD and teacher == CONTRASTIVE:
        method = CONTRASTIVE
    return METHOD_HEAD_KINDS.get(method, backbone.prompt_head_kind)


def head_type_for(method: str, backbone: Backbone, teacher: str = "prompt") -> type[TaskHead]:
    """The head class a task trained with `method` on `backbone` builds."""
    return HEAD_TYPES[head_kind_for(method, backbone, teacher)]
