"""Log a labkit model as an MLflow ``pyfunc`` model, rebuilt from its config at load time.

No pickle of the module: the model directory holds

    model_config.json   {"model": {"_target_": "labkit.nn.Linear", "in_features": 4, ...},
                         "output": "logits", "input_shape": [4], "input_dtype": "float32", ...}
    state.lk            the state_dict in labkit's checkpoint format (labkit.io)
    labkit_model.py     MLflow "model from code": ``set_model(LabkitPyfuncModel())``

and ``mlflow.pyfunc.load_model(uri)`` rebuilds the module from ``model_config.json``,
loads ``state.lk`` and predicts. Only labkit classes (module path ``labkit.``) and classes
of registered plugin packages are instantiated; any other ``_target_`` is refused.

    uri = log_pyfunc_model(tracker, model, {"model": {"_target_": "labkit.models.SmallCNN", ...},
                                            "output": "class_ids", "input_shape": [1, 8, 8]})
    mlflow.pyfunc.load_model(uri).predict(images)      # (N,) int64 class ids

Token models: ``input_dtype`` defaults to ``"auto"``, resolved when the model is rebuilt:
``int64`` when the model's first layer is an ``Embedding`` (it reads token ids), else
``float32``. A model whose forward returns a tuple (a language model's ``(logits, state)``)
is served by its first element, so the runner's logged ``CharLSTMLM`` predicts
``(N, T) int64 ids -> (N, T, vocab_size)`` logits (or ``(N, T)`` next-token ids with
``output: class_ids``); the rows of one input have one length, and each row starts from a
fresh (zero) state.

This module imports mlflow (it subclasses ``PythonModel``): import it only to log or load models.
"""

from __future__ import annotations

import importlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np

OUTPUTS = ("logits", "probabilities", "class_ids")
SPEC_KEYS = ("model", "output", "input_shape", "input_dtype", "batch_size")
_ALLOWED_PACKAGES: set[str] = {"labkit"}

_CODE = '''"""MLflow model-from-code entry: the labkit model is rebuilt from model_config.json + state.lk."""

from mlflow.models import set_model

from labkit.tracking.pyfunc import LabkitPyfuncModel

set_model(LabkitPyfuncModel())
'''


# ---- building modules from configs, labkit classes only ----------------------------------


def allow_package(name: str) -> None:
    """Let models of the top-level package ``name`` (a plugin) be rebuilt at load time."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"allow_package: expected a top-level package name, got {name!r}")
    _ALLOWED_PACKAGES.add(name)


def allowed_packages() -> set[str]:
    """``labkit``, packages passed to :func:`allow_package`, and packages owning registered plugin objects."""
    from labkit.plugins.registry import registry

    packages = set(_ALLOWED_PACKAGES)
    for info in registry.load_plugins().values():  # installed plugins (lazy entries import nothing)
        if info.ok:
            packages.add(info.package)
    for entry in registry.entries():
        if entry.owner != "labkit" and entry.package:
            packages.add(entry.package)
    return packages


def resolve_target(target: Any) -> type:
    """The class named by ``target`` (``"labkit.nn.Linear"``), if it is a labkit or plugin class.

    Raises:
        ValueError: the target is outside the allowed packages, missing, or not a class.
    """
    allowed = allowed_packages()
    if not isinstance(target, str) or target.split(".")[0] not in allowed or "." not in target:
        raise ValueError(
            f"pyfunc model config: refusing to instantiate _target_ {target!r}; expected a class under one of "
            f"the packages {sorted(allowed)} (labkit or a registered plugin)"
        )
    module_name, _, attr = target.rpartition(".")
    obj: Any = None
    while module_name:
        try:
            obj = importlib.import_module(module_name)
            break
        except ImportError:
            module_name, _, head = module_name.rpartition(".")
            attr = f"{head}.{attr}"
    if obj is None:
        raise ValueError(f"pyfunc model config: cannot import _target_ {target!r}")
    for part in attr.split("."):
        obj = getattr(obj, part, None)
    owner = getattr(obj, "__module__", None) or ""
    # re-exports such as ``labkit.something.os.system`` resolve outside labkit: check where it lives
    if not isinstance(obj, type) or owner.split(".")[0] not in allowed:
        raise ValueError(
            f"pyfunc model config: refusing _target_ {target!r}; expected a class defined in {sorted(allowed)}, "
            f"got {type(obj).__name__} from module {owner or '?'}"
        )
    return obj


def build_from_config(node: Any) -> Any:
    """Instantiate a Hydra-style node: ``_target_`` + kwargs, optional ``_args_``, nested nodes.

    ``_partial_`` and ``_recursive_``/``_convert_`` are ignored (the kwargs are complete here).
    """
    if isinstance(node, Mapping):
        values = {k: build_from_config(v) for k, v in node.items() if k not in ("_target_", "_args_")}
        if "_target_" not in node:
            return values
        cls = resolve_target(node["_target_"])
        args = [build_from_config(a) for a in node.get("_args_", [])]
        kwargs = {k: v for k, v in values.items() if not (k.startswith("_") and k.endswith("_"))}
        return cls(*args, **kwargs)
    if isinstance(node, list | tuple):
        return [build_from_config(v) for v in node]
    return node


def check_spec(spec: Any) -> dict[str, Any]:
    """The predict spec with defaults filled in; ``model`` is required and must be a ``_target_`` node."""
    if not isinstance(spec, Mapping):
        raise TypeError(f"predict_spec: expected a mapping, got {type(spec).__name__}")
    unknown = sorted(set(spec) - set(SPEC_KEYS))
    if unknown:
        raise ValueError(f"predict_spec: unknown keys {unknown}; expected keys among {list(SPEC_KEYS)}")
    model = spec.get("model")
    if not isinstance(model, Mapping) or "_target_" not in model:
        raise ValueError(f"predict_spec['model']: expected a config with a _target_, got {model!r}")
    out = {
        "model": json.loads(json.dumps(dict(model))),  # plain JSON data only
        "output": spec.get("output", "logits"),
        "input_shape": None if spec.get("input_shape") is None else [int(d) for d in spec["input_shape"]],
        "input_dtype": _dtype_name(spec.get("input_dtype", "auto")),
        "batch_size": int(spec.get("batch_size", 256)),
    }
    if out["output"] not in OUTPUTS:
        raise ValueError(f"predict_spec['output']: expected one of {list(OUTPUTS)}, got {out['output']!r}")
    if out["batch_size"] <= 0:
        raise ValueError(f"predict_spec['batch_size']: expected a positive int, got {out['batch_size']}")
    resolve_target(out["model"]["_target_"])
    return out


def _dtype_name(value: Any) -> str:
    """``"auto"`` or a numpy dtype's name (``"int64"``, ``"float32"``)."""
    if value == "auto":
        return "auto"
    try:
        return str(np.dtype(value))
    except TypeError:
        raise ValueError(f"predict_spec['input_dtype']: expected 'auto' or a numpy dtype name, got {value!r}") from None


