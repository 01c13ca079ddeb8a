"""labkit's Optuna sweeper for Hydra: ``hydra/sweeper=labkit_optuna`` (see docs/sweeps.md).

Hydra imports every public module of the ``hydra_plugins`` namespace package when it starts,
so the modules it scans (this one, ``config``, ``sweeper``) import neither optuna nor labkit;
``_search_space`` and ``_study`` (skipped by the scan) are imported when a sweep starts.
"""
