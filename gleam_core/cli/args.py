"""Argument types shared by the command-line tools."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """argparse ``type=`` for counts that must be >= 1; the error names the value."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def add_model_source(p: argparse.ArgumentParser) -> None:
    """``--run DIR | --checkpoint FILE`` (one required): which trained network a tool reads."""
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--run", help="run directory (its best-validation checkpoint, else its latest)")
    which.add_argument("--checkpoint", help="checkpoint file")
