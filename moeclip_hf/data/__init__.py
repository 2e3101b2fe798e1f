"""Benchmark data for MoECLIP: layouts -> ``datasets.Dataset``, CLIP preprocessing and augmentation,
and a procedural anomaly benchmark for tests and the offline demo.

>>> from moeclip_hf.data import load_benchmark
>>> test_set = load_benchmark("mvtec", "/data/mvtec_anomaly_detection", image_size=518)  # doctest: +SKIP
>>> test_set[0]["pixel_values"].shape  # doctest: +SKIP
torch.Size([3, 518, 518])

Modules, in data-flow order: `layouts` (one class per folder convention, routed per benchmark), `check`
(`moeclip data check`: a copy against the benchmarks table), `images` (decoding images
and masks), `loading` (`load_benchmark`: a root folder -> `datasets.Dataset`), `transforms` (the model's
preprocessing and the training augmentation), `synthetic` (the procedural benchmark). The attributes below
are imported on first use, so `import moeclip_hf.data` loads neither `datasets` nor kornia.
"""

from .._lazy import lazy_attributes

_HOMES = {
    "read_image": ".images",
    "read_mask": ".images",
    "read_pair": ".images",
    "ROUTES": ".layouts",
    "BenchmarkLayout": ".layouts",
    "LayoutNotFoundError": ".layouts",
    "Sample": ".layouts",
    "list_benchmarks": ".layouts",
    "open_layout": ".layouts",
    "FEATURES": ".loading",
    "class_settings": ".loading",
    "collate_samples": ".loading",
    "collect_samples": ".loading",
    "load_benchmark": ".loading",
    "samples_to_dataset": ".loading",
    "validate_images": ".loading",
    "CATEGORIES": ".synthetic",
    "DEFECTS": ".synthetic",
    "GeneratedImage": ".synthetic",
    "SyntheticSample": ".synthetic",
    "generate": ".synthetic",
    "generate_splits": ".synthetic",
    "render": ".synthetic",
    "ClipPreprocess": ".transforms",
    "ExampleTransform": ".transforms",
    "JointAugmentation": ".transforms",
    "preprocess_mask": ".transforms",
}
__getattr__, __dir__ = lazy_attributes(__name__, _HOMES)
__all__ = sorted(_HOMES)
