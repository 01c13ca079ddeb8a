"""Checkpoints (no pickle) and safetensors: round trips, hostile files, atomic writes."""

from __future__ import annotations

import json
import math
import os
import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import labkit
from labkit import io as lio
from labkit import nn
from labkit.io import checkpoint, safetensors

# ---- checkpoints: round trips -------------------------------------------------------------


def test_round_trip_of_a_nested_tree(tmp_path: Path) -> None:
    gen = labkit.Generator(11)
    gen.np.random(3)
    weight = labkit.randn(3, 4, requires_grad=True)
    obj = {
        "model": {"w": weight, "steps": labkit.tensor([1, 2], dtype="int64"), "mask": labkit.tensor([True, False])},
        0: [np.arange(6, dtype=np.int16).reshape(2, 3), np.float32(2.5), np.bool_(True)],
        "plain": (None, True, False, 2**100, -3, 1.5, math.inf, -math.inf, "text", [], {}),
        "generator": gen.get_state(),
        "arrays": {
            "f16": np.linspace(0, 1, 5, dtype=np.float16),
            "u64": np.array([2**63 + 1], dtype=np.uint64),
            "c128": np.array([1 + 2j]),
            "scalar0d": np.array(3.0),
            "empty": np.zeros((0, 4), np.float32),
            "transposed": np.arange(12.0).reshape(3, 4).T,
            "big_endian": np.arange(4, dtype=">i4"),
        },
    }
    path = tmp_path / "ckpt.lk"
    lio.save(obj, path)
    out = lio.load(path)

    assert list(out) == ["model", 0, "plain", "generator", "arrays"]
    w = out["model"]["w"]
    assert type(w) is labkit.Tensor and w.requires_grad and w.is_leaf and w.dtype == np.float32
    np.testing.assert_array_equal(w.numpy(), weight.numpy())
    assert out["model"]["steps"].dtype == np.int64 and not out["model"]["steps"].requires_grad
    assert out["model"]["mask"].tolist() == [True, False]
    array, scalar, flag = out[0]
    assert array.dtype == np.int16 and array.tolist() == [[0, 1, 2], [3, 4, 5]]
    assert type(scalar) is np.float32 and scalar == 2.5 and type(flag) is np.bool_
    assert out["plain"] == obj["plain"] and isinstance(out["plain"], tuple)
    assert out["generator"] == gen.get_state()
    restored = labkit.Generator(0)
    restored.set_state(out["generator"])
    np.testing.assert_array_equal(restored.np.random(4), gen.np.random(4))
    for name, value in obj["arrays"].items():
        loaded = out["arrays"][name]
        assert loaded.shape == value.shape and loaded.dtype == value.dtype.newbyteorder("=")
        np.testing.assert_array_equal(loaded, value)
    assert out["arrays"]["transposed"].flags.writeable  # fresh memory, valid after the file closed


def test_nan_survives_and_shared_arrays_are_stored_once(tmp_path: Path) -> None:
    model = nn.ModuleList([nn.Module(), nn.Module()])
    model[0].w = nn.Parameter(np.ones((256, 256), np.float32))
    model[1].w = model[0].w  # tied weights: two names, one array
    path = tmp_path / "tied.lk"
    lio.save({"state": model.state_dict(), "loss": math.nan}, path)
    assert os.path.getsize(path) < 256 * 256 * 4 * 1.5
    out = lio.load(path)
    assert math.isnan(out["loss"])
    assert out["state"]["0.w"].data is out["state"]["1.w"].data


def test_parameters_load_back_as_parameters(tmp_path: Path) -> None:
    p = nn.Parameter(np.arange(3.0))
    lio.save([p, nn.Parameter(np.ones(2), requires_grad=False)], tmp_path / "p.lk")
    q, frozen = lio.load(tmp_path / "p.lk")
    assert isinstance(q, nn.Parameter) and q.requires_grad and q.tolist() == [0.0, 1.0, 2.0]
    assert isinstance(frozen, nn.Parameter) and not frozen.requires_grad


