"""Small argument parsers shared by several subcommands."""

import argparse
from typing import Tuple

from rich.console import Console

console = Console(stderr=True)


def parse_size(text: str) -> Tuple[int, int]:
    """'1024x512' -> (1024, 512) as (width, height)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 1024x512, got {text!r}") from None
    if width <= 0 or height <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return width, height
