"""ImageFolder: layout, explicit mode conversion of every kind of file, bad files, sizes, batching."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import labkit
from labkit.data.loader import DataLoader
from labkit.data.vision import ImageFolder, ImageReadError, convert_mode, load_image
from labkit.data.vision import transforms as T
from labkit.data.vision.builtin import _package_file


def rgb(value: tuple[int, int, int], size: tuple[int, int] = (4, 4)) -> Image.Image:
    return Image.new("RGB", size, value)


def write_tree(root: Path, files: dict[str, Image.Image | bytes]) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            content.save(path)
    return root


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return write_tree(
        tmp_path / "data",
        {
            "dog/b.png": rgb((0, 0, 200)),
            "dog/a.jpg": rgb((0, 200, 0)),
            "cat/1.bmp": rgb((200, 0, 0)),
            "cat/2.webp": rgb((10, 20, 30)),
            "cat/notes.txt": b"not an image and not an image extension",
            "cat/.hidden.png": rgb((1, 1, 1)),
            ".cache/x.png": rgb((1, 1, 1)),
        },
    )


def test_layout_classes_samples_and_default_items(tree: Path) -> None:
    ds = ImageFolder(tree)
    assert ds.classes == ["cat", "dog"] and ds.class_to_idx == {"cat": 0, "dog": 1}
    assert [Path(p).name for p, _ in ds.samples] == ["1.bmp", "2.webp", "a.jpg", "b.png"]
    assert ds.targets == [0, 0, 1, 1] and len(ds) == 4
    image, label = ds[0]
    assert isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.shape == (4, 4, 3)
    np.testing.assert_array_equal(image[0, 0], [200, 0, 0])
    assert label == 0 and ds[-1][1] == 1
    with pytest.raises(IndexError, match="index 4 out of range for 4 images"):
        ds[4]


def test_explicit_classes_order_and_extensions(tree: Path) -> None:
    ds = ImageFolder(tree, classes=["dog", "cat"], extensions=["png", ".BMP"])
    assert ds.class_to_idx == {"dog": 0, "cat": 1}
    assert [(Path(p).name, y) for p, y in ds.samples] == [("b.png", 0), ("1.bmp", 1)]
    with pytest.raises(ValueError, match=r"classes \['bird'\] have no folder in .*folders there: \['cat', 'dog'\]"):
        ImageFolder(tree, classes=["cat", "bird"])


def test_transform_and_target_transform(tree: Path) -> None:
    ds = ImageFolder(tree, transform=T.Compose([T.Resize(2), T.ToArray()]), target_transform=lambda y: y * 10)
    x, y = ds[3]
    assert x.shape == (3, 2, 2) and x.dtype == np.float32 and y == 10
    np.testing.assert_allclose(x[2], 200 / 255, atol=1e-6)


# ---- explicit mode conversion ----------------------------------------------------------------


def test_rgba_is_composited_on_white_or_alpha_dropped(tmp_path: Path) -> None:
    Image.new("RGBA", (2, 2), (255, 0, 0, 128)).save(tmp_path / "half.png")
    on_white = np.asarray(load_image(tmp_path / "half.png", "RGB"))[0, 0]
    np.testing.assert_allclose(on_white, [255, 127, 127], atol=1)
    dropped = np.asarray(load_image(tmp_path / "half.png", "RGB", background=None))[0, 0]
    np.testing.assert_array_equal(dropped, [255, 0, 0])
    on_black = np.asarray(load_image(tmp_path / "half.png", "RGB", background=(0, 0, 0)))[0, 0]
    np.testing.assert_allclose(on_black, [128, 0, 0], atol=1)
    np.testing.assert_array_equal(np.asarray(load_image(tmp_path / "half.png", "RGBA"))[0, 0], [255, 0, 0, 128])
    grey = np.asarray(load_image(tmp_path / "half.png", "L"))[0, 0]
    assert abs(int(grey) - round(255 * 0.299 + 127 * 0.587 + 127 * 0.114)) <= 1


def test_palette_grey_bilevel_and_la(tmp_path: Path) -> None:
    palette = Image.new("P", (2, 2), 1)
    palette.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    palette.save(tmp_path / "p.png")
    np.testing.assert_array_equal(np.asarray(load_image(tmp_path / "p.png"))[0, 0], [10, 200, 30])
    transparent = palette.copy()
    transparent.info["transparency"] = 1  # colour index 1 is fully transparent
    transparent.save(tmp_path / "pt.png", transparency=1)
    np.testing.assert_array_equal(np.asarray(load_image(tmp_path / "pt.png"))[0, 0], [255, 255, 255])
    Image.new("L", (2, 2), 77).save(tmp_path / "l.png")
    np.testing.assert_array_equal(np.asarray(load_image(tmp_path / "l.png"))[0, 0], [77, 77, 77])
    Image.new("1", (2, 2), 1).save(tmp_path / "b.png")
    np.testing.assert_array_equal(np.asarray(load_image(tmp_path / "b.png", "L"))[0, 0], 255)
    Image.new("LA", (2, 2), (0, 0)).save(tmp_path / "la.png")  # black, fully transparent
    np.testing.assert_array_equal(np.asarray(load_image(tmp_path / "la.png", "L"))[0, 0], 255)


def test_sixteen_bit_grey_is_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.array([[0, 256], [32768, 65535]], np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    np.testing.assert_array_equal(np.asarray(load_image(tmp_path / "deep.png", "L")), [[0, 1], [128, 255]])
    np.testing.assert_array_equal(np.asarray(load_image(tmp_path / "deep.png", "RGB"))[1, 1], [255, 255, 255])
    floats = Image.fromarray(np.array([[-3.0, 100.4], [254.6, 999.0]], np.float32))
    np.testing.assert_array_equal(np.asarray(convert_mode(floats, "L")), [[0, 100], [255, 255]])


def test_cmyk_jpeg_and_real_jpeg(tmp_path: Path) -> None:
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(tmp_path / "c.jpg")
    red = np.asarray(load_image(tmp_path / "c.jpg"))[4, 4]
    assert red[0] > 200 and red[1] < 60 and red[2] < 60
    china = _package_file("sklearn", "datasets/images/china.jpg")
    image = load_image(china, "RGB")
    assert image.size == (640, 427) and image.mode == "RGB"


@pytest.mark.parametrize(("mode", "channels"), [("RGB", 3), ("L", 1), ("RGBA", 4)])
def test_folder_modes_give_hwc_arrays(tree: Path, mode: str, channels: int) -> None:
    image, _ = ImageFolder(tree, mode=mode)[0]
    assert image.shape == (4, 4, channels) and image.dtype == np.uint8


def test_bad_arguments(tree: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"ImageFolder: mode expected one of \('RGB', 'L', 'RGBA'\), got 'CMYK'"):
        ImageFolder(tree, mode="CMYK")
    with pytest.raises(ValueError, match=r"ImageFolder: on_error expected one of \('raise', 'skip'\), got 'ignore'"):
        ImageFolder(tree, on_error="ignore")
    with pytest.raises(FileNotFoundError, match=r"ImageFolder: root '.*nowhere' is not a directory"):
        ImageFolder(tmp_path / "nowhere")


# ---- bad files and bad layouts -----------------------------------------------------------------


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    root = write_tree(tmp_path / "broken", {"a/good.png": rgb((5, 5, 5)), "b/good.png": rgb((6, 6, 6))})
    rgb((1, 2, 3), (64, 64)).save(root / "a" / "whole.png")
    data = (root / "a" / "whole.png").read_bytes()
    (root / "a" / "truncated.png").write_bytes(data[: len(data) // 2])
    (root / "b" / "text.png").write_text("hello, I am not a PNG\n")
    (root / "b" / "empty.jpg").write_bytes(b"")
    (root / "a" / "whole.png").unlink()
    return root


def test_unreadable_files_raise_naming_the_file(broken: Path) -> None:
    ds = ImageFolder(broken)
    names = [Path(p).name for p, _ in ds.samples]
    with pytest.raises(ImageReadError, match=r"cannot read image file '.*a/truncated.png': expected an image"):
        ds[names.index("truncated.png")]
    with pytest.raises(ImageReadError, match=r"'.*b/text.png'.*UnidentifiedImageError"):
        ds[names.index("text.png") + 0]
    assert isinstance(ImageReadError("x"), ValueError)


def test_skip_counts_reports_and_drops_unreadable_files(broken: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="labkit.data.vision.folder"):
        ds = ImageFolder(broken, on_error="skip")
    assert sorted(Path(p).name for p, _ in ds.samples) == ["good.png", "good.png"]
    assert sorted(Path(p).name for p, _ in ds.skipped) == ["empty.jpg", "text.png", "truncated.png"]
    assert all("cannot read image file" in reason for _, reason in ds.skipped)
    assert "skipped 3 unreadable file(s)" in caplog.text and "truncated.png" in caplog.text
    assert [ds[i][1] for i in range(len(ds))] == [0, 1]


def test_empty_class_folder_and_no_class_folders(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "r", {"a/x.png": rgb((0, 0, 0)), "b/readme.txt": b"hi"})
    with pytest.raises(ValueError, match=r"class folder '.*r/b' is empty: expected files with extensions"):
        ImageFolder(root)
    flat = write_tree(tmp_path / "flat", {"x.png": rgb((0, 0, 0))})
    with pytest.raises(ValueError, match=r"expected one sub-folder per class in '.*flat', got no sub-folders"):
        ImageFolder(flat)
    bad = write_tree(tmp_path / "bad", {"a/x.png": b"junk", "b/y.png": b"junk"})
    with pytest.raises(ValueError, match=r"every file under '.*bad' was unreadable \(2 skipped\)"):
        ImageFolder(bad, on_error="skip")


# ---- sizes and batching -----------------------------------------------------------------------


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    return write_tree(
        tmp_path / "mixed",
        {
            "a/0.png": rgb((10, 0, 0), (6, 4)),
            "a/1.png": rgb((20, 0, 0), (6, 4)),
            "b/0.png": rgb((30, 0, 0), (8, 8)),
            "b/1.png": rgb((40, 0, 0), (6, 4)),
        },
    )


def test_check_sizes(mixed: Path, tree: Path) -> None:
    assert ImageFolder(tree).check_sizes() == (4, 4)
    with pytest.raises(ValueError, match=r"expected one image size to stack batches, got 2: 4x6: 3 file\(s\).*8x8: 1"):
        ImageFolder(mixed).check_sizes()


def test_collate_of_mixed_sizes_raises_and_resize_fixes_it(mixed: Path) -> None:
    with pytest.raises(ValueError, match=r"same shape"):
        list(DataLoader(ImageFolder(mixed), batch_size=4))
    ds = ImageFolder(mixed, transform=T.Compose([T.Resize(4), T.CenterCrop(4)]))
    images, labels = next(iter(DataLoader(ds, batch_size=4)))
    assert images.shape == (4, 4, 4, 3) and images.dtype == np.uint8
    assert labels.numpy().tolist() == [0, 0, 1, 1]


@pytest.mark.parametrize("workers", [0, 2])
def test_augmented_batches_are_reproducible_through_the_loader(mixed: Path, workers: int) -> None:
    aug = T.Compose([T.Resize(6), T.RandomCrop(4), T.RandomHorizontalFlip(), T.ToArray()])

    def epoch(seed: int) -> list[np.ndarray]:
        loader = DataLoader(
            ImageFolder(mixed, transform=aug), batch_size=2, shuffle=True, seed=seed, num_workers=workers
        )
        return [x.numpy() for x, _ in loader]

    first = epoch(1)
    assert first[0].shape == (2, 3, 4, 4) and first[0].dtype == np.float32
    for a, b in zip(first, epoch(1)):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(first, epoch(2)))
    serial = DataLoader(ImageFolder(mixed, transform=aug), batch_size=2, shuffle=True, seed=1)
    for a, (b, _) in zip(first, serial):  # same batches whatever the number of workers
        np.testing.assert_array_equal(a, b.numpy())


def test_repr_mentions_counts(tree: Path) -> None:
    text = repr(ImageFolder(tree))
    assert "4 images" in text and "2 classes" in text and isinstance(labkit.Generator(0), labkit.Generator)


def test_plain_callables_get_pil_images_labkit_transforms_get_arrays(tree: Path) -> None:
    seen: list[type] = []

    def custom(image: object) -> object:
        seen.append(type(image))
        return image

    image, _ = ImageFolder(tree, transform=custom)[0]
    assert issubclass(seen[0], Image.Image) and isinstance(image, np.ndarray) and image.shape == (4, 4, 3)
    probe = T.Compose([T.Resize(2), T.Compose([custom])])
    ImageFolder(tree, transform=probe)[0]
    assert seen[-1] is np.ndarray  # after the deterministic prefix, the rest runs on the HWC array


def test_duplicate_explicit_classes_are_rejected(tree: Path) -> None:
    with pytest.raises(ValueError, match=r"classes expected distinct folder names, got \['cat', 'cat'\]"):
        ImageFolder(tree, classes=["cat", "cat"])
