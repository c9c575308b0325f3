"""Fixtures shared by the tests."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def world_readable_tmp() -> Iterator[Path]:
    """A temporary directory that other users can enter (pytest's own tmp_path is private to root).

    Ignition writes a user's SSH keys as that user, so its scratch root must be reachable by them.
    """
    path = Path(tempfile.mkdtemp(prefix="ephemeros-test-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
