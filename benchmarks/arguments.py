"""Command-line argument types the benchmarks share."""

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
