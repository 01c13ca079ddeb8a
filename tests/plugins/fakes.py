"""Fake plugin distributions for the plugin tests: a folder with ``NAME-0.1.dist-info`` and the package.

``importlib.metadata`` finds a ``*.dist-info`` folder (``METADATA`` + ``entry_points.txt``) on any
``sys.path`` entry, so a plugin "installs" by putting its folder on ``sys.path`` (or PYTHONPATH in a
subprocess): no pip, nothing downloaded. Each fake package has a unique name (``fake_*``).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

# ---- a plugin that conforms: an op, a Function, two modules, a task, configs, an experiment ------------

GOOD_OPS = """
from labkit.core.function import Function


class Cube(Function):
    def forward(self, x):
        self.save_for_backward(x)
        return x * x * x

    def backward(self, gy):
        (x,) = self.saved_tensors
        return gy * x * x * 3.0


def cube(x):
    return Cube()(x)
"""

GOOD_CHECKS = """
import numpy as np

from labkit.core.creation import randn
from labkit.testing.opspec import OpSpec


def op_specs():
    from fake_good.ops import cube

    return [OpSpec("cube", cube, lambda x: x**3, [(3, 4)]), OpSpec("cube_3d", cube, lambda x: x**3, [(2, 2, 3)])]


def layer_example(generator):
    from fake_good.models import CubeLayer

    x = randn(2, 3, generator=generator, dtype="float64").requires_grad_(True)
    return CubeLayer(3, generator=generator).double(), (x,)


def scaled_example(generator):
    from fake_good.models import ScaledCube

    x = randn(2, 3, generator=generator, dtype="float64")  # not differentiable: double backward on the parameters
    return ScaledCube(3, generator=generator).double(), (x,)
"""

GOOD_MODELS = """
import labkit
import labkit.nn as nn
import labkit.functional as F

from fake_good.ops import cube


class CubeLayer(nn.Module):
    def __init__(self, size, generator=None):
        super().__init__()
        self.linear = nn.Linear(size, size, generator=generator)

    def forward(self, x):
        return cube(self.linear(x))


class ScaledCube(nn.Module):
    def __init__(self, size, generator=None):
        super().__init__()
        self.scale = nn.Parameter(labkit.randn(size, generator=generator))

    def forward(self, x):
        return cube(x * self.scale)


class CubeNet(nn.Module):
    def __init__(self, in_features, num_classes, hidden=8, generator=None):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden, generator=generator)
        self.fc2 = nn.Linear(hidden, num_classes, generator=generator)

    def forward(self, x):
        return self.fc2(F.tanh(cube(self.fc1(x)) * 0.1))
"""

GOOD_PLUGIN = """
def register(registry):
    registry.op("cube", "fake_good.ops:cube", specs="fake_good.checks:op_specs")
    registry.function("cube", "fake_good.ops:Cube")
    registry.module("CubeLayer", "fake_good.models:CubeLayer", example="fake_good.checks:layer_example")
    registry.module("ScaledCube", "fake_good.models:ScaledCube", example="fake_good.checks:scaled_example")
    registry.task("Toy", "fake_good.task:ToyTask")
"""

GOOD_FILES = {
    "fake_good/__init__.py": "",
    "fake_good/plugin.py": GOOD_PLUGIN,
    "fake_good/ops.py": GOOD_OPS,
    "fake_good/checks.py": GOOD_CHECKS,
    "fake_good/models.py": GOOD_MODELS,
    # the runner tests' toy task (two Gaussian classes), re-exported under the plugin's package
    "fake_good/task.py": "from tests.runner.toy import ToyTask  # noqa: F401\n",
    "fake_good/conf/model/cubenet.yaml": "_target_: fake_good.models.CubeNet\n_partial_: true\nhidden: 8\n",
    "fake_good/conf/task/fake_toy.yaml": "_target_: fake_good.task.ToyTask\n_partial_: true\npoison_at: null\n",
    "fake_good/conf/data/fake_toy.yaml": "name: toy\nbatch_size: 16\nn: 96\n",
    "fake_good/conf/experiment/fake_toy.yaml": textwrap.dedent(
        """\
        # @package _global_
        defaults:
          - override /task: fake_toy
          - override /model: cubenet
          - override /data: fake_toy
        """
    ),
}

# ---- plugins that do not conform ------------------------------------------------------------------------

BADGRAD_FILES = {
    "fake_badgrad/__init__.py": "",
    "fake_badgrad/plugin.py": """
