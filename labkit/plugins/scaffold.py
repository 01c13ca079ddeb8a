"""``labkit plugins new NAME``: write a plugin package to start from, already passing the conformance kit.

``scaffold("myops", Path("."))`` creates ``./labkit-myops/``::

    pyproject.toml                 the entry point (group labkit.plugins) and package-data for conf/
    README.md
    labkit_myops/__init__.py       light: nothing heavy at import
    labkit_myops/plugin.py         register(registry): an op, its Function, a layer, a model
    labkit_myops/ops.py            SoftClip (a labkit.Function: forward on arrays, backward with labkit ops)
    labkit_myops/layers.py         SoftClipLinear (a layer using the op) and SoftClipNet (an image classifier)
    labkit_myops/checks.py         what the kit checks: OpSpec rows for the op, float64 module examples
    labkit_myops/conf/model/myops.yaml, conf/experiment/myops_digits.yaml
    tests/test_myops_plugin.py     the conformance kit, and the op against its closed form

The files are the templates below with ``__NAME__`` (plugin), ``__PKG__`` (package) and
``__DIST__`` (distribution) filled in.
"""

from __future__ import annotations

import re
from pathlib import Path

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")

PYPROJECT = """\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "__DIST__"
version = "0.1.0"
description = "A labkit plugin: the softclip op, a SoftClipLinear layer and a SoftClipNet classifier"
requires-python = ">=3.11"
dependencies = ["labkit>=0.1,<0.2"]  # pin the labkit minor version you tested against

[project.optional-dependencies]
test = ["pytest>=8"]

[project.entry-points."labkit.plugins"]
__NAME__ = "__PKG__.plugin"

[tool.setuptools.packages.find]
include = ["__PKG__*"]

[tool.setuptools.package-data]
__PKG__ = ["conf/*/*.yaml"]
"""

README = """\
# __DIST__

A labkit plugin (made with `labkit plugins new __NAME__`). It adds:

- the op `__NAME__.softclip` (`__PKG__.ops.softclip`): `limit * tanh(x / limit)`, a smooth clip,
  written as a `labkit.Function` with a hand-written backward (double backward included);
- the layer `__NAME__.SoftClipLinear` and the image classifier `__NAME__.SoftClipNet`;
- the configs `model=__NAME__` and `experiment=__NAME___digits`.

```bash
pip install -e .                              # the entry point makes labkit find the plugin
labkit plugins list                           # __NAME__ is listed with what it registers
labkit plugins check __NAME__                 # the conformance kit: gradchecks, configs, a 3-step run
labkit train experiment=__NAME___digits       # SoftClipNet on the 8x8 digits
python -m pytest tests
```

Replace the op and the layer with your own; keep `checks.py` in step (one `OpSpec` row per case
of each op, a float64 example per module): `labkit plugins check` runs them on every backend.
See labkit's docs/plugins.md.
"""

INIT = '''\
"""__DIST__: a labkit plugin. Light on purpose: labkit imports the parts only when they are used."""
'''

PLUGIN = '''\
"""The entry point: labkit calls ``register(registry)`` once, with names namespaced as ``__NAME__.*``.

Objects are given as ``"module:attr"`` strings, imported only when first used.
"""

from __future__ import annotations

from typing import Any

PACKAGE = "__PKG__"


def register(registry: Any) -> None:
    """Register the op (with its OpSpec rows), its Function, the layer and the model (with examples)."""
    registry.op("softclip", f"{PACKAGE}.ops:softclip", specs=f"{PACKAGE}.checks:op_specs")
    registry.function("softclip", f"{PACKAGE}.ops:SoftClip")
    registry.module("SoftClipLinear", f"{PACKAGE}.layers:SoftClipLinear", example=f"{PACKAGE}.checks:layer_example")
    registry.module("SoftClipNet", f"{PACKAGE}.layers:SoftClipNet", example=f"{PACKAGE}.checks:model_example")
'''