def test_model_state_survives_a_checkpoint(tmp_path: Path, device: str) -> None:
    src = nn.Module()
    src.w = nn.Parameter(np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32))
    src.register_buffer("count", labkit.tensor(5))
    src.to(device)
    lio.save({"model": src.state_dict(), "epoch": 3}, tmp_path / "m.lk")  # GPU data goes to the host
    on_cpu = lio.load(tmp_path / "m.lk")
    assert on_cpu["model"]["w"].device == "cpu" and on_cpu["epoch"] == 3
    mapped = lio.load(tmp_path / "m.lk", map_location=device)
    assert mapped["model"]["w"].device == device
    dst = nn.Module()
    dst.w = nn.Parameter(np.zeros((4, 3), np.float32))
    dst.register_buffer("count", labkit.tensor(0))
    dst.load_state_dict(mapped["model"])
    np.testing.assert_array_equal(dst.w.numpy(), src.w.numpy())
    assert int(dst.count.item()) == 5


@pytest.mark.parametrize(
    ("obj", "error", "message"),
    [
        ({"a": {1, 2}}, TypeError, r"obj\['a'\]: cannot save a value of type set"),
        ([object()], TypeError, r"obj\[0\]: cannot save a value of type object"),
        ({"a": np.array([object()])}, TypeError, "expected an array of a numeric or bool dtype, got object"),
        ({(1, 2): 3}, TypeError, "expected dict keys of type str, int, float or bool, got \\(1, 2\\)"),
        ({"b": b"bytes"}, TypeError, "cannot save a value of type bytes"),
    ],
)
def test_unsaveable_values_raise_before_anything_is_written(
    tmp_path: Path, obj: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        lio.save(obj, tmp_path / "x.lk")
    assert os.listdir(tmp_path) == []


def test_cycles_are_refused(tmp_path: Path) -> None:
    loop: list[Any] = [1]
    loop.append(loop)
    with pytest.raises(ValueError, match=r"obj\[1\] contains itself"):
        lio.save(loop, tmp_path / "x.lk")


def test_bad_map_location(tmp_path: Path) -> None:
    lio.save([1], tmp_path / "x.lk")
    with pytest.raises(ValueError, match="no backend serves 'tpu'"):
        lio.load(tmp_path / "x.lk", map_location="tpu")


# ---- checkpoints: hostile and broken files ----------------------------------------------------


class _Evil:
    """Unpickling this would create a directory: proof that nothing is executed on load."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> Any:
        return (os.mkdir, (str(self.marker),))


def _parts(path: Path) -> tuple[dict[str, Any], bytes]:
    raw = path.read_bytes()
    _, _, _, n = struct.unpack("<8sIIQ", raw[:24])
    return json.loads(raw[24 : 24 + n]), raw[24 + n :]


def _rewrite(path: Path, header: dict[str, Any], data: bytes, version: int = 1) -> None:
    body = json.dumps(header).encode()
    path.write_bytes(struct.pack("<8sIIQ", b"LABKITCK", version, 0, len(body)) + body + data)


@pytest.fixture
def good(tmp_path: Path) -> Path:
    path = tmp_path / "good.lk"
    lio.save({"w": labkit.ones(4, 4), "a": np.arange(3)}, path)
    return path


def test_a_pickle_renamed_is_refused_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "model.lk"
    path.write_bytes(pickle.dumps({"w": _Evil(marker)}))
    with pytest.raises(lio.CheckpointError, match=f"load {path}: not a labkit checkpoint"):
        lio.load(path)
    assert not marker.exists()


def _set_dtype_object(h: dict[str, Any]) -> None:
    h["arrays"][0]["dtype"] = "O"


def _offset_beyond_eof(h: dict[str, Any]) -> None:
    h["arrays"][1]["offset"] = 10**6


def _huge_shape(h: dict[str, Any]) -> None:
    h["arrays"][0]["shape"] = [10**9, 10**9]


def _bool_offset(h: dict[str, Any]) -> None:
    h["arrays"][0]["offset"] = True


def _bad_index(h: dict[str, Any]) -> None:
    h["tree"]["items"][0][1]["array"] = 7


def _unknown_node(h: dict[str, Any]) -> None:
    h["tree"]["items"][0][1] = {"$type": "pickle", "data": "gASVAAAA"}


def _int_requires_grad(h: dict[str, Any]) -> None:
    h["tree"]["items"][1][1] = {"$type": "tensor", "array": 1, "requires_grad": True}


def _extra_key(h: dict[str, Any]) -> None:
    h["code"] = "import os"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (_set_dtype_object, "array 0: dtype 'O' is not allowed"),
        (_offset_beyond_eof, r"array 1: bytes \[1000000, 1000024\) lie beyond the end of the data"),
        (_huge_shape, "array 0: nbytes 64 does not match shape"),
        (_bool_offset, "array 0: expected non-negative int offset and nbytes"),
        (_bad_index, "array index 7 is out of range"),
        (_unknown_node, "unknown or malformed node"),
        (_int_requires_grad, "a tensor cannot hold int64 data with requires_grad=True"),
        (_extra_key, "expected a labkit-checkpoint header"),
    ],
)
def test_crafted_headers_are_refused(good: Path, mutate: Any, message: str) -> None:
    header, data = _parts(good)
    mutate(header)
    _rewrite(good, header, data)
    with pytest.raises(lio.CheckpointError, match=message) as info:
        lio.load(good)
    assert str(good) in str(info.value)


def test_truncated_bad_version_and_broken_json_are_refused(good: Path) -> None:
    raw = good.read_bytes()
    header, data = _parts(good)
    for i, (content, message) in enumerate(
        [
            (raw[:-10], "expected .* bytes from the header, the file has"),
            (raw[:30], "header length .* exceeds the file"),
            (raw[:5], "not a labkit checkpoint"),
            (b"", "not a labkit checkpoint"),
            (raw[:24] + b"{not json" + raw[33:], "the header is not valid JSON"),
        ]
    ):
        path = good.with_name(f"broken{i}.lk")
        path.write_bytes(content)
        with pytest.raises(lio.CheckpointError, match=message):
            lio.load(path)
    _rewrite(good, header, data, version=99)
    with pytest.raises(lio.CheckpointError, match="unsupported format version 99"):
        lio.load(good)
    body = json.dumps(header).replace('"a"', "NaN", 1).encode()
    good.write_bytes(struct.pack("<8sIIQ", b"LABKITCK", 1, 0, len(body)) + body + data)
    with pytest.raises(lio.CheckpointError, match="non-standard JSON constant NaN"):
        lio.load(good)


# ---- atomic writes -----------------------------------------------------------------------------


def _crash_halfway(module: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def write_half_then_fail(f: Any, array: np.ndarray) -> None:
        f.write(array.reshape(-1).view(np.uint8)[: array.nbytes // 2].tobytes())
        raise OSError("simulated crash: disk full")

    monkeypatch.setattr(module, "write_array", write_half_then_fail)


def test_a_crash_mid_write_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "last.lk"
    lio.save({"w": labkit.ones(64, 64), "step": 1}, path)
    before = path.read_bytes()
    _crash_halfway(checkpoint, monkeypatch)
    with pytest.raises(OSError, match="simulated crash"):
        lio.save({"w": labkit.zeros(64, 64), "step": 2}, path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["last.lk"]
    assert lio.load(path)["step"] == 1


def test_a_failed_rename_leaves_no_temporary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(src: str, dst: str) -> None:
        raise PermissionError("simulated: target is locked")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(PermissionError):
        lio.save([1, 2], tmp_path / "x.lk")
    assert os.listdir(tmp_path) == []


def test_saving_into_a_missing_directory_names_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        lio.save([1], tmp_path / "nope" / "x.lk")


# ---- safetensors ------------------------------------------------------------------------------


def _safetensors_bytes(header: dict[str, Any], data: bytes, pad: int = 0) -> bytes:
    body = json.dumps(header).encode() + b" " * pad
    return struct.pack("<Q", len(body)) + body + data


def test_load_a_file_written_byte_by_byte(tmp_path: Path) -> None:
    f32 = struct.pack("<4f", 1.0, 2.0, 3.0, 4.0)
    i64 = struct.pack("<2q", -5, 2**40)
    bf16 = struct.pack("<3H", 0x3F80, 0xC020, 0x4049)  # 1.0, -2.5, 3.140625
    f16 = struct.pack("<e", 0.5)
    u8 = bytes([0, 255])
    boolean = bytes([1, 0, 1])
    header = {
        "__metadata__": {"format": "pt", "note": "hand made"},
        "weight": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
        "ids": {"dtype": "I64", "shape": [2], "data_offsets": [16, 32]},
        "half": {"dtype": "BF16", "shape": [3], "data_offsets": [32, 38]},
        "h": {"dtype": "F16", "shape": [], "data_offsets": [38, 40]},
        "bytes": {"dtype": "U8", "shape": [2], "data_offsets": [40, 42]},
        "mask": {"dtype": "BOOL", "shape": [3], "data_offsets": [42, 45]},
        "empty": {"dtype": "F64", "shape": [0, 3], "data_offsets": [45, 45]},
    }
    path = tmp_path / "hand.safetensors"
    path.write_bytes(_safetensors_bytes(header, f32 + i64 + bf16 + f16 + u8 + boolean, pad=5))
    out = lio.load_safetensors(path)
    assert list(out) == ["weight", "ids", "half", "h", "bytes", "mask", "empty"]
    assert out["weight"].tolist() == [[1.0, 2.0], [3.0, 4.0]] and out["weight"].dtype == np.float32
    assert out["ids"].tolist() == [-5, 2**40] and out["ids"].dtype == np.int64
    assert out["half"].dtype == np.float32 and out["half"].tolist() == [1.0, -2.5, 3.140625]
    assert out["h"].shape == () and out["h"].dtype == np.float16 and float(out["h"].item()) == 0.5
    assert out["bytes"].tolist() == [0, 255] and out["mask"].tolist() == [True, False, True]
    assert out["empty"].shape == (0, 3) and out["empty"].dtype == np.float64
    assert lio.safetensors_metadata(path) == {"format": "pt", "note": "hand made"}


def test_save_follows_the_spec_byte_by_byte(tmp_path: Path) -> None:
    path = tmp_path / "out.safetensors"
    lio.save_safetensors(
        {
            "b": labkit.tensor([True, False]),
            "a": np.array([1.5, -2.0], np.float64),
            "c": labkit.tensor([7], dtype="int32"),
        },
        path,
        metadata={"epoch": "3"},
    )
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    assert n % 8 == 0 and raw[8:9] == b"{"
    header = json.loads(raw[8 : 8 + n])
    assert header["__metadata__"] == {"epoch": "3"}
    assert header["a"] == {"dtype": "F64", "shape": [2], "data_offsets": [0, 16]}  # widest first
    assert header["c"] == {"dtype": "I32", "shape": [1], "data_offsets": [16, 20]}
    assert header["b"] == {"dtype": "BOOL", "shape": [2], "data_offsets": [20, 22]}
    assert raw[8 + n :] == struct.pack("<2d", 1.5, -2.0) + struct.pack("<i", 7) + bytes([1, 0])
    loaded = lio.load_safetensors(path)
    assert loaded["a"].tolist() == [1.5, -2.0] and loaded["c"].dtype == np.int32


@pytest.mark.parametrize(
    ("header", "data", "message"),
    [
        ({"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 4, r"outside the buffer of 4 bytes"),
        ({"x": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8, "8 bytes do not hold shape"),
        ({"x": {"dtype": "F8_E4M3", "shape": [1], "data_offsets": [0, 1]}}, b"\0", "unsupported dtype 'F8_E4M3'"),
        ({"x": {"dtype": "U8", "shape": [2], "data_offsets": [1, 3]}}, b"\0" * 3, "starts at 1, expected 0"),
        ({"x": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}}, b"\0" * 3, "end at byte 2 of a 3-byte buffer"),
        (
            {
                "x": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]},
                "y": {"dtype": "U8", "shape": [2], "data_offsets": [1, 3]},
            },
            b"\0" * 3,
            "starts at 1, expected 2",
        ),
        ({"x": {"dtype": "U8", "shape": [-1], "data_offsets": [0, 0]}}, b"", "expected a shape of non-negative ints"),
        ({"x": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1], "extra": 1}}, b"\0", "expected keys"),
        ({"__metadata__": {"epoch": 3}}, b"", "__metadata__ must map str to str"),
    ],
)
def test_malformed_safetensors_are_refused(tmp_path: Path, header: dict[str, Any], data: bytes, message: str) -> None:
    path = tmp_path / "bad.safetensors"
    path.write_bytes(_safetensors_bytes(header, data))
    with pytest.raises(lio.CheckpointError, match=message) as info:
        lio.load_safetensors(path)
    assert str(path) in str(info.value)


def test_broken_safetensors_framing_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.safetensors"
    for content, message in [
        (b"\x01\x02", "too short for a header length"),
        (struct.pack("<Q", 1000) + b"{}", "header length 1000 exceeds the file"),
        (struct.pack("<Q", 2) + b"[]", "expected the JSON header to start with '{'"),
        (struct.pack("<Q", 3) + b"{x}", "the header is not valid JSON"),
        (pickle.dumps({"a": 1}), "exceeds the file"),
    ]:
        path.write_bytes(content)
        with pytest.raises(lio.CheckpointError, match=message):
            lio.load_safetensors(path)


def test_safetensors_round_trip_and_errors(tmp_path: Path, device: str) -> None:
    tensors = {
        name: labkit.tensor(np.arange(6).reshape(2, 3).astype(dt), device=device)
        for name, dt in [("f64", "float64"), ("f32", "float32"), ("f16", "float16"), ("i8", "int8"), ("u8", "uint8")]
    }
    path = tmp_path / "rt.safetensors"
    lio.save_safetensors(tensors, path)
    out = lio.load_safetensors(path, device=device)
    assert sorted(out) == sorted(tensors)
    for name, t in tensors.items():
        assert out[name].dtype == t.dtype and out[name].device == device
        np.testing.assert_array_equal(out[name].numpy(), t.numpy())
    with pytest.raises(TypeError, match="metadata must map str to str"):
        lio.save_safetensors(tensors, path, metadata={"epoch": 3})
    with pytest.raises(ValueError, match="other than __metadata__"):
        lio.save_safetensors({"__metadata__": labkit.ones(1)}, path)
    with pytest.raises(TypeError, match="expected a dtype in"):
        lio.save_safetensors({"c": np.array([1j])}, path)


def test_safetensors_save_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "w.safetensors"
    lio.save_safetensors({"w": labkit.ones(32, 32)}, path)
    before = path.read_bytes()
    _crash_halfway(safetensors, monkeypatch)
    with pytest.raises(OSError, match="simulated crash"):
        lio.save_safetensors({"w": labkit.zeros(32, 32)}, path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["w.safetensors"]


def test_against_the_safetensors_package(tmp_path: Path) -> None:
    st = pytest.importorskip("safetensors.numpy")
    theirs = {"w": np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32), "i": np.arange(4)}
    st.save_file(theirs, str(tmp_path / "theirs.safetensors"), metadata={"k": "v"})
    loaded = lio.load_safetensors(tmp_path / "theirs.safetensors")
    for name, array in theirs.items():
        np.testing.assert_array_equal(loaded[name].numpy(), array)
    lio.save_safetensors(theirs, tmp_path / "ours.safetensors", metadata={"k": "v"})
    back = st.load_file(str(tmp_path / "ours.safetensors"))
    for name, array in theirs.items():
        np.testing.assert_array_equal(back[name], array)