from labkit.testing.opspec import OpSpec


def _specs():
    from fake_badgrad.ops import cube

    return [OpSpec("cube", cube, lambda x: x**3, [(3, 4)])]


def register(registry):
    registry.op("cube", "fake_badgrad.ops:cube", specs=_specs)
    registry.op("nospecs", "fake_badgrad.ops:cube")
""",
    # the backward says 2 x^2 where it should say 3 x^2
    "fake_badgrad/ops.py": GOOD_OPS.replace("gy * x * x * 3.0", "gy * x * x * 2.0"),
}

# first derivative right, second wrong: CubeGrad's own backward says 3 x where it should say 6 x
BADHESS_OPS = """
from labkit.core.function import Function


class CubeGrad(Function):
    def forward(self, x, gy):
        self.save_for_backward(x, gy)
        return 3.0 * x * x * gy

    def backward(self, g):
        x, gy = self.saved_tensors
        return g * gy * x * 3.0, g * x * x * 3.0


class Cube(Function):
    def forward(self, x):
        self.save_for_backward(x)
        return x * x * x

    def backward(self, gy):
        (x,) = self.saved_tensors
        return CubeGrad()(x, gy)


def cube(x):
    return Cube()(x)
"""

BADHESS_FILES = {
    "fake_badhess/__init__.py": "",
    "fake_badhess/ops.py": BADHESS_OPS,
    "fake_badhess/models.py": GOOD_MODELS.replace("fake_good", "fake_badhess"),
    "fake_badhess/checks.py": GOOD_CHECKS.replace("fake_good", "fake_badhess"),
    "fake_badhess/plugin.py": """
def register(registry):
    registry.module("ScaledCube", "fake_badhess.models:ScaledCube", example="fake_badhess.checks:scaled_example")
    registry.module("NoExample", "fake_badhess.models:CubeNet")
""",
}

BADCONF_FILES = {
    "fake_badconf/__init__.py": "",
    "fake_badconf/layers.py": "class Present:\n    pass\n",
    "fake_badconf/plugin.py": "def register(registry):\n    pass\n",
    "fake_badconf/conf/model/broken.yaml": "_target_: fake_badconf.layers.Missing\n_partial_: true\n",
    "fake_badconf/conf/model/outside.yaml": "_target_: os.system\n_partial_: true\n",
}

# an experiment whose model cannot be built (it borrows goodfake's task and model configs)
BADEXP_FILES = {
    "fake_badexp/__init__.py": "",
    "fake_badexp/plugin.py": "def register(registry):\n    pass\n",
    "fake_badexp/conf/experiment/fake_toy_broken.yaml": textwrap.dedent(
        """\
        # @package _global_
        defaults:
          - override /task: fake_toy
          - override /model: cubenet
          - override /data: fake_toy
        model:
          hidden: -1
        """
    ),
}

BOOM_FILES = {
    "fake_boom/__init__.py": "",
    "fake_boom/plugin.py": "raise RuntimeError('fake_boom exploded at import')\n",
    "fake_boom/conf/model/boom_model.yaml": "_target_: fake_boom.models.Nothing\n_partial_: true\n",
}

# kernels for the built-in tanh Function (numpy arrays); the kit needs the specs that run it
KERNEL_PLUGIN = """
import numpy as np

import labkit.functional as F
from labkit.testing.opspec import OpSpec

CALLS = [0]


def tanh_forward(fn_self, x):
    CALLS[0] += 1
    y = np.tanh(x) * SCALE
    fn_self.save_for_backward(y)
    return y


def _specs():
    return [OpSpec("tanh", SPEC_FN, np.tanh, [(3, 5)])]


def register(registry):
    registry.kernel("tanh", "numpy", tanh_forward, specs=_specs)
"""


def kernel_files(package: str, scale: str = "1.0", spec_fn: str = "F.tanh") -> dict[str, str]:
    text = KERNEL_PLUGIN.replace("SCALE", scale).replace("SPEC_FN", spec_fn)
    return {f"{package}/__init__.py": "", f"{package}/plugin.py": text}


def write_dist(
    root: Path, dist: str, entry_points: dict[str, str], files: dict[str, str], version: str = "0.1"
) -> Path:
    """Write ``root/<dist>-<version>.dist-info`` (METADATA, entry_points.txt) and ``files`` under ``root``."""
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = "".join(f"{name} = {module}\n" for name, module in entry_points.items())
    (info / "entry_points.txt").write_text(f"[labkit.plugins]\n{lines}")
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
    return root