OPS = '''\
"""``softclip(x, limit)``: ``limit * tanh(x / limit)``, a smooth clip of ``x`` to ``(-limit, limit)``.

One ``Function``: ``forward`` on raw arrays (numpy or cupy, through ``array_module``) and ``backward``
with labkit ops, so double backward works and one body serves every backend.
"""

from __future__ import annotations

from typing import Any

from labkit.backends import array_module
from labkit.core.function import Function
from labkit.core.tensor import Tensor

__all__ = ["SoftClip", "softclip"]


class SoftClip(Function):
    """``y = limit * tanh(x / limit)``, ``dy/dx = 1 - (y / limit)^2``; elementwise, any shape."""

    def __init__(self, limit: float) -> None:
        self.limit = limit

    def forward(self, x: Any) -> Any:
        y = self.limit * array_module(x).tanh(x / self.limit)
        self.save_for_backward(y)  # backward needs only the output
        return y

    def backward(self, gy: Tensor) -> Tensor:
        (y,) = self.saved_tensors  # the output as a Tensor on the graph: gradients flow through it
        u = y / self.limit
        return gy * (1.0 - u * u)


def softclip(x: Tensor, limit: float = 3.0) -> Tensor:
    """Clip ``x`` (float, any shape) smoothly to ``(-limit, limit)``; same shape and dtype out."""
    if isinstance(limit, bool) or not isinstance(limit, int | float) or not limit > 0:
        raise ValueError(f"softclip: expected a positive number for limit, got {limit!r}")
    return SoftClip(float(limit))(x)
'''

LAYERS = '''\
"""``SoftClipLinear`` (a layer using the op) and ``SoftClipNet`` (an image classifier built from it)."""

from __future__ import annotations

from typing import Any

import labkit.nn as nn
from labkit.core.random import Generator
from labkit.core.tensor import Tensor

from __PKG__.ops import softclip

__all__ = ["SoftClipLinear", "SoftClipNet"]


class SoftClipLinear(nn.Module):
    """``softclip(x W^T + b, limit)``: ``x (..., in_features)`` -> ``(..., out_features)``."""

    def __init__(self, in_features: int, out_features: int, limit: float = 3.0, generator: Generator | None = None):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features, generator=generator)
        self.limit = float(limit)

    def forward(self, x: Tensor) -> Tensor:
        return softclip(self.linear(x), self.limit)


class SoftClipNet(nn.Module):
    """Flatten -> SoftClipLinear(hidden) -> Linear: ``x (B, C, H, W)`` -> logits ``(B, num_classes)``.

    Takes the sizes an image task reports (``in_channels``, ``num_classes``, ``image_size``).
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        image_size: Any,
        hidden: int = 64,
        limit: float = 3.0,
        generator: Generator | None = None,
    ) -> None:
        super().__init__()
        height, width = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        self.flatten = nn.Flatten()
        self.hidden = SoftClipLinear(in_channels * height * width, hidden, limit, generator=generator)
        self.out = nn.Linear(hidden, num_classes, generator=generator)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.hidden(self.flatten(x)))  # (B, C*H*W) -> (B, hidden) -> (B, num_classes)
'''

CHECKS = '''\
"""What ``labkit plugins check __NAME__`` runs: OpSpec rows for the op, float64 examples for the modules."""

from __future__ import annotations

from typing import Any

import numpy as np
from labkit.core.creation import randn
from labkit.core.random import Generator
from labkit.testing.opspec import OpSpec

__all__ = ["layer_example", "model_example", "op_specs", "softclip_reference"]


def softclip_reference(x: np.ndarray, limit: float = 3.0) -> np.ndarray:
    return limit * np.tanh(x / limit)


def _wide(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.uniform(-4.0, 4.0, size=shape)  # reaches the saturated ends


def op_specs() -> list[OpSpec]:
    """Forward vs the numpy reference (float64, float32), gradcheck and gradgradcheck, per row."""
    from __PKG__.ops import softclip

    return [
        OpSpec("softclip", softclip, softclip_reference, [(3, 4)], kwargs={"limit": 2.0}),
        OpSpec("softclip_saturated", softclip, softclip_reference, [(2, 3, 5)], kwargs={"limit": 0.5}, domain=_wide),
    ]


def layer_example(generator: Generator) -> tuple[Any, tuple[Any, ...]]:
    """``SoftClipLinear(4, 3)`` in float64 on ``x (2, 4)``."""
    from __PKG__.layers import SoftClipLinear

    x = randn(2, 4, generator=generator, dtype="float64").requires_grad_(True)
    return SoftClipLinear(4, 3, limit=1.5, generator=generator).double(), (x,)


def model_example(generator: Generator) -> tuple[Any, tuple[Any, ...]]:
    """``SoftClipNet`` (1 channel, 4x4 images, 3 classes) in float64 on ``x (2, 1, 4, 4)``."""
    from __PKG__.layers import SoftClipNet

    x = randn(2, 1, 4, 4, generator=generator, dtype="float64").requires_grad_(True)
    return SoftClipNet(1, 3, 4, hidden=5, generator=generator).double(), (x,)
'''

