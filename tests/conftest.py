"""Shared fixtures: the backend/device each op test runs on."""

from __future__ import annotations

import pytest

import labkit


def _cuda() -> bool:
    return labkit.cuda_is_available()


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def device(request: pytest.FixtureRequest) -> str:
    """Run a test on numpy (``cpu``) and, where a GPU is present, on cupy (``cuda``)."""
    if request.param == "cuda" and not _cuda():
        pytest.skip("no NVIDIA GPU with cupy here")
    return request.param
