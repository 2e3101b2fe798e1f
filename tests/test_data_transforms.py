"""CLIP preprocessing, the joint augmentation, and reading the images real benchmarks ship.

METHOD.md, "Backbone": RGB, bicubic resize straight to the input size (no crop), CLIP mean/std;
masks nearest-resized and binarised. "Losses and training": rotation, translation and flips move
image and mask together; colour jitter touches the image only.
"""

from __future__ import annotations

import logging
import re

import numpy as np
import pytest
import torch
from PIL import Image

from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

from moeclip_hf.data import (
    ClipPreprocess,
    JointAugmentation,
    load_benchmark,
    preprocess_mask,
    read_image,
    read_mask,
    read_pair,
    validate_images,
)
from moeclip_hf.modeling.processing_moeclip import clip_image_processor
from moeclip_hf.presets import tiny_processor

# Preprocessing: one path, the processor's


def test_the_training_transform_gives_the_processors_pixels_exactly():
    """One preprocessing path: what training and evaluation feed the model is what MoECLIPProcessor gives."""
    rng = np.random.default_rng(0)
    processor = tiny_processor(image_size=48)
    for image in (
        Image.fromarray(rng.integers(0, 256, (37, 61, 3), dtype=np.uint8)),
        Image.fromarray(rng.integers(0, 256, (90, 30, 3), dtype=np.uint8)),
        Image.new("RGB", (48, 48), (200, 100, 30)),
    ):
        expected = processor(images=image, return_tensors="pt")["pixel_values"][0]
        pixels, _ = ClipPreprocess(processor.image_processor)(image)
        assert torch.equal(pixels, expected)


def test_constant_colour_maps_to_clip_normalised_values():
    color = (200, 100, 30)
    pixels, _ = ClipPreprocess(clip_image_processor(24))(Image.new("RGB", (40, 30), color))

    assert pixels.shape == (3, 24, 24) and pixels.dtype == torch.float32
    expected = [(c / 255 - m) / s for c, m, s in zip(color, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, strict=True)]
    torch.testing.assert_close(pixels, torch.tensor(expected).view(3, 1, 1).expand(3, 24, 24))


def test_resize_squashes_without_cropping():
    image = np.zeros((20, 60, 3), dtype=np.uint8)
    image[:, :10] = (255, 0, 0)  # a red band on the far left, which a centre crop would cut off
    pixels, _ = ClipPreprocess(clip_image_processor(30))(Image.fromarray(image))
    red = (1.0 - OPENAI_CLIP_MEAN[0]) / OPENAI_CLIP_STD[0]
    assert torch.allclose(pixels[0, :, 0], torch.full((30,), red), atol=1e-5)


def test_mask_is_nearest_resized_binary_and_zero_when_absent():
    values = np.zeros((10, 10), dtype=np.uint8)
    values[:5, :5] = 1  # VisA-style masks store small class indices, not 255
    mask = preprocess_mask(Image.fromarray(values), (20, 20))

    assert mask.shape == (1, 20, 20) and mask.dtype == torch.float32
    assert set(mask.unique().tolist()) == {0.0, 1.0}
    assert mask[0, :10, :10].all() and not mask[0, 10:, :].any() and not mask[0, :, 10:].any()
    assert torch.equal(preprocess_mask(None, (20, 20)), torch.zeros(1, 20, 20))


def test_clip_preprocess_returns_the_pair_of_tensors():
    pixels, mask = ClipPreprocess(clip_image_processor(16))(Image.new("RGB", (8, 8)), Image.new("L", (8, 8), 255))
    assert pixels.shape == (3, 16, 16) and torch.equal(mask, torch.ones(1, 16, 16))


# The joint augmentation


def bright_shape(size: int = 48) -> tuple[torch.Tensor, torch.Tensor]:
    """An asymmetric bright 'L' on a dark, slightly textured ground, and the mask of its bright pixels."""
    generator = torch.Generator().manual_seed(0)
    image = 0.1 + 0.1 * torch.rand(3, size, size, generator=generator)
    image[:, 8:36, 10:18] = 0.95
    image[:, 28:36, 18:34] = 0.95
    return image, (image[:1] > 0.5).float()


