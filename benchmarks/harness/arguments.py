"""Command-line argument types and options the benchmarks share."""

import argparse
import json
from collections.abc import Callable, Sequence


def choice_list(allowed: Sequence[str]) -> Callable[[str], list[str]]:
    """An argparse type for a comma list of names from `allowed`: an unknown name is refused,
    by name, before any work starts."""

    def parse(text: str) -> list[str]:
        names = [name.strip() for name in text.split(",") if name.strip()]
        unknown = sorted(set(names) - set(allowed))
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown {unknown}; choose from {list(allowed)}")
        return names

    return parse


def int_list(text: str) -> list[int]:
    """A comma list of integers (`1,16,128`)."""
    return [int(item) for item in text.split(",") if item.strip()]


def name_list(text: str) -> list[str]:
    """A comma list of names, blanks dropped."""
    return [item.strip() for item in text.split(",") if item.strip()]


def parse_overrides(pairs: list[str]) -> dict:
    """`key=value` pairs (`--set`); values are read as JSON (numbers, true/false) or else kept
    as text."""
    overrides = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise argparse.ArgumentTypeError(f"--set expects key=value, got {pair!r}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        overrides[key.strip()] = value
    return overrides


def add_batching_arguments(parser: argparse.ArgumentParser) -> None:
    """The server's batching settings a benchmark passes on (`LISTSERVE_*`), with the
    service's defaults except where a benchmark's record says otherwise."""
    parser.add_argument("--max-batch-rows", type=int, default=32)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--max-wait-for-loads-ms", type=float, default=50.0)
