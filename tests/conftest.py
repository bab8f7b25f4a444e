"""Shared fixtures: the ../shared data folder (present on dev machines and CI, absent in a user's fresh clone)."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture
def shared() -> Path:
    """Path of ../shared, or a skip saying why the test cannot run without it."""
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent (official weights and real samples live there, not in the repo)")
    return SHARED
