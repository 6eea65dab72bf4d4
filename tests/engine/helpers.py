"""Small training set-ups shared by the list_core tests."""

from list_core.data import Example
from list_core.prompts import TaskSpec

SENTIMENT = TaskSpec.create(
    ["negative", "positive"], None, {"negative": "terrible", "positive": "great"}
)
EXAMPLES = [
    Example("the movie was great fun", "positive"),
    Example("a lovely and brilliant story", "positive"),
    Example("superb cast and nice music", "positive"),
    Example("the plot was awful", "negative"),
    Example("boring and dull ending", "negative"),
    Example("a horrible weak script", "negative"),
]
UNLABELED = ["great show", "awful film", "nice ending", "dull actor", "wonderful music", "poor"]
TINY_STEPS = {
    "budget": "fast",
    "teacher_steps": 4,
    "sessions": 2,
    "unlabeled_steps": 4,
    "labeled_steps": 2,
    "warmup_fraction": 0.5,
    "bottleneck": 8,
}
