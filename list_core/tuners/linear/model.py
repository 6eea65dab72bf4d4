"""A tuner with no tensors: the task is its head alone (the survey's linear probe)."""

from list_core.tuning import Tuner, TunerConfig


class HeadOnly(Tuner):
    def __init__(self, config: TunerConfig) -> None:
        super().__init__()
        self.config = config
