"""make_shapes writes reproducible labelled PNGs; export_image_folder round-trips any image dataset."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from labkit.data.vision import ArrayImageDataset, ImageFolder, draw_shape, export_image_folder, make_shapes
from labkit.data.vision.export import safe_folder_name


def digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*.png"))}


def test_same_seed_identical_files_other_seed_different(tmp_path: Path) -> None:
    a = make_shapes(tmp_path / "a", n_per_class=3, size=24, seed=7)
    b = make_shapes(tmp_path / "b", n_per_class=3, size=24, seed=7, num_threads=1)
    c = make_shapes(tmp_path / "c", n_per_class=3, size=24, seed=8)
    assert digest(a) == digest(b) and len(digest(a)) == 12
    assert set(digest(a)) == set(digest(c)) and all(digest(a)[k] != digest(c)[k] for k in digest(a))


def test_layout_sizes_modes_and_prefix_property(tmp_path: Path) -> None:
    root = make_shapes(tmp_path / "s", n_per_class=2, size=16, classes=("star", "hexagon", "cross"), seed=1, mode="L")
    assert sorted(p.name for p in root.iterdir()) == ["cross", "hexagon", "star"]
    image = Image.open(root / "star" / "00001.png")
    assert image.size == (16, 16) and image.mode == "L"
    bigger = make_shapes(tmp_path / "t", n_per_class=4, size=16, classes=("star",), seed=1, mode="L")
    assert (bigger / "star" / "00001.png").read_bytes() == (root / "star" / "00001.png").read_bytes()


def test_shapes_are_drawn_with_contrast_and_differ_by_class() -> None:
    circle = np.asarray(draw_shape("circle", 32, np.random.default_rng(0)), dtype=np.float32)
    square = np.asarray(draw_shape("square", 32, np.random.default_rng(0)), dtype=np.float32)
    corners = circle[[0, 0, -1, -1], [0, -1, 0, -1]]
    assert np.ptp(circle.reshape(-1, 3), axis=0).max() > 60  # a visible shape on the background
    np.testing.assert_array_equal(corners, np.broadcast_to(corners[0], corners.shape))  # the circle stays inside
    assert not np.array_equal(circle, square)  # same draws, different geometry


def test_make_shapes_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"classes expected distinct names from .*got \['circle', 'blob'\]"):
        make_shapes(tmp_path, 1, classes=("circle", "blob"))
    with pytest.raises(ValueError, match=r"n_per_class expected a positive int, got 0"):
        make_shapes(tmp_path, 0)
    with pytest.raises(ValueError, match=r"size expected an int >= 8, got 4"):
        make_shapes(tmp_path, 1, size=4)
    with pytest.raises(ValueError, match=r"mode expected 'RGB' or 'L', got 'P'"):
        make_shapes(tmp_path, 1, mode="P")


def test_generated_folder_is_learnable_layout(tmp_path: Path) -> None:
    root = make_shapes(tmp_path / "s", n_per_class=5, size=20, seed=0)
    ds = ImageFolder(root)
    assert ds.classes == ["circle", "square", "star", "triangle"] and len(ds) == 20
    assert ds.check_sizes() == (20, 20)


# ---- export ------------------------------------------------------------------------------------


def test_export_round_trip_keeps_pixels_and_label_order(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (7, 5, 6), dtype=np.uint8)
    labels = np.array([2, 0, 1, 2, 2, 0, 1])
    ds = ArrayImageDataset(images, labels, classes=["T-shirt/top", "Trouser", "Ankle boot"])
    folders = export_image_folder(ds, tmp_path / "out")
    assert folders == ["T-shirt_top", "Trouser", "Ankle boot"]
    back = ImageFolder(tmp_path / "out", mode="L", classes=folders)
    assert len(back) == 7
    by_index = {int(Path(p).stem): i for i, (p, _) in enumerate(back.samples)}
    for i in range(7):
        image, label = back[by_index[i]]
        np.testing.assert_array_equal(image[:, :, 0], images[i])
        assert label == labels[i]


def test_export_rgb_arrays_and_pil_images(tmp_path: Path) -> None:
    class Items:
        classes = ("a", "b")

        def __len__(self) -> int:
            return 2

        def __getitem__(self, i: int) -> tuple[object, int]:
            if i == 0:
                return np.full((3, 3, 3), 9, np.uint8), 1
            return Image.new("RGB", (3, 3), (1, 2, 3)), 0

    export_image_folder(Items(), tmp_path / "o")
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "o" / "b" / "000000.png"))[0, 0], [9, 9, 9])
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "o" / "a" / "000001.png"))[0, 0], [1, 2, 3])


def test_export_errors(tmp_path: Path) -> None:
    ds = ArrayImageDataset(np.zeros((2, 2, 2), np.uint8), np.array([0, 3]), classes=["x", "y"])
    with pytest.raises(ValueError, match=r"item 1 expected a label in \[0, 2\), got 3"):
        export_image_folder(ds, tmp_path / "a")
    with pytest.raises(FileExistsError, match=r"'.*a' is not empty; expected an empty or new folder"):
        export_image_folder(ds, tmp_path / "a")
    with pytest.raises(ValueError, match=r"map to clashing folder names \['a_b', 'a_b'\]"):
        export_image_folder(ds, tmp_path / "b", classes=["a/b", "a:b"])
    with pytest.raises(TypeError, match=r"expected classes=... or a dataset with a .classes attribute"):
        export_image_folder([(np.zeros((2, 2), np.uint8), 0)], tmp_path / "c")
    assert safe_folder_name("..") == "_.._" and safe_folder_name("a\\b") == "a_b"
