"""The conformance kit: ``check_plugin(name)`` checks everything one installed plugin contributes.

Items, each caught (an exception is a failed item with its message, never a traceback out of the kit):

- ``op NAME [device] spec 'ROW'``: every ``OpSpec`` row the op registered (``specs=``) through
  ``labkit.testing.opspec.check_op`` (forward vs the numpy reference in float64/float32, gradcheck,
  gradgradcheck) on every available device; an op without specs fails.
- ``module NAME [device]``: the registered ``example(Generator(0)) -> (module, inputs)``: forward,
  gradcheck w.r.t. inputs and parameters, double backward; a module without an example fails.
- ``kernel NAME spec 'ROW' [device]``: with the kernel selected, outputs and gradients equal the
  built-in ``Function``'s (float64 and float32), and the kernel really ran.
- ``import KIND NAME``: every other entry (functions, tasks, datasets, metrics ...) imports and has
  the right shape (a ``Function`` subclass, a ``DatasetSpec``, a Task with its methods ...).
- ``config GROUP/OPTION``: every YAML under the plugin's ``conf/`` composes in labkit's config
  (``labkit train GROUP=OPTION``) and every ``_target_`` in it is allowed and imports.
- ``experiment NAME (3 steps)``: each experiment config runs through ``labkit.runner.run`` for a few
  steps against a temporary MLflow store and ends ``FINISHED``.

A plugin that failed to load is one failed item with its error. ``labkit plugins check NAME``
prints the report.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labkit.plugins.registry import Entry, Registry
from labkit.plugins.registry import registry as default_registry

log = logging.getLogger("labkit.plugins")

#: the training steps of an experiment check, and the cap put on ``data.limit`` when the data node has one
EXPERIMENT_STEPS = 3
EXPERIMENT_LIMIT = 128
#: Task methods the runner calls
TASK_METHODS = ("setup", "model_kwargs", "training_loss", "evaluate", "artifacts")


@dataclass
class CheckItem:
    """One check: its name, whether it passed, what it found (or why it failed), how long it took."""

    name: str
    ok: bool
    message: str = ""
    seconds: float = 0.0
    skipped: bool = False

    @property
    def status(self) -> str:
        return "SKIP" if self.skipped else ("PASS" if self.ok else "FAIL")


@dataclass
class Report:
    """The items of one plugin check; ``ok`` when every item passed (or was skipped)."""

    plugin: str
    source: str = ""
    items: list[CheckItem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.items) and all(i.ok for i in self.items)

    @property
    def failed(self) -> list[CheckItem]:
        return [i for i in self.items if not i.ok]

    def summary(self) -> str:
        counts = {s: sum(i.status == s for i in self.items) for s in ("PASS", "FAIL", "SKIP")}
        seconds = sum(i.seconds for i in self.items)
        verdict = "ok" if self.ok else "FAILED"
        return (
            f"plugin {self.plugin!r} ({self.source or 'unknown source'}): {verdict}: {counts['PASS']} passed, "
            f"{counts['FAIL']} failed, {counts['SKIP']} skipped in {seconds:.1f} s"
        )

    def table(self) -> str:
        """A printable table (one line per item), then the full message of every failure."""
        width = max([len(i.name) for i in self.items] + [4])
        lines = [self.summary(), "", f"{'STATUS':6}  {'SECONDS':>7}  {'ITEM':{width}}  MESSAGE"]
        for i in self.items:
            first = i.message.strip().splitlines()[0] if i.message.strip() else ""
            lines.append(f"{i.status:6}  {i.seconds:7.2f}  {i.name:{width}}  {first[:160]}".rstrip())
        for i in self.failed:
            lines += ["", f"FAIL {i.name}:", *("  " + line for line in i.message.strip().splitlines())]
        if not self.items:
            lines.append("(nothing to check: the plugin registers nothing and ships no configs)")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


class ConfigCheckError(ValueError):
    """A plugin config that does not compose, or names a refused or missing ``_target_``."""


class _SkipItemError(Exception):
    """Raised inside a check: the item is reported as skipped with this message."""


def _item(report: Report, name: str, check: Callable[[], str | None]) -> CheckItem:
    start = time.perf_counter()
    ok, skipped = True, False
    try:
        message = check() or ""
    except _SkipItemError as exc:
        message, skipped = str(exc), True
    except Exception as exc:  # a failed item, never a traceback out of the kit
        ok, message = False, f"{type(exc).__name__}: {exc}"
        log.debug("conformance item %r failed", name, exc_info=True)
    item = CheckItem(name, ok, message, time.perf_counter() - start, skipped)
    report.items.append(item)
    log.info("%s %s %s", item.status, name, message.splitlines()[0] if message else "")
    return item


def available_devices() -> list[str]:
    """``cpu`` always; ``cuda`` when cupy is installed and sees a GPU."""
    import labkit

    return ["cpu", "cuda"] if labkit.cuda_is_available() else ["cpu"]


def check_plugin(
    name: str,
    *,
    devices: Sequence[str] | None = None,
    run_experiments: bool = True,
    work_dir: str | Path | None = None,
    registry: Registry | None = None,
) -> Report:
    """Check the installed plugin ``name`` (its entry point's name); see the module docstring.

    Args:
        name: the plugin (``labkit plugins list`` shows the installed ones).
        devices: where ops and modules are checked; None: every available device.
        run_experiments: also train each shipped experiment for a few steps (the slow part).
        work_dir: where experiment runs write their MLflow store and checkpoints; None: a
            temporary directory, removed afterwards.
        registry: the registry the plugin is loaded into (labkit's shared one by default;
            configs and experiments always go through labkit's runner).

    Raises:
        ValueError: ``name`` is not an installed plugin, or a device is unknown or absent.
    """
    reg = default_registry if registry is None else registry
    plugins = reg.load_plugins()
    if name not in plugins:
        plugins = reg.load_plugins(reload=True)  # installed since the first discovery
    if name not in plugins:
        installed = ", ".join(sorted(plugins)) or "none"
        raise ValueError(
            f"check_plugin: no installed plugin named {name!r} (entry point group {reg.group!r}); installed: {installed}"
        )
    found = available_devices()
    devices = list(found if devices is None else devices)
    for device in devices:
        if device not in ("cpu", "cuda"):
            raise ValueError(f"check_plugin: devices: expected 'cpu' or 'cuda', got {device!r}")
        if device not in found:
            raise ValueError(f"check_plugin: device {device!r} is not available here (available: {found})")
    info = plugins[name]
    report = Report(name, info.source)
    if not info.ok:
        report.items.append(CheckItem(f"load plugin {name}", False, f"{info.error}\n{info.details or ''}".strip()))
        return report
    entries = list(reg.entries(owner=name))
    _check_ops(report, reg, entries, devices)
    _check_modules(report, reg, entries, devices)
    _check_kernels(report, reg, entries, devices)
    _check_imports(report, reg, entries)
    configs = info.configs()
    _check_configs(report, name, configs)
    if run_experiments:
        experiments = [c.split("/", 1)[1] for c in configs if c.startswith("experiment/")]
        if experiments:
            with tempfile.TemporaryDirectory(prefix="labkit-check-") as tmp:
                _check_experiments(report, name, experiments, Path(work_dir or tmp).resolve())
    return report


# ---- registered objects -----------------------------------------------------------------------


def _check_ops(report: Report, reg: Registry, entries: list[Entry], devices: list[str]) -> None:
    from labkit.plugins.conformance_numeric import load_specs
    from labkit.testing.opspec import check_op

    for e in entries:
        if e.kind != "op":
            continue
        specs: list[Any] = []

        def load(e: Entry = e, specs: list[Any] = specs) -> str:
            specs.extend(load_specs(e, reg))
            return f"{len(specs)} spec rows"

        if not _item(report, f"op {e.name} specs", load).ok:
            continue
        for device in devices:
            for spec in specs:
                _item(report, f"op {e.name} [{device}] spec {spec.name!r}", lambda s=spec, d=device: check_op(s, d))


def _check_modules(report: Report, reg: Registry, entries: list[Entry], devices: list[str]) -> None:
    from labkit.plugins.conformance_numeric import check_module

    for e in entries:
        if e.kind == "module":
            for device in devices:
                _item(report, f"module {e.name} [{device}]", lambda e=e, d=device: check_module(e, reg, d))


def _check_kernels(report: Report, reg: Registry, entries: list[Entry], devices: list[str]) -> None:
    from labkit.plugins.conformance_numeric import BACKEND_DEVICES, check_kernel, load_specs

    for e in entries:
        if e.kind != "kernel":
            continue
        backend = e.meta.get("backend", "?")
        device = BACKEND_DEVICES.get(backend)
        specs: list[Any] = []

        def load(e: Entry = e, backend: str = backend, device: str | None = device, specs: list[Any] = specs) -> str:
            if device is None:
                raise ValueError(f"kernel backend {backend!r}: expected one of {sorted(BACKEND_DEVICES)}")
            specs.extend(load_specs(e, reg))
            return f"{len(specs)} spec rows for {e.meta.get('function')!r} on {backend!r}"

        if not _item(report, f"kernel {e.name} specs", load).ok:
            continue
        for spec in specs:

            def check(e: Entry = e, s: Any = spec, d: str = str(device), backend: str = backend) -> str:
                if d not in devices:
                    raise _SkipItemError(f"backend {backend!r} runs on {d!r}, not checked here (devices {devices})")
                return check_kernel(e, reg, s, d)

            _item(report, f"kernel {e.name} spec {spec.name!r} [{device}]", check)


def _check_imports(report: Report, reg: Registry, entries: list[Entry]) -> None:
    """Entries without a numerical check: they import and are what their kind says."""
    for e in entries:
        if e.kind not in ("op", "module", "kernel"):
            _item(report, f"import {e.kind} {e.name}", lambda e=e: _check_entry(reg, e))


def _check_entry(reg: Registry, e: Entry) -> str:
    obj = reg.get(e.kind, e.name)
    if e.kind == "function":
        from labkit.core.function import Function

        if not (isinstance(obj, type) and issubclass(obj, Function)):
            raise TypeError(f"function {e.name!r}: expected a labkit.Function subclass, got {obj!r}")
    elif e.kind == "dataset":
        from labkit.data.catalog import DatasetSpec, Located

        if not isinstance(obj, DatasetSpec):
            raise TypeError(f"dataset {e.name!r}: expected a labkit.data.catalog.DatasetSpec, got {type(obj).__name__}")
        with tempfile.TemporaryDirectory() as tmp:
            found = obj.locate(Path(tmp))
        if not isinstance(found, Located):
            raise TypeError(f"dataset {e.name!r}: locate(data_dir) returned {type(found).__name__}, expected Located")
        return f"{obj.domain} dataset; {'available' if found.found else 'not present here'}"
    elif e.kind == "task":
        missing = [m for m in TASK_METHODS if not callable(getattr(obj, m, None))]
        if missing:
            raise TypeError(f"task {e.name!r}: expected the Task methods {list(TASK_METHODS)}, missing {missing}")
    elif e.kind in ("metric", "callback", "tokenizer") and not callable(obj):
        raise TypeError(f"{e.kind} {e.name!r}: expected a callable or class, got {type(obj).__name__}")
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', type(obj).__name__)}"


# ---- configs and experiments --------------------------------------------------------------------


def _check_configs(report: Report, plugin: str, configs: list[str]) -> None:
    from labkit.runner import instantiate

    instantiate.plugin_packages.cache_clear()  # plugins installed since the allowlist was first read
    for config in configs:
        _item(report, f"config {config}", lambda c=config: _check_config(plugin, c))


def _check_config(plugin: str, config: str) -> str:
    from omegaconf import OmegaConf

    from labkit.runner.hydra_app import compose
    from labkit.runner.instantiate import check_targets, iter_targets, resolve_target

    group, _, option = config.rpartition("/")
    if not group:
        raise _SkipItemError("not in a config group folder (conf/GROUP/OPTION.yaml): not composed")
    try:
        cfg = compose([f"{group}={option}"])
        plain = OmegaConf.to_container(cfg, resolve=True)
        check_targets(plain)
        targets = list(iter_targets(plain))
        for key, target in targets:
            resolve_target(target, key)
    except Exception as exc:
        raise ConfigCheckError(f"plugin {plugin!r}, config {config}: {type(exc).__name__}: {exc}") from None
    return f"composes as {group}={option}; {len(targets)} targets import"


def _check_experiments(report: Report, plugin: str, experiments: list[str], work_dir: Path) -> None:
    work_dir.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{work_dir / 'mlflow.db'}"
    for name in experiments:
        _item(
            report,
            f"experiment {name} ({EXPERIMENT_STEPS} steps)",
            lambda n=name: _run_experiment(plugin, n, work_dir, uri),
        )


def _run_experiment(plugin: str, name: str, work_dir: Path, uri: str) -> str:
    from omegaconf import open_dict

    from labkit.runner.hydra_app import compose
    from labkit.runner.run import run
    from labkit.tracking.store import make_client

    cfg = compose(
        [
            f"experiment={name}",
            "tracking=mlflow",
            f"trainer.max_steps={EXPERIMENT_STEPS}",
            "trainer.max_epochs=1",
            "trainer.progress_bar=false",
        ]
    )
    with open_dict(cfg):
        cfg.tracking.uri = uri
        cfg.tracking.experiment = f"labkit-plugin-check-{plugin}"
        cfg.work_dir = str(work_dir)
        cfg.run_name = f"check-{plugin}-{name}"
        limit = cfg.data.get("limit", EXPERIMENT_LIMIT)
        if limit is None or (isinstance(limit, int) and limit > EXPERIMENT_LIMIT):
            cfg.data.limit = EXPERIMENT_LIMIT
    result = run(cfg, tags={"labkit.plugin_check": plugin})
    status = make_client(uri).get_run(result["run_id"]).info.status
    if status != "FINISHED":
        raise RuntimeError(f"experiment {name}: run {result['run_id']} ended {status}, expected FINISHED")
    shown = [(k, v) for k, v in result.items() if k.startswith(("val/", "test/")) and k.count("/") == 1]
    metrics = ", ".join(f"{k} {v:.4g}" for k, v in shown[:6])
    return f"FINISHED after {result['step']} steps ({metrics or 'no metrics'})"
