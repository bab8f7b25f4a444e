"""Small argument parsers shared by several subcommands."""

import argparse
import dataclasses
import inspect
from typing import Any, Callable, Dict, Optional, Tuple

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


def _number(text: str, kind: type) -> float:
    try:
        return float(kind(text))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected {'an integer' if kind is int else 'a number'}, got {text!r}"
        ) from None


def positive_int(text: str) -> int:
    """An integer of at least 1 (frame counts, sizes of queues and batches)."""
    value = int(_number(text, int))
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """An integer of at least 0 (0 meaning none or automatic, as the flag says)."""
    value = int(_number(text, int))
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def positive_float(text: str) -> float:
    """A number above 0 (rates, durations)."""
    value = _number(text, float)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def fraction(text: str) -> float:
    """A number from 0 to 1 (opacities, shares)."""
    value = _number(text, float)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def dataclass_defaults(cls: Any) -> Dict[str, Any]:
    """Field name -> default of an options dataclass (fields without one are left out)."""
    result: Dict[str, Any] = {}
    for item in dataclasses.fields(cls):
        if item.default is not dataclasses.MISSING:
            result[item.name] = item.default
        elif item.default_factory is not dataclasses.MISSING:
            result[item.name] = item.default_factory()
    return result


def signature_defaults(function: Callable[..., Any]) -> Dict[str, Any]:
    """Keyword -> default of a library function whose keywords the flags are named after."""
    parameters = inspect.signature(function).parameters.values()
    return {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}


def library_defaults_help(load: Callable[[], Dict[str, Any]]) -> Callable[[str], argparse.HelpFormatter]:
    """A ``formatter_class`` that appends each optional flag's library default to its help, read through ``load``
    only when --help is printed. Flags of host commands default to ``argparse.SUPPRESS`` so that the library owns
    every default; their options classes are host code (torch, Python 3.10+), which must not be imported to build
    the parser that every command, board commands on Python 3.6 included, starts with."""

    def formatter(prog: str) -> argparse.HelpFormatter:
        return _LibraryDefaultsFormatter(prog, load)

    return formatter


class _LibraryDefaultsFormatter(argparse.HelpFormatter):
    def __init__(self, prog: str, load: Callable[[], Dict[str, Any]]) -> None:
        super().__init__(prog)
        self._load = load
        self._defaults: Optional[Dict[str, Any]] = None

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default is not argparse.SUPPRESS or not action.option_strings or action.nargs == 0:
            return text  # positional, given a parser default, or a switch (store_true/false: its name says it)
        if self._defaults is None:
            try:
                self._defaults = self._load()
            except (ImportError, SyntaxError):  # a board without the host half: help without the defaults
                self._defaults = {}
        if action.dest not in self._defaults or self._defaults[action.dest] is None:
            return text
        shown = _shown(self._defaults[action.dest]).replace("%", "%%")
        return f"{text} (default {shown})" if text else f"default {shown}"


def _shown(value: Any) -> str:
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return f"{value[0]}x{value[1]}"  # sizes are WxH on the command line
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value) or "none"
    return str(value)
