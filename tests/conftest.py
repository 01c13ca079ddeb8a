"""Shared fixtures: the backend/device each op test runs on; logging state restored after each test."""

from __future__ import annotations

import logging
from collections.abc import Iterator

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


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Undo what a test's in-process Hydra run does to logging.

    ``hydra/job_logging=disabled`` (used to keep runner tests quiet) applies a dictConfig with
    ``disable_existing_loggers: true``: every logger that exists then, the plugins' included,
    stays disabled for the rest of the session, and later ``caplog`` tests see nothing.
    """
    root = logging.getLogger()
    loggers = {
        name: logger for name, logger in logging.root.manager.loggerDict.items() if isinstance(logger, logging.Logger)
    }
    saved = {name: (lg.disabled, lg.level, lg.propagate) for name, lg in loggers.items()}
    root_level = root.level
    yield
    for name, state in saved.items():
        logger = loggers[name]
        if (logger.disabled, logger.level, logger.propagate) != state:  # setLevel clears every logger's cache
            logger.disabled, logger.propagate = state[0], state[2]
            logger.setLevel(state[1])
    if root.level != root_level:
        root.setLevel(root_level)  # (not its handlers: pytest's capture handlers come and go per phase)
