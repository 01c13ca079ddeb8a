"""The plugin as labkit sees it: discovery, registered names, configs, and the conformance kit."""

from __future__ import annotations

import labkit.functional  # noqa: F401 - registers labkit's built-ins, as any labkit session has
from labkit.plugins import check_plugin, load_plugins, registry


def test_discovered_with_its_names_and_configs():
    info = load_plugins()["mingru"]
    assert info.ok, info.error
    assert info.source == "labkit-mingru 0.1.0"
    assert set(info.registered) == {
        ("op", "mingru.parallel_scan"),
        ("op", "mingru.min_gru_scan"),
        ("function", "mingru.parallel_scan"),
        ("kernel", "mingru.parallel_scan@numpy"),
        ("module", "mingru.MinGRU"),
        ("module", "mingru.MinGRUBlock"),
        ("module", "mingru.MinGRULM"),
    }
    assert {"experiment/charlm_mingru", "model/mingru_lm"} <= set(info.configs())
    assert registry.owner("op", "mingru.parallel_scan") == "mingru"
    from labkit_mingru.ops import ParallelScan, parallel_scan

    assert registry.get("op", "mingru.parallel_scan") is parallel_scan  # the lazy reference resolves
    assert registry.get("function", "mingru.parallel_scan") is ParallelScan


def test_conformance_kit_passes():
    # the experiment item (a 3-step run against a fresh MLflow store) is left to test_mingru_experiment.py
    report = check_plugin("mingru", devices=["cpu"], run_experiments=False)
    assert report.ok, report.table()
    names = [item.name for item in report.items]
    assert any(n.startswith("op mingru.parallel_scan [cpu] spec") for n in names)
    assert any(n.startswith("op mingru.min_gru_scan [cpu] spec") for n in names)
    assert any(n.startswith("kernel mingru.parallel_scan@numpy spec") for n in names)
    for expected in ("module mingru.MinGRU [cpu]", "module mingru.MinGRULM [cpu]", "config experiment/charlm_mingru"):
        assert expected in names, names
