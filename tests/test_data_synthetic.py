"""The procedural anomaly benchmark: MVTec-AD layout, exact masks, determinism, honest anomalies."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from moeclip_hf.data import CATEGORIES, DEFECTS, generate, generate_splits, load_benchmark, render
from moeclip_hf.data.synthetic import OBJECTS, TEXTURES

SIZE = 64


def files(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*.png"))}


def test_there_are_enough_textures_and_objects_for_disjoint_seen_and_unseen_sets():
    assert len(CATEGORIES) >= 6 and len(TEXTURES) >= 3 and len(OBJECTS) >= 3
    assert set(DEFECTS) == {"scratch", "hole", "color_spot", "perlin_patch"}


@pytest.mark.parametrize("category", CATEGORIES)
def test_masks_cover_exactly_the_pixels_the_anomaly_changed(category):
    for seed, defect in enumerate(DEFECTS):
        sample = render(category, defect, SIZE, seed=seed)
        changed = (sample.image != sample.normal).any(axis=-1)
        assert sample.mask.dtype == bool and sample.mask.sum() >= 10
        assert np.array_equal(sample.mask, changed)
        assert np.array_equal(sample.normal, render(category, None, SIZE, seed=seed).image)


def test_normal_images_have_an_empty_mask_and_vary_with_the_seed():
    first, second = render("washer", None, SIZE, seed=0), render("washer", None, SIZE, seed=1)
    assert not first.mask.any() and np.array_equal(first.image, first.normal)
    assert not np.array_equal(first.image, second.image)


def test_generate_writes_the_mvtec_layout(tmp_path):
    written = generate(tmp_path, categories=["stripes", "tablet"], images_per_category=6, seed=0, image_size=SIZE)

    assert len(written) == 12
    assert (tmp_path / "stripes" / "test" / "good" / "000.png").is_file()
    assert (tmp_path / "tablet" / "ground_truth" / "scratch" / "000_mask.png").is_file()
    dataset = load_benchmark("mvtec", tmp_path)
    assert len(dataset) == 12
    assert [row["label"] for row in dataset].count(1) == 6
    assert {row["class_name"] for row in dataset} == {"stripes", "tablet"}
    assert all((row["mask"] is not None) == (row["label"] == 1) for row in dataset)


def test_generate_is_byte_identical_for_a_seed(tmp_path):
    generate(tmp_path / "a", images_per_category=4, seed=5, image_size=SIZE)
    generate(tmp_path / "b", images_per_category=4, seed=5, image_size=SIZE)
    generate(tmp_path / "c", images_per_category=4, seed=6, image_size=SIZE)
    assert files(tmp_path / "a") == files(tmp_path / "b")
    assert files(tmp_path / "a").keys() == files(tmp_path / "c").keys()
    assert files(tmp_path / "a") != files(tmp_path / "c")


def test_a_category_does_not_depend_on_which_others_are_generated(tmp_path):
    generate(tmp_path / "all", images_per_category=4, seed=2, image_size=SIZE)
    generate(tmp_path / "one", categories=["marble"], images_per_category=4, seed=2, image_size=SIZE)
    assert files(tmp_path / "one" / "marble") == files(tmp_path / "all" / "marble")


def test_written_files_are_the_rendered_samples(tmp_path):
    for record in generate(tmp_path, categories=["hex_nut"], images_per_category=8, seed=1, image_size=SIZE):
        sample = render(record.category, record.defect, SIZE, seed=record.seed)
        assert np.array_equal(np.asarray(Image.open(record.path)), sample.image)
        if record.defect is not None:
            assert np.array_equal(np.asarray(Image.open(record.mask_path)) == 255, sample.mask)


def test_existing_category_folders_are_not_mixed_into(tmp_path):
    generate(tmp_path, categories=["weave"], images_per_category=2, image_size=SIZE)
    with pytest.raises(FileExistsError, match="weave"):
        generate(tmp_path, categories=["weave"], images_per_category=2, image_size=SIZE)
    generate(tmp_path, categories=["weave"], images_per_category=4, image_size=SIZE, overwrite=True)
    assert len(load_benchmark("mvtec", tmp_path)) == 4


def test_generate_splits_gives_seen_train_and_heldout_and_disjoint_unseen(tmp_path):
    roots = generate_splits(
        tmp_path, seen=["stripes", "tablet"], unseen=["checkers", "washer"], images_per_category=4, image_size=SIZE
    )

    assert set(roots) == {"train", "heldout", "unseen"}
    classes = {name: {row["class_name"] for row in load_benchmark("mvtec", root)} for name, root in roots.items()}
    assert classes == {
        "train": {"stripes", "tablet"},
        "heldout": {"stripes", "tablet"},
        "unseen": {"checkers", "washer"},
    }
    train, heldout = files(roots["train"]), files(roots["heldout"])
    assert train.keys() == heldout.keys()
    images = [name for name in train if not name.endswith("_mask.png")]
    assert all(train[name] != heldout[name] for name in images)


def test_generate_splits_refuses_overlapping_or_unknown_categories(tmp_path):
    with pytest.raises(ValueError, match="disjoint"):
        generate_splits(tmp_path, seen=["stripes"], unseen=["stripes", "washer"])
    with pytest.raises(ValueError, match="unknown synthetic category 'bottle'"):
        generate_splits(tmp_path, seen=["bottle"], unseen=["washer"])


def test_anomalies_have_no_colour_of_their_own():
    """A defect differs by texture, shape and local intensity, not by a colour only defects have:
    nearly every anomalous pixel has a colour that normal images (of some category) also show."""
    step = 16
    normal_bins = set()
    for category, seed in itertools.product(CATEGORIES, range(6)):
        normal_bins |= set(map(tuple, (render(category, None, SIZE, seed=seed).image.reshape(-1, 3) // step).tolist()))
    near_normal = {tuple(np.add(b, d)) for b in normal_bins for d in itertools.product((-1, 0, 1), repeat=3)}

    anomalous = np.concatenate(
        [
            (sample.image[sample.mask] // step)
            for category, defect in itertools.product(CATEGORIES, DEFECTS)
            for sample in [render(category, defect, SIZE, seed=100)]
        ]
    )
    share = np.mean([tuple(pixel) in near_normal for pixel in anomalous.tolist()])
    assert share > 0.85
