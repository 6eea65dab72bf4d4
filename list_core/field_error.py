"""`FieldError`: the one error for input that cannot work, naming the field it is about.

The engine raises it for templates, label words, examples and hyperparameters; the API raises
it for its own limits and answers every one with the same 422 body (`service/api/errors.py`).
"""


class FieldError(ValueError):
    """`field` names the input (`examples[3].label`, `hyperparameters.sessions`); `message`
    says why it fails, for a person. `also` names other fields the same reason is about (a
    tuner/method pair that cannot work names `tuner` and `method`)."""

    def __init__(self, field: str, message: str, also: tuple[str, ...] = ()) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.fields = (field, *also)