@pytest.mark.parametrize("seed", range(8))
def test_geometric_augmentation_moves_image_and_mask_together(seed):
    image, mask = bright_shape()
    augment = JointAugmentation(p=1.0, color_p=0.0, generator=seed)
    moved_image, moved_mask = augment(image, mask)

    assert not torch.equal(moved_mask, mask)
    assert set(moved_mask.unique().tolist()) <= {0.0, 1.0}
    bright = moved_image[:1] > 0.5
    overlap = (bright & moved_mask.bool()).sum() / (bright | moved_mask.bool()).sum()
    assert overlap > 0.85  # only the interpolated border of the shape may disagree


def test_flips_alone_are_exact():
    image, mask = bright_shape()
    augment = JointAugmentation(rotation=0.0, translation=0.0, p=1.0, color_p=0.0, generator=0)
    flipped_image, flipped_mask = augment(image, mask)
    torch.testing.assert_close(flipped_image, image.flip(-1).flip(-2))
    assert torch.equal(flipped_mask, mask.flip(-1).flip(-2))


def test_colour_jitter_changes_the_image_only():
    image, mask = bright_shape()
    augment = JointAugmentation(p=0.0, color_p=1.0, generator=0)
    jittered, same_mask = augment(image, mask)
    assert not torch.allclose(jittered, image)
    assert torch.equal(same_mask, mask)
    assert jittered.min() >= 0.0 and jittered.max() <= 1.0


def test_the_released_augmentation_runs_after_normalisation_so_the_fill_is_the_mean_colour():
    white = Image.new("RGB", (32, 32), (255, 255, 255))
    augmentation = JointAugmentation(rotation=45.0, translation=0.0, p=1.0, color_p=1.0, color_jitter=False,
                                      interpolation="nearest", generator=0)
    mean, std = torch.tensor(OPENAI_CLIP_MEAN), torch.tensor(OPENAI_CLIP_STD)
    pixels, _ = ClipPreprocess(clip_image_processor(32), augment_after_normalization=True)(white, None, augmentation)
    corner = pixels[:, 0, 0] * std + mean
    torch.testing.assert_close(corner, mean)  # the mean colour, not black
    white_normalised = (1 - mean) / std
    assert set(pixels.unique().tolist()) == {0.0, *white_normalised.tolist()}  # nearest: no blended values, no jitter
    paper_augmentation = JointAugmentation(rotation=45.0, translation=0.0, p=1.0, color_p=0.0, generator=0)
    paper, _ = ClipPreprocess(clip_image_processor(32))(white, None, paper_augmentation)
    torch.testing.assert_close(paper[:, 0, 0], -mean / std)  # black fill


def test_augmentation_is_reproducible_for_a_seed_and_varies_across_seeds():
    image, mask = bright_shape()
    first = JointAugmentation(generator=3)(image, mask)
    again = JointAugmentation(generator=torch.Generator().manual_seed(3))(image, mask)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    outcomes = {JointAugmentation(generator=seed)(image, mask)[1].sum().item() for seed in range(10)}
    assert len(outcomes) > 1


def test_batched_augmentation_draws_per_sample():
    image, mask = bright_shape()
    images, masks = image.expand(6, -1, -1, -1), mask.expand(6, -1, -1, -1)
    out_images, out_masks = JointAugmentation(p=1.0, generator=0)(images, masks)
    assert out_images.shape == images.shape and out_masks.shape == masks.shape
    assert len({out_masks[index].sum().item() for index in range(6)}) > 1