MODEL_YAML = """\
# SoftClipNet from __DIST__: labkit train model=__NAME__ (with an image task: the default digits).
# Sizes (in_channels, image_size, num_classes) come from the task.
_target_: __PKG__.layers.SoftClipNet
_partial_: true
hidden: 64
limit: 3.0
"""

EXPERIMENT_YAML = """\
# @package _global_
# SoftClipNet (__DIST__) on the 8x8 digits, one short epoch: labkit train experiment=__NAME___digits
defaults:
  - override /task: image_classification
  - override /model: __NAME__
  - override /data: digits
  - override /trainer: fast

model:
  hidden: 64
optim:
  lr: 0.003
"""

TEST = '''\
"""__DIST__: the conformance kit over everything the plugin registers, and softclip's closed form."""

from __future__ import annotations

import labkit
import numpy as np
import pytest
from labkit.plugins import check_plugin

from __PKG__.ops import softclip


def test_conformance_kit_passes(tmp_path):
    report = check_plugin("__NAME__", work_dir=tmp_path)  # gradchecks, configs, a 3-step run of each experiment
    assert report.ok, report.table()


def test_softclip_closed_form():
    x = labkit.tensor(np.array([0.0, 1.0, -50.0]), requires_grad=True)
    y = softclip(x, limit=2.0)
    np.testing.assert_allclose(y.numpy(), [0.0, 2.0 * np.tanh(0.5), -2.0], rtol=1e-12)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0, 1.0 - np.tanh(0.5) ** 2, 0.0], atol=1e-12)


def test_softclip_rejects_a_bad_limit():
    with pytest.raises(ValueError, match="limit"):
        softclip(labkit.tensor(np.ones(3)), limit=0.0)
'''

#: path template -> content template
FILES = {
    "pyproject.toml": PYPROJECT,
    "README.md": README,
    "__PKG__/__init__.py": INIT,
    "__PKG__/plugin.py": PLUGIN,
    "__PKG__/ops.py": OPS,
    "__PKG__/layers.py": LAYERS,
    "__PKG__/checks.py": CHECKS,
    "__PKG__/py.typed": "",
    "__PKG__/conf/model/__NAME__.yaml": MODEL_YAML,
    "__PKG__/conf/experiment/__NAME___digits.yaml": EXPERIMENT_YAML,
    "tests/test___NAME___plugin.py": TEST,
}


def names(name: str) -> dict[str, str]:
    """The placeholders for plugin ``name``: ``__NAME__``, ``__PKG__`` (labkit_NAME), ``__DIST__`` (labkit-NAME)."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name) or name == "labkit":
        raise ValueError(
            f"plugins new: expected a plugin name of lowercase letters, digits and underscores "
            f"starting with a letter (not 'labkit'), got {name!r}"
        )
    return {"__NAME__": name, "__PKG__": f"labkit_{name}", "__DIST__": f"labkit-{name.replace('_', '-')}"}


def _fill(template: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        template = template.replace(key, value)
    return template


def scaffold(name: str, directory: str | Path = ".") -> Path:
    """Write ``<directory>/labkit-NAME/`` (see the module docstring); returns its path.

    Raises:
        ValueError: ``name`` is not a valid plugin name.
        FileExistsError: the target folder exists already (nothing is overwritten).
    """
    values = names(name)
    root = Path(directory).expanduser().resolve() / values["__DIST__"]
    if root.exists():
        raise FileExistsError(f"plugins new: {root} exists already; choose another --dir or name")
    for path, template in FILES.items():
        target = root / _fill(path, values)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(_fill(template, values), encoding="utf-8")
    return root
