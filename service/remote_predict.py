"""`listserve predict --server URL --task ID`: score a JSONL file through a running server.

The server's own limits (`/info`: inputs per request, characters per text) decide the chunks,
so a file of any size goes through; a text over the limit is refused here, naming its line,
before anything is sent. 429 and 503 answers are retried after their `Retry-After`. The output
is the same as scoring with a local adapter (list_core/predictions.py). Only the standard
library speaks HTTP here: the separate Python client distribution is not a dependency of the
service.
"""

import argparse
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from urllib.parse import quote

from list_core.cli import finish_predictions
from list_core.data import Example, read_jsonl_records
from list_core.predictions import prediction_record

API_KEY_VARIABLE = "LISTSERVE_API_KEY"
RETRY_STATUSES = (429, 503)
MAX_TRIES = 6
MAX_RETRY_WAIT_SECONDS = 30.0
TIMEOUT_SECONDS = 120.0


class RemoteError(Exception):
    """The server refused the request; the message is the line the user sees."""


def add_server_options(predict: argparse.ArgumentParser) -> None:
    """Give the engine's `predict` command its server mode."""
    predict.add_argument("--server", help="score through a running server at this URL instead")
    predict.add_argument("--task", help="with --server: the task id")
    predict.add_argument(
        "--api-key", help=f"with --server: the tenant key (default ${API_KEY_VARIABLE})"
    )
    engine = predict.get_default("handler")
    predict.set_defaults(handler=lambda args: run_remote(args) if args.server else engine(args))


def run_remote(args: argparse.Namespace, sleep: Callable[[float], None] = time.sleep) -> int:
    key = args.api_key or os.environ.get(API_KEY_VARIABLE)
    if not args.task or not key:
        raise SystemExit(
            f"listserve predict --server: give --task ID and --api-key KEY (or ${API_KEY_VARIABLE})"
        )
    client = _Client(args.server.rstrip("/"), key, sleep)
    limits = client.get("/info").get("limits") or {}
    max_inputs = int(limits.get("max_predict_inputs", 64))
    max_chars = limits.get("max_text_chars")
    rows = read_jsonl_records(args.input)
    if max_chars is not None:
        _check_lengths(args.input, rows, int(max_chars))
    records: list[dict] = []
    labels: list[str] = []
    try:
        for start in range(0, len(rows), max_inputs):
            chunk = rows[start : start + max_inputs]
            answer = client.post(
                f"/predict/{quote(args.task, safe='')}",
                {"inputs": [_input(example) for _, example in chunk]},
            )
            for (record, _), prediction in zip(chunk, answer["predictions"], strict=True):
                labels = list(prediction["scores"])
                records.append(
                    prediction_record(record, labels, list(prediction["scores"].values()))
                )
    except RemoteError as error:
        raise SystemExit(f"listserve predict: {error}") from error
    finish_predictions(records, labels, args.output)
    return 0


def _input(example: Example) -> str | dict:
    if example.text_b is None:
        return example.text
    return {"text": example.text, "text_b": example.text_b}


def _check_lengths(path: str, rows: list[tuple[dict, Example]], max_chars: int) -> None:
    for number, (_, example) in enumerate(rows, start=1):
        for field, text in (("text", example.text), ("text_b", example.text_b)):
            if text is not None and len(text) > max_chars:
                raise SystemExit(
                    f"listserve predict: {path}: input {number}: {field} has {len(text)} "
                    f"characters; the server takes at most {max_chars} (LISTSERVE_MAX_TEXT_CHARS)"
                )


class _Client:
    def __init__(self, base: str, key: str, sleep: Callable[[float], None]) -> None:
        self.base = base
        self.key = key
        self.sleep = sleep

    def get(self, path: str) -> dict:
        return self._call(urllib.request.Request(self.base + path))

    def post(self, path: str, body: dict) -> dict:
        request = urllib.request.Request(
            self.base + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.key}"},
            method="POST",
        )
        return self._call(request)

    def _call(self, request: urllib.request.Request) -> dict:
        for attempt in range(1, MAX_TRIES + 1):
            try:
                with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
                    return json.loads(response.read())
            except urllib.error.HTTPError as error:
                if error.code in RETRY_STATUSES and attempt < MAX_TRIES:
                    self.sleep(_retry_after(error.headers.get("Retry-After"), attempt))
                    continue
                raise RemoteError(_refusal(error)) from error
            except urllib.error.URLError as error:
                raise RemoteError(f"cannot reach {self.base}: {error.reason}") from error
        raise AssertionError("unreachable")


def _retry_after(header: str | None, attempt: int) -> float:
    try:
        wait = float(header) if header is not None else 2.0**attempt
    except ValueError:
        wait = 2.0**attempt
    return min(max(wait, 0.0), MAX_RETRY_WAIT_SECONDS)


def _refusal(error: urllib.error.HTTPError) -> str:
    """`HTTP 409 not_ready: task has no trained adapter yet (...)` from the error body."""
    try:
        detail = json.loads(error.read())["error"]
        text = f"{detail['type']}: {detail['message']}"
    except (ValueError, KeyError, TypeError):
        text = error.reason
    retry = error.headers.get("Retry-After")
    return f"HTTP {error.code} {text}" + (f" (retry after {retry} s)" if retry else "")
