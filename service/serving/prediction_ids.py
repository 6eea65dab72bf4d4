"""Prediction ids that carry their own text, so feedback needs no store of past predictions.

`POST /tasks/{id}/feedback {"prediction_id", "label"}` must turn an id back into the text it
was predicted for. Storing every predicted text (even for a day) would put a registry write on
every predict request and keep tenants' texts that were only meant to be classified; an id
holding just a hash cannot give the text back. So the id is the text itself, compressed, with
the adapter version, the predicted label, the time it was issued and an HMAC-SHA256 tag (16
bytes) keyed by the task's own `prediction_key`:

    prd_ + base64url(format | issued_at | version | label | flags | text [NUL text_b] | tag)

Any API replica can read it (the key is in the registry), nothing is stored per prediction, an
id is refused for another task (the tag covers the task id) and after
`LISTSERVE_PREDICTION_ID_TTL_SECONDS`, and deleting the task deletes its key, so its ids die
with it. The price is length: an id is about as long as its text (a 2,000-character text makes
an id of up to ~2.7 kB; texts are zlib-compressed when that is shorter). The text is not
encrypted: an id reveals its text to whoever holds it, so treat ids like the texts.
"""

import base64
import binascii
import hashlib
import hmac
import struct
import zlib
from dataclasses import dataclass

PREFIX = "prd_"
FORMAT = 1
TAG_BYTES = 16
_HEADER = struct.Struct(">BIIHB")  # format, issued_at (s), version, label index, flags
_HAS_TEXT_B, _COMPRESSED = 1, 2
_SEPARATOR = b"\x00"  # texts are validated NUL-free, so it cannot occur inside one


@dataclass(frozen=True)
class PredictionRecord:
    """What a prediction id says: the input, and the version and label it was given."""

    text: str
    text_b: str | None
    version: int
    label_index: int
    issued_at: int


class InvalidPredictionId(ValueError):
    """Not an id this task issued (or it expired); the message says which, for a person."""


def issue(
    key_hex: str,
    task_id: str,
    version: int,
    label_index: int,
    text: str,
    text_b: str | None,
    now: float,
) -> str:
    body = text.encode("utf-8")
    flags = 0
    if text_b is not None:
        body += _SEPARATOR + text_b.encode("utf-8")
        flags |= _HAS_TEXT_B
    packed = zlib.compress(body, 6)
    if len(packed) < len(body):
        body, flags = packed, flags | _COMPRESSED
    payload = _HEADER.pack(FORMAT, int(now), version, label_index, flags) + body
    token = payload + _tag(key_hex, task_id, payload)
    return PREFIX + base64.urlsafe_b64encode(token).rstrip(b"=").decode("ascii")


def read(
    key_hex: str, task_id: str, prediction_id: str, ttl_seconds: float, now: float
) -> PredictionRecord:
    """The record inside `prediction_id`, or `InvalidPredictionId`."""
    if not prediction_id.startswith(PREFIX):
        raise InvalidPredictionId(f"must start with {PREFIX!r}")
    encoded = prediction_id[len(PREFIX) :]
    try:
        token = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except (binascii.Error, ValueError) as error:
        raise InvalidPredictionId("is not a prediction id (bad encoding)") from error
    if len(token) < _HEADER.size + TAG_BYTES:
        raise InvalidPredictionId("is not a prediction id (too short)")
    payload, tag = token[:-TAG_BYTES], token[-TAG_BYTES:]
    if not hmac.compare_digest(tag, _tag(key_hex, task_id, payload)):
        raise InvalidPredictionId("was not issued for this task")
    form, issued_at, version, label_index, flags = _HEADER.unpack_from(payload)
    if form != FORMAT:
        raise InvalidPredictionId(f"has an unknown format {form}")
    if now - issued_at > ttl_seconds:
        raise InvalidPredictionId(
            f"expired: issued {int(now - issued_at)} s ago, ids last {int(ttl_seconds)} s; "
            'send {"text", "label"} instead'
        )
    body = payload[_HEADER.size :]
    if flags & _COMPRESSED:
        body = zlib.decompress(body)
    text, _, text_b = body.decode("utf-8").partition(_SEPARATOR.decode())
    return PredictionRecord(
        text, text_b if flags & _HAS_TEXT_B else None, version, label_index, issued_at
    )


def _tag(key_hex: str, task_id: str, payload: bytes) -> bytes:
    message = b"listserve-prediction|" + task_id.encode("utf-8") + b"|" + payload
    return hmac.new(bytes.fromhex(key_hex), message, hashlib.sha256).digest()[:TAG_BYTES]