def test_augmented_rows_keep_image_and_mask_aligned(tmp_path):
    image, mask = bright_shape(32)
    folder = tmp_path / "part" / "test" / "crack"
    folder.mkdir(parents=True)
    Image.fromarray((image.permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(folder / "0.png")
    (tmp_path / "part" / "ground_truth" / "crack").mkdir(parents=True)
    Image.fromarray((mask[0].numpy() * 255).astype(np.uint8)).save(
        tmp_path / "part" / "ground_truth" / "crack" / "0_mask.png"
    )
    dataset = load_benchmark("mvtec", tmp_path)
    preprocess = ClipPreprocess(clip_image_processor(32))

    for seed in range(4):
        row = dataset[0]
        pixel_values, row_mask = preprocess(row["image"], row["mask"], JointAugmentation.for_sample(1, 0, seed))
        row = {"pixel_values": pixel_values, "mask": row_mask}
        unit = row["pixel_values"] * preprocess.std + preprocess.mean
        bright = unit.mean(0, keepdim=True) > 0.5 * unit.mean(0).max()
        overlap = (bright & row["mask"].bool()).sum() / (bright | row["mask"].bool()).sum()
        assert overlap > 0.7


# Reading what real benchmarks ship: every mode becomes RGB


def save(image: Image.Image, path, **kwargs):
    image.save(path, **kwargs)
    return path


def test_16_bit_grayscale_is_stretched_by_its_own_range(tmp_path):
    values = np.linspace(1000, 5000, 64, dtype=np.uint16).reshape(8, 8)  # a scanner using 13 bits
    path = save(Image.fromarray(values), tmp_path / "ct.png")
    assert Image.open(path).mode.startswith("I")
    image = read_image(path)

    assert image.mode == "RGB"
    gray = np.asarray(image)[..., 0]
    assert gray.min() == 0 and gray.max() == 255
    assert np.all(np.diff(gray.ravel().astype(int)) >= 0)  # the ramp stays a ramp
    assert np.array_equal(np.asarray(image)[..., 0], np.asarray(image)[..., 2])


def test_grayscale_jpeg_becomes_three_equal_channels(tmp_path):
    path = save(Image.new("L", (8, 8), 90), tmp_path / "mri.jpg", quality=95)
    pixels = np.asarray(read_image(path))
    assert pixels.shape == (8, 8, 3) and np.all(np.abs(pixels.astype(int) - 90) <= 2)


def test_transparent_pixels_become_white_like_the_clip_processor(tmp_path):
    rgba = np.zeros((8, 8, 4), dtype=np.uint8)
    rgba[:4] = (10, 20, 30, 255)
    path = save(Image.fromarray(rgba), tmp_path / "shot.png")
    pixels = np.asarray(read_image(path))
    assert np.all(pixels[:4] == (10, 20, 30)) and np.all(pixels[4:] == 255)


def test_palette_and_cmyk_images_convert_to_rgb(tmp_path):
    palette = Image.new("RGB", (8, 8), (200, 40, 40)).convert("P", palette=Image.Palette.ADAPTIVE)
    assert np.all(np.asarray(read_image(save(palette, tmp_path / "p.png"))) == (200, 40, 40))
    cmyk = Image.new("CMYK", (8, 8), (0, 255, 255, 0))  # pure red in CMYK
    pixels = np.asarray(read_image(save(cmyk, tmp_path / "c.jpg", quality=95)))
    assert pixels.shape == (8, 8, 3) and pixels[..., 0].min() > 200 and pixels[..., 1:].max() < 60


def test_masks_of_any_mode_are_binarised(tmp_path):
    values = np.zeros((8, 8), dtype=np.uint16)
    values[2:4, 2:4] = 3
    mask = read_mask(save(Image.fromarray(values), tmp_path / "m16.png"))
    assert mask.mode == "L" and np.array_equal(np.asarray(mask) != 0, values != 0)
    rgb = np.zeros((8, 8, 3), dtype=np.uint8)
    rgb[5, 5] = (0, 0, 9)
    assert np.argwhere(np.asarray(read_mask(save(Image.fromarray(rgb), tmp_path / "rgb.png")))).tolist() == [[5, 5]]


def test_benchmark_rows_are_rgb_whatever_the_file_mode(tmp_path):
    folder = tmp_path / "scan" / "test" / "good"
    folder.mkdir(parents=True)
    save(Image.fromarray(np.arange(64, dtype=np.uint16).reshape(8, 8) * 500), folder / "a16.png")
    save(Image.new("L", (8, 8), 7), folder / "b_gray.jpg")
    save(Image.new("RGBA", (8, 8), (1, 2, 3, 0)), folder / "c_rgba.png")
    save(Image.new("CMYK", (8, 8), (9, 9, 9, 9)), folder / "d_cmyk.jpg")
    dataset = load_benchmark("mvtec", tmp_path)
    assert [row["image"].mode for row in dataset] == ["RGB"] * 4
    assert all(row["pixel_values"].shape == (3, 8, 8) for row in load_benchmark("mvtec", tmp_path, image_size=8))


# Files that cannot be read fail with their name


def broken_files(tmp_path):
    good = save(Image.new("RGB", (32, 32), (5, 6, 7)), tmp_path / "good.png")
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:-30])
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    return truncated, empty


