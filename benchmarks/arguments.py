"""Command-line argument types and options the benchmarks share."""

import argparse
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


def add_batching_arguments(parser: argparse.ArgumentParser) -> None:
    """The server's batching settings a benchmark passes on (`LISTSERVE_*`), with the
    service's defaults except where a benchmark's record says otherwise."""
    parser.add_argument("--max-batch-rows", type=int, default=32)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--max-wait-for-loads-ms", type=float, default=50.0)