def input_dtype_of(model: Any, dtype: str) -> str:
    """``dtype``, or for ``"auto"``: ``int64`` when the first layer of ``model`` is an ``Embedding``, else ``float32``."""
    if dtype != "auto":
        return dtype
    from labkit.nn.embedding import Embedding

    layers = [m for _, m in model.named_modules() if m is not model and not any(True for _ in m.children())]
    return "int64" if layers and isinstance(layers[0], Embedding) else "float32"


def _state_dict_of(source: Any) -> dict[str, Any]:
    import labkit
    from labkit.nn.module import Module

    if isinstance(source, Module):
        return dict(source.state_dict())
    if not isinstance(source, str | Path):
        raise TypeError(f"log_pyfunc_model: expected a labkit Module or a checkpoint path, got {type(source).__name__}")
    state = labkit.load(source, map_location="cpu")
    if isinstance(state, Mapping) and isinstance(state.get("model"), Mapping):
        state = state["model"]  # a runner checkpoint {"model": ..., "optim": ..., "step": ...}
    if not isinstance(state, Mapping):
        raise ValueError(f"log_pyfunc_model: {source} holds no state_dict; expected a mapping of name -> tensor")
    return dict(state)


# ---- the pyfunc model --------------------------------------------------------------------


class LabkitPyfuncModel(mlflow.pyfunc.PythonModel):
    """Rebuilds a labkit module from ``model_config.json`` + ``state.lk`` and predicts on CPU.

    ``predict(context, x)``: ``x`` is a numpy array ``(N, *input_shape)`` or a pandas
    DataFrame with one row per example (flattened features, reshaped to ``input_shape``,
    or one column holding arrays), cast to ``input_dtype``. Returns a numpy array: ``logits``
    ``(N, ..., C)`` (the model's raw output; the first element when the model returns a tuple),
    ``probabilities`` (softmax over the last axis) or ``class_ids`` int64 (argmax over the
    last axis: ``(N,)`` for a classifier, ``(N, T)`` for a language model), as ``output`` says.
    """

    # inputs are numpy batches (images, token ids), not MLflow's list-of-records: no type-hint validation
    _skip_type_hint_validation = True

    def load_context(self, context: Any) -> None:
        import labkit

        self.spec = check_spec(json.loads(Path(context.artifacts["config"]).read_text()))
        self.model = build_from_config(self.spec["model"])
        self.model.load_state_dict(labkit.load(context.artifacts["state"], map_location="cpu"))
        self.model.eval()
        self.input_dtype = input_dtype_of(self.model, self.spec["input_dtype"])

    def _as_array(self, model_input: Any) -> np.ndarray:
        if hasattr(model_input, "to_numpy"):  # pandas DataFrame / Series
            values = model_input.to_numpy()
            if values.dtype == object:
                values = np.stack([np.asarray(v).reshape(-1) if values.ndim == 1 else np.asarray(v) for v in values])
        else:
            values = np.asarray(model_input)
        if values.ndim == 2 and values.shape[1] == 1 and values.dtype == object:
            values = np.stack([np.asarray(v) for v in values[:, 0]])
        values = values.astype(self.input_dtype, copy=False)
        shape = self.spec["input_shape"]
        if shape is not None and tuple(values.shape[1:]) != tuple(shape):
            values = values.reshape(len(values), *shape)
        return values

    def predict(self, context, model_input, params=None):  # no hints: MLflow would read them as a schema
        import labkit

        x = self._as_array(model_input)
        outputs = []
        with labkit.no_grad():
            for start in range(0, len(x), self.spec["batch_size"]):
                out = self.model(labkit.tensor(x[start : start + self.spec["batch_size"]]))
                if isinstance(out, tuple | list):  # (logits, state) of a language model: serve the logits
                    out = out[0]
                outputs.append(np.asarray(out.numpy()))
        logits = np.concatenate(outputs) if outputs else np.zeros((0,), dtype=np.float32)
        if self.spec["output"] == "class_ids":
            return logits.argmax(axis=-1).astype(np.int64)
        if self.spec["output"] == "probabilities":
            shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
            return shifted / shifted.sum(axis=-1, keepdims=True)
        return logits