def test_truncated_and_zero_byte_files_raise_errors_naming_them(tmp_path):
    for path in broken_files(tmp_path):
        with pytest.raises(ValueError, match=re.escape(f"cannot read image {path}")):
            read_image(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "gone.png"))):
        read_image(tmp_path / "gone.png")


def test_mask_of_another_size_names_both_files(tmp_path):
    image = save(Image.new("RGB", (8, 8)), tmp_path / "img.png")
    mask = save(Image.new("L", (8, 9)), tmp_path / "img_mask.png")
    with pytest.raises(ValueError, match=re.escape(f"mask {mask} is 8x9 but its image {image} is 8x8")):
        read_pair(image, mask)


def make_damaged_benchmark(tmp_path):
    root = tmp_path / "mvtec"
    folder = root / "bottle" / "test" / "good"
    folder.mkdir(parents=True)
    save(Image.new("RGB", (8, 8)), folder / "000.png")
    truncated, empty = broken_files(tmp_path)
    (folder / "001.png").write_bytes(truncated.read_bytes())
    (folder / "002.png").write_bytes(empty.read_bytes())
    defect, masks = root / "bottle" / "test" / "crack", root / "bottle" / "ground_truth" / "crack"
    defect.mkdir(parents=True)
    masks.mkdir(parents=True)
    save(Image.new("RGB", (8, 8)), defect / "000.png")
    save(Image.new("L", (9, 8)), masks / "000_mask.png")
    return root


def test_dataset_rows_that_cannot_be_read_name_their_files(tmp_path):
    root = make_damaged_benchmark(tmp_path)
    for image_size in (None, 16):
        dataset = load_benchmark("mvtec", root, image_size=image_size)
        assert dataset[1]["label"] == 0  # readable rows stay readable
        mask, image = (
            root / "bottle" / "ground_truth" / "crack" / "000_mask.png",
            root / "bottle" / "test" / "crack" / "000.png",
        )
        with pytest.raises(ValueError, match=re.escape(f"mask {mask} is 9x8 but its image {image} is 8x8")):
            dataset[0]
        with pytest.raises(ValueError, match=re.escape(f"cannot read image {root}/bottle/test/good/001.png")):
            dataset[2]
        with pytest.raises(ValueError, match=re.escape(f"cannot read image {root}/bottle/test/good/002.png")):
            dataset[3]


def test_validate_images_skips_unreadable_rows_and_logs_the_count(tmp_path, caplog):
    root = make_damaged_benchmark(tmp_path)
    dataset = load_benchmark("mvtec", root, image_size=16)
    with caplog.at_level(logging.WARNING, logger="moeclip_hf.data.loading"):
        readable, skipped = validate_images(dataset)

    assert skipped == [
        f"{root}/bottle/test/crack/000.png",
        f"{root}/bottle/test/good/001.png",
        f"{root}/bottle/test/good/002.png",
    ]
    assert len(readable) == 1 and readable[0]["pixel_values"].shape == (3, 16, 16)
    assert "skipped 3 of 4 samples" in caplog.text
    assert len(load_benchmark("mvtec", root, skip_unreadable=True)) == 1
