"""Vision transforms: hand-computed geometry on small images, determinism per seed, errors."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image

import labkit
from labkit.data.vision import transforms as T


def grid(h: int = 5, w: int = 6, c: int = 3) -> np.ndarray:
    """Pixel (i, j, k) holds i * 40 + j * 5 + k (distinct for small images), so positions can be read back."""
    i, j, k = np.meshgrid(np.arange(h), np.arange(w), np.arange(c), indexing="ij")
    return (i * 40 + j * 5 + k).astype(np.uint8)


# ---- conversions and types -------------------------------------------------------------


def test_pil_in_pil_out_array_in_array_out() -> None:
    a = grid()
    for t in (T.Resize(3), T.CenterCrop(3), T.RandomCrop(3, generator=labkit.Generator(0)), T.Grayscale(3)):
        out_array, out_pil = t(a), t(Image.fromarray(a))
        assert isinstance(out_array, np.ndarray) and out_array.dtype == np.uint8 and out_array.ndim == 3
        assert isinstance(out_pil, Image.Image)


def test_grey_arrays_are_hwc_with_one_channel() -> None:
    a = grid(c=1)[:, :, 0]  # (H, W)
    assert T.CenterCrop(2)(a).shape == (2, 2, 1)
    assert T.ToArray()(a).shape == (1, 5, 6)


def test_non_uint8_array_is_rejected_naming_the_transform() -> None:
    with pytest.raises(TypeError, match=r"CenterCrop: expected a uint8 image array, got dtype float32"):
        T.CenterCrop(2)(np.zeros((4, 4, 3), np.float32))


# ---- geometric -------------------------------------------------------------------------


def test_center_crop_matches_hand_computation() -> None:
    a = grid(5, 6)
    # top = round((5 - 3) / 2) = 1, left = round((6 - 3) / 2) = round(1.5) = 2
    np.testing.assert_array_equal(T.CenterCrop(3)(a), a[1:4, 2:5])
    np.testing.assert_array_equal(T.CenterCrop((2, 4))(a), a[2:4, 1:5])


def test_center_crop_larger_than_image_pads_with_zero() -> None:
    a = np.full((2, 2, 1), 9, np.uint8)
    out = T.CenterCrop(4)(a)[:, :, 0]
    expected = np.zeros((4, 4), np.uint8)
    expected[1:3, 1:3] = 9
    np.testing.assert_array_equal(out, expected)


def test_random_crop_position_follows_the_generator() -> None:
    a = grid(5, 6)
    rng = np.random.default_rng(7)
    top, left = int(rng.random() * (5 - 3 + 1)), int(rng.random() * (6 - 2 + 1))
    out = T.RandomCrop((3, 2), generator=np.random.default_rng(7))(a)
    np.testing.assert_array_equal(out, a[top : top + 3, left : left + 2])


def test_random_crop_padding_and_fill() -> None:
    a = np.full((2, 2, 3), 200, np.uint8)
    # padding 1 on every side gives 4x4; a 4x4 crop has only one position: the padded image
    out = T.RandomCrop(4, padding=1, fill=(1, 2, 3), generator=labkit.Generator(0))(a)
    np.testing.assert_array_equal(out[0, 0], [1, 2, 3])
    np.testing.assert_array_equal(out[1:3, 1:3], a)
    # (left/right, top/bottom) padding
    out = T.RandomCrop((2, 6), padding=(2, 0), generator=labkit.Generator(0))(a)
    np.testing.assert_array_equal(out[:, :2], 0)
    np.testing.assert_array_equal(out[:, 2:4], a)


def test_random_crop_too_small_raises_unless_pad_if_needed() -> None:
    a = grid(3, 3)
    with pytest.raises(ValueError, match=r"RandomCrop: expected an image at least 4x5 .*got 3x3"):
        T.RandomCrop((4, 5))(a)
    out = T.RandomCrop((4, 5), pad_if_needed=True, generator=labkit.Generator(0))(a)
    assert out.shape == (4, 5, 3)


def test_resize_shorter_edge_and_pair() -> None:
    a = grid(4, 8)
    assert T.Resize(2)(a).shape == (2, 4, 3)  # shorter edge 4 -> 2, longer 8 -> int(2 * 8 / 4)
    assert T.Resize((3, 5))(a).shape == (3, 5, 3)
    # nearest downsampling by 2 takes every other pixel starting at the centre of each 2x2 block
    checker = np.zeros((4, 4, 1), np.uint8)
    checker[1::2, 1::2] = 255
    np.testing.assert_array_equal(T.Resize(2, interpolation="nearest")(checker)[:, :, 0], [[255, 255], [255, 255]])
    # box filter averages each 2x2 block
    np.testing.assert_array_equal(T.Resize(2, interpolation="box")(checker)[:, :, 0], [[64, 64], [64, 64]])


def test_horizontal_flip_probability_and_result() -> None:
    a = grid()
    np.testing.assert_array_equal(T.RandomHorizontalFlip(p=1.0)(a), a[:, ::-1])
    np.testing.assert_array_equal(T.RandomHorizontalFlip(p=0.0)(a), a)
    flipped = np.asarray(T.RandomHorizontalFlip(p=1.0)(Image.fromarray(a)))
    np.testing.assert_array_equal(flipped, a[:, ::-1])
    gen = labkit.Generator(3)
    t = T.RandomHorizontalFlip(p=0.5, generator=gen)
    flips = [bool(t(a)[0, 0, 0] != a[0, 0, 0]) for _ in range(200)]
    expected = list(np.random.default_rng(3).random(200) < 0.5)
    assert flips == expected


def test_random_resized_crop_window_is_in_range_and_full_scale_is_a_resize() -> None:
    t = T.RandomResizedCrop(4, scale=(0.25, 0.5), generator=labkit.Generator(1))
    for _ in range(50):
        top, left, h, w = t.window(20, 30)
        assert 0 <= top and top + h <= 20 and 0 <= left and left + w <= 30
        assert 0.25 * 600 * 0.8 <= h * w <= 0.5 * 600 * 1.2  # area within scale (rounding slack)
        assert 3 / 4 * 0.8 <= w / h <= 4 / 3 * 1.25
    a = grid(8, 8)
    full = T.RandomResizedCrop(4, scale=(1.0, 1.0), ratio=(1.0, 1.0), generator=labkit.Generator(0))
    np.testing.assert_array_equal(full(a), T.Resize(4)(a))


def test_random_resized_crop_falls_back_to_a_center_crop() -> None:
    # a 1x40 strip cannot hold a window of ratio <= 4/3 with area >= 0.9: the fallback clamps the ratio
    t = T.RandomResizedCrop(2, scale=(0.9, 1.0), generator=labkit.Generator(0))
    assert t.window(1, 40) == (0, 19, 1, 1)  # w = round(1 * 4/3) = 1, centred at (40 - 1) // 2


# ---- colour ----------------------------------------------------------------------------


def test_color_jitter_brightness_is_a_clipped_scale() -> None:
    a = grid()
    gen_seed = 5
    factor = 0.5 + np.random.default_rng(gen_seed).random()  # uniform in [0.5, 1.5)
    out = T.ColorJitter(brightness=0.5, generator=np.random.default_rng(gen_seed))(a)
    np.testing.assert_array_equal(out, np.rint(np.clip(a.astype(np.float32) * factor, 0, 255)).astype(np.uint8))


def test_color_jitter_saturation_zero_factor_gives_grey_and_keeps_alpha() -> None:
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 77
    t = T.ColorJitter(saturation=1.0, generator=np.random.default_rng(0))
    t._factor = lambda rng, amount: 0.0 if amount == 1.0 else 1.0  # force factor 0: fully desaturated
    out = t(rgba)
    np.testing.assert_array_equal(out[..., 3], 77)
    assert np.all(out[..., 0] == out[..., 1]) and np.all(out[..., 1] == out[..., 2])
    assert out[0, 0, 0] == round(200 * 0.299)


def test_color_jitter_hue_changes_colour_not_grey() -> None:
    red = np.zeros((2, 2, 3), np.uint8)
    red[..., 0] = 255
    out = T.ColorJitter(hue=0.5, generator=labkit.Generator(2))(red)
    assert not np.array_equal(out, red)
    grey = np.full((2, 2, 3), 128, np.uint8)
    np.testing.assert_array_equal(T.ColorJitter(hue=0.5, saturation=0.9, generator=labkit.Generator(2))(grey), grey)


def test_grayscale_uses_luma_weights() -> None:
    a = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255]]], np.uint8)
    out = T.Grayscale()(a)
    assert out.shape == (1, 3, 1)
    np.testing.assert_allclose(out[0, :, 0], [255 * 0.299, 255 * 0.587, 255 * 0.114], atol=1)
    assert T.Grayscale(3)(a).shape == (1, 3, 3)


# ---- arrays ----------------------------------------------------------------------------


def test_to_array_and_normalize() -> None:
    a = grid(2, 3)
    x = T.ToArray()(a)
    assert x.shape == (3, 2, 3) and x.dtype == np.float32
    np.testing.assert_allclose(x, a.transpose(2, 0, 1) / 255.0, rtol=1e-6)
    assert T.ToArray()(np.full((1, 1, 1), 255, np.uint8))[0, 0, 0] == 1.0
    y = T.Normalize([0.5, 0.25, 0.0], [0.5, 0.25, 2.0])(x)
    np.testing.assert_allclose(y[1], (x[1] - 0.25) / 0.25, rtol=1e-6)
    with pytest.raises(ValueError, match=r"Normalize: expected 3 channels \(len\(mean\)\), got 1"):
        T.Normalize([0.5] * 3, [1] * 3)(np.zeros((1, 2, 2), np.float32))
    with pytest.raises(TypeError, match=r"Normalize: expected a \(C, H, W\) float array \(apply ToArray first\)"):
        T.Normalize([0.5], [1])(a)
    with pytest.raises(ValueError, match=r"Normalize: std expected non-zero values"):
        T.Normalize([0.5], [0])


# ---- determinism and composition ------------------------------------------------------------


def augment(gen: labkit.Generator) -> T.Compose:
    return T.Compose(
        [
            T.RandomResizedCrop(12, generator=gen),
            T.RandomCrop(10, padding=2, generator=gen),
            T.RandomHorizontalFlip(generator=gen),
            T.ColorJitter(0.4, 0.4, 0.4, 0.1, generator=gen),
            T.ToArray(),
            T.Normalize([0.5] * 3, [0.25] * 3),
        ]
    )


def test_same_seed_same_output_different_seed_different_output() -> None:
    a = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    first = [augment(labkit.Generator(11))(a) for _ in range(2)]
    again = augment(labkit.Generator(11))
    np.testing.assert_array_equal(first[0], first[1])
    np.testing.assert_array_equal(first[0], again(a))
    assert not np.array_equal(again(a), first[0])  # the stream moved on
    assert not np.array_equal(augment(labkit.Generator(12))(a), first[0])


def test_default_generator_is_used_when_none_given() -> None:
    a = grid(8, 8)
    t = T.RandomCrop(4)
    labkit.manual_seed(3)
    first = t(a)
    labkit.manual_seed(3)
    np.testing.assert_array_equal(t(a), first)


def test_pil_and_array_paths_agree() -> None:
    a = np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    from_array = augment(labkit.Generator(4))(a)
    from_pil = augment(labkit.Generator(4))(Image.fromarray(a))
    np.testing.assert_array_equal(from_array, from_pil)


def test_split_deterministic() -> None:
    t = T.Compose([T.Resize(8), T.CenterCrop(8), T.RandomHorizontalFlip(), T.Grayscale(), T.ToArray()])
    prefix, rest = t.split_deterministic()
    assert [type(x).__name__ for x in prefix.transforms] == ["Resize", "CenterCrop"]
    assert [type(x).__name__ for x in rest.transforms] == ["RandomHorizontalFlip", "Grayscale", "ToArray"]
    assert T.split_deterministic(T.Resize(4))[0].transforms and not T.split_deterministic(T.ToArray())[0].transforms


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: T.Resize(0), r"Resize: size expected positive sizes, got 0"),
        (lambda: T.Resize(4, interpolation="cubic"), r"Resize: interpolation expected one of .*got 'cubic'"),
        (lambda: T.CenterCrop("4"), r"CenterCrop: size expected an int or a \(height, width\) pair"),
        (lambda: T.RandomCrop(4, padding=(1, 2, 3)), r"RandomCrop: padding expected an int or a sequence of 2 or 4"),
        (lambda: T.RandomResizedCrop(4, scale=(0.5, 0.1)), r"RandomResizedCrop: scale expected 0 < min <= max <= 1"),
        (lambda: T.RandomHorizontalFlip(p=2), r"RandomHorizontalFlip: p expected a probability in \[0, 1\], got 2"),
        (lambda: T.ColorJitter(hue=0.7), r"ColorJitter: hue expected a number in \[0, 0.5\], got 0.7"),
        (lambda: T.ColorJitter(brightness=-1), r"ColorJitter: brightness expected a non-negative number, got -1"),
        (lambda: T.Grayscale(2), r"Grayscale: num_output_channels expected 1 or 3, got 2"),
        (lambda: T.Compose([3]), r"Compose: expected callables, got int"),
    ],
)
def test_bad_arguments_name_the_transform(make: Callable[[], object], match: str) -> None:
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_torchvision_like_semantics_against_torch_free_reference() -> None:
    """CenterCrop and Resize(shorter edge) agree with torchvision's documented arithmetic on odd sizes."""
    a = grid(7, 9)
    out = T.CenterCrop((4, 4))(a)
    np.testing.assert_array_equal(out, a[round(1.5) : round(1.5) + 4, round(2.5) : round(2.5) + 4])
    assert T.Resize(5)(grid(7, 9)).shape[:2] == (5, int(5 * 9 / 7))
    assert T.Resize(5)(grid(9, 7)).shape[:2] == (int(5 * 9 / 7), 5)