# ---- logging -----------------------------------------------------------------------------


@contextmanager
def _no_progress_bars() -> Iterator[None]:
    """MLflow draws a tqdm bar for every local artifact it copies while saving; not in a training log."""
    name = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    saved = os.environ.get(name)
    os.environ[name] = "false"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved


def log_pyfunc_model(
    tracker: Any, model_state_path_or_module: Any, predict_spec: Mapping[str, Any], artifact_path: str = "model"
) -> str:
    """Log a labkit model to ``tracker``'s run as an MLflow pyfunc model; return its artifact URI.

    Args:
        tracker: an ``MLflowTracker`` (its ``client`` and ``run_id`` are used).
        model_state_path_or_module: a labkit ``Module``, or a ``labkit.save`` checkpoint holding
            a state_dict (or a runner checkpoint with the state_dict under ``"model"``).
        predict_spec: ``model`` (required: the model config, ``_target_`` + every kwarg, e.g.
            ``{**cfg.model, **task.model_kwargs()}`` without ``_partial_``), ``output``
            (``logits`` | ``probabilities`` | ``class_ids``, default ``logits``), ``input_shape``
            (per example, to reshape flat DataFrame rows), ``input_dtype`` (default ``auto``:
            ``int64`` for models whose first layer is an ``Embedding``, else ``float32``), ``batch_size``
            (default 256).
        artifact_path: where in the run's artifacts the model directory goes.

    Returns:
        The model's absolute artifact URI (``file:///.../artifacts/model`` for local stores) for
        ``mlflow.pyfunc.load_model``; with a tracking server, set ``mlflow.set_tracking_uri`` first.

    The model is rebuilt and its state loaded once before logging, so a config that does
    not match the weights fails here, not at serving time.
    """
    import labkit
    from labkit import __version__

    if not hasattr(tracker, "client") or not hasattr(tracker, "run_id"):
        raise TypeError(f"log_pyfunc_model: expected an MLflowTracker, got {type(tracker).__name__}")
    spec = check_spec(predict_spec)
    state = _state_dict_of(model_state_path_or_module)
    build_from_config(spec["model"]).load_state_dict(state)  # fails early on a config/weights mismatch
    with tempfile.TemporaryDirectory() as tmp, _no_progress_bars():
        root = Path(tmp)
        (root / "model_config.json").write_text(json.dumps(spec, indent=2))
        labkit.save(state, root / "state.lk")
        (root / "labkit_model.py").write_text(_CODE)
        mlflow.pyfunc.save_model(
            path=root / "model",
            python_model=str(root / "labkit_model.py"),
            artifacts={"config": str(root / "model_config.json"), "state": str(root / "state.lk")},
            pip_requirements=[f"labkit=={__version__}", f"mlflow=={mlflow.__version__}", "numpy"],
            metadata={"labkit_target": spec["model"]["_target_"], "output": spec["output"]},
        )
        tracker.client.log_artifacts(tracker.run_id, str(root / "model"), artifact_path)
    try:
        return f"{tracker.client.get_run(tracker.run_id).info.artifact_uri.rstrip('/')}/{artifact_path}"
    except Exception:  # a spooled run the store has not created yet: its files arrive with labkit sync
        return f"runs:/{tracker.run_id}/{artifact_path}"
