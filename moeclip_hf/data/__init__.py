"""Benchmark data for MoECLIP: layouts -> ``datasets.Dataset``, CLIP preprocessing and augmentation,
and a procedural anomaly benchmark for tests and the offline demo.

>>> from moeclip_hf.data import load_benchmark
>>> test_set = load_benchmark("mvtec", "/data/mvtec_anomaly_detection", image_size=518)  # doctest: +SKIP
>>> test_set[0]["pixel_values"].shape  # doctest: +SKIP
torch.Size([3, 518, 518])
"""

from .images import read_image, read_mask, read_pair, to_rgb
from .layouts import ROUTES, BenchmarkLayout, LayoutNotFoundError, Sample, list_benchmarks, open_layout
from .loading import FEATURES, class_settings, collect_samples, load_benchmark, samples_to_dataset, validate_images
from .synthetic import CATEGORIES, DEFECTS, GeneratedImage, SyntheticSample, generate, generate_splits, render
from .transforms import (
    CLIP_MEAN,
    CLIP_STD,
    ClipPreprocess,
    ExampleTransform,
    JointAugmentation,
    make_transform,
    normalize_pixels,
    preprocess_image,
    preprocess_mask,
)

__all__ = [
    "CATEGORIES",
    "CLIP_MEAN",
    "CLIP_STD",
    "DEFECTS",
    "FEATURES",
    "BenchmarkLayout",
    "ClipPreprocess",
    "ExampleTransform",
    "GeneratedImage",
    "JointAugmentation",
    "LayoutNotFoundError",
    "ROUTES",
    "Sample",
    "SyntheticSample",
    "class_settings",
    "collect_samples",
    "generate",
    "generate_splits",
    "list_benchmarks",
    "load_benchmark",
    "make_transform",
    "normalize_pixels",
    "open_layout",
    "preprocess_image",
    "preprocess_mask",
    "read_image",
    "read_mask",
    "read_pair",
    "render",
    "samples_to_dataset",
    "to_rgb",
    "validate_images",
]
