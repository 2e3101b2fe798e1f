"""The MoECLIP web app: upload an image, name what it shows, see the anomaly score, verdict and maps.

This file is the core of `moeclip serve` (`moeclip_hf.app`) and, copied as `app.py` to the root of an
exported repository, a Hugging Face Space (`sdk: gradio`, `app_file: app.py`). It therefore imports
nothing from `moeclip_hf` at module level: only the standard library, numpy, Pillow, transformers and
(inside the functions that need it) gradio. In an exported repository the model, processor and pipeline
come from the repository's own remote code (`trust_remote_code=True`); where `moeclip_hf[app]` is installed,
`create_app` uses the package's app instead, which adds the routing tab of `moeclip explain`.

The model is loaded once. Uploads are checked before they are decoded (at most `MAX_UPLOAD_BYTES` on disk
and `MAX_PIXELS` pixels, and one of the `IMAGE_FORMATS`), and everything the app or Gradio writes
(uploads, result images, explanation figures) goes to one `tempfile.TemporaryDirectory` that the app owns
(`GRADIO_TEMP_DIR` points there) and that is deleted when the app is closed or the process ends.

Environment variables: `MOECLIP_MODEL` (the model folder or Hub id; default: this file's folder),
`GRADIO_SERVER_NAME` / `GRADIO_SERVER_PORT` (set by Spaces).
"""

from __future__ import annotations

import importlib
import math
import os
import re
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

TASK = "zero-shot-anomaly-detection"
#: Largest accepted upload, in bytes.
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
#: Largest accepted image, in pixels (width x height), checked from the header before decoding.
MAX_PIXELS = 50_000_000
#: Most images scored by one batch request.
MAX_BATCH_FILES = 64
#: The decoders Pillow may use on an upload; others (EPS, which runs Ghostscript, PSD, ...) are refused.
IMAGE_FORMATS = ("PNG", "JPEG", "BMP", "TIFF", "WEBP", "GIF")
MODEL_ENV = "MOECLIP_MODEL"
TEMP_DIR_ENV = "GRADIO_TEMP_DIR"
#: Vision towers narrower than this are toy models (the tests' and `moeclip demo`'s); the page says so.
TINY_HIDDEN_SIZE = 256

TITLE = "MoECLIP zero-shot anomaly detection"
INTRO = """\
# MoECLIP zero-shot anomaly detection

Upload an image, say in a few words what it shows (a benchmark class from the list, or free text such as
"metal nut" or "brain scan"), and press **Detect anomalies**. The model was never trained on your class: it
compares the image's patches with a "normal" and an "abnormal" description of it.
"""
SCORE_TEXT = """\
**What the numbers mean.** The *anomaly score* lies in [0, 1]: a weighted mix of the highest value of the
anomaly map and of how much closer the whole image is to the "abnormal" than to the "normal" prompts. It is a
ranking score, not a calibrated probability of a defect: the *verdict* only says whether the score reaches
the threshold you set (the slider starts at the model's own `anomaly_threshold`), and a good threshold
differs between classes; choose it on a few images of your class whose status you know. The *anomaly map*
gives, per pixel, the probability the model assigns to the abnormal prompts (the overlay colours it from
blue, 0, to red, 1; the white contour encloses the pixels at or above the threshold; the raw map is the same
values as grey levels). Routing maps show which LoRA expert each image patch was sent to.

**Caveat.** The output is only as good as the checkpoint. A tiny or untrained model (such as the ones the
tests and `moeclip demo` build) gives scores and maps that mean nothing.

Uploads stay on this server, in a temporary folder deleted when the app stops; images larger than
{max_mb} MB or {max_mp} megapixels are refused.
"""
ROUTING_TEXT = """\
The routing maps of `moeclip explain` for the image and class of the **Detect** tab: in every MoE layer a
router sends each image patch to its top-k LoRA experts; row *Top-j* of a figure tints the patches whose
j-th choice is each expert. The last figure shows the anomaly map of every feature layer and
patch-aggregation scale, and their mean, the map the model reports.
"""
NO_ROUTING_TEXT = """\
Routing maps need the `moeclip-hf` package (`pip install "moeclip-hf[app]"`), which this app could not import.
"""

OverlayFunction = Callable[[Image.Image, np.ndarray, float], Image.Image]
#: `(detector, RGB image, class name, output folder) -> ([(figure, caption), ...], markdown report)`.
ExplainFunction = Callable[[Any, Image.Image, str, Path], tuple[list[tuple[Image.Image, str]], str]]
#: `(folder) -> [(image path, class name), ...]`: writes example images into the app's folder.
ExamplesFunction = Callable[[Path], list[tuple[str, str]]]


class UploadRejected(ValueError):
    """An upload the app will not process, with a message meant for the page."""


@dataclass
class Analysis:
    """One image's result: the RGB image, its score and map (float [0, 1], the image's size)."""

    name: str
    image: Image.Image
    score: float
    anomaly_map: np.ndarray

    def is_anomalous(self, threshold: float) -> bool:
        return self.score >= threshold


# ------------------------------------------------------------------------------------------------ uploads


def _stretch_to_8bit(image: Image.Image) -> Image.Image:
    values = np.asarray(image, dtype=np.float64)
    finite = values[np.isfinite(values)]
    low, high = (finite.min(), finite.max()) if finite.size else (0.0, 0.0)
    if high <= low:
        return Image.fromarray(np.zeros(values.shape, dtype=np.uint8))
    scaled = (np.nan_to_num(values, nan=low, posinf=high, neginf=low) - low) * (255.0 / (high - low))
    return Image.fromarray(np.round(scaled).astype(np.uint8))


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB: 16/32-bit grey stretched to its own range, transparency composited onto white."""
    if image.mode == "RGB":
        return image
    if image.mode.startswith("I") or image.mode == "F":
        return _stretch_to_8bit(image).convert("RGB")
    if image.has_transparency_data:
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
    return image.convert("RGB")


def _check_pixels(width: int, height: int, name: str, max_pixels: int) -> None:
    if width == 0 or height == 0:
        raise UploadRejected(f"{name} is empty ({width}x{height} pixels).")
    if width * height > max_pixels:
        raise UploadRejected(
            f"{name} is {width}x{height} pixels ({width * height / 1e6:.1f} megapixels), more than the limit of "
            f"{max_pixels / 1e6:g} megapixels. Resize it and try again."
        )


def _detached(converted: Image.Image, original: Image.Image) -> Image.Image:
    """An in-memory image that does not carry the upload's server path (`filename`) into reports."""
    return converted.copy() if converted is original else converted


def _upload_path(source: Any) -> Path:
    """The file of an upload: a path, or the `.path` / `["path"]` of Gradio's file objects."""
    path = getattr(source, "path", None) or (source.get("path") if isinstance(source, dict) else None) or source
    return Path(os.fspath(path))


def upload_name(source: Any) -> str:
    """A short name to show for an upload: its file name, or a placeholder for in-memory images."""
    if source is None:
        return "<no image>"
    if isinstance(source, Image.Image):
        return Path(getattr(source, "filename", "") or "image").name
    for key in ("orig_name", "name"):
        name = source.get(key) if isinstance(source, dict) else getattr(source, key, None)
        if isinstance(name, str) and name:
            return Path(name).name
    try:
        return _upload_path(source).name
    except TypeError:
        return "<upload>"


def load_upload(
    source: Any, max_bytes: int = MAX_UPLOAD_BYTES, max_pixels: int = MAX_PIXELS
) -> Image.Image:
    """The RGB image of an upload, refused with `UploadRejected` before any decoding work when unfit.

    `source` is a file path (what Gradio hands over), a Gradio file object or dict with a `path`, or a
    PIL image. A file must exist, hold at most `max_bytes` bytes, be one of `IMAGE_FORMATS` and have at
    most `max_pixels` pixels according to its header; only then is it decoded, fully, so that a truncated
    file is refused here too.
    """
    if source is None:
        raise UploadRejected("No image: upload one (PNG, JPEG, BMP, TIFF, WebP or GIF) first.")
    if isinstance(source, Image.Image):
        name = upload_name(source)
        _check_pixels(source.width, source.height, name, max_pixels)
        return _detached(to_rgb(source), source)
    try:
        path = _upload_path(source)
    except TypeError:
        raise UploadRejected(f"Cannot read an image from a {type(source).__name__}.") from None
    name = upload_name(source)
    if not path.is_file():
        raise UploadRejected(f"{name}: the upload is missing on the server; upload it again.")
    size = path.stat().st_size
    if size == 0:
        raise UploadRejected(f"{name} is an empty file.")
    if size > max_bytes:
        raise UploadRejected(
            f"{name} is {size / 2**20:.1f} MB, more than the limit of {max_bytes / 2**20:g} MB."
        )
    try:
        with Image.open(path, formats=IMAGE_FORMATS) as image:
            _check_pixels(image.width, image.height, name, max_pixels)
            image.load()
            return _detached(to_rgb(image), image)
    except UploadRejected:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        detail = str(error).replace(str(path), name)  # no server paths on the page
        raise UploadRejected(f"{name} is not an image the app can read ({', '.join(IMAGE_FORMATS)}): {detail}") from None


# ---------------------------------------------------------------------------------------------- inference


def jet(values: np.ndarray) -> np.ndarray:
    """The jet colour map, as (H, W, 3) uint8, of values in [0, 1] (clipped)."""
    x = np.clip(np.asarray(values, dtype=np.float32), 0.0, 1.0)[..., None]
    rgb = np.clip(1.5 - np.abs(4.0 * x - np.array([3.0, 2.0, 1.0], dtype=np.float32)), 0.0, 1.0)
    return np.round(rgb * 255).astype(np.uint8)


def simple_overlay(image: Image.Image, anomaly_map: np.ndarray, threshold: float, alpha: float = 0.5) -> Image.Image:
    """The image with the jet heat map blended over it and the white contour of `map >= threshold`."""
    values = np.asarray(anomaly_map, dtype=np.float32)
    blended = Image.blend(image.convert("RGB"), Image.fromarray(jet(values)), alpha)
    mask = values >= threshold
    padded = np.pad(mask, 1, constant_values=False)
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    pixels = np.array(blended)
    pixels[mask & ~interior] = (255, 255, 255)
    return Image.fromarray(pixels)


def default_threshold(detector: Any) -> float:
    """The model's `anomaly_threshold` (0.5 when the config has none)."""
    return float(getattr(detector.model.config, "anomaly_threshold", 0.5))


def _check_threshold(threshold: float | None, detector: Any) -> float:
    if threshold is None:
        return default_threshold(detector)
    threshold = float(threshold)
    if not 0.0 <= threshold <= 1.0 or math.isnan(threshold):
        raise UploadRejected(f"The threshold must lie in [0, 1]; got {threshold}.")
    return threshold


_MODEL_LOCK = threading.Lock()


def run_detector(detector: Any, image: Image.Image, class_name: str | None, name: str = "image") -> Analysis:
    """One pipeline call (serialised: the app's requests share one model) as an `Analysis`."""
    with _MODEL_LOCK:
        result = detector(image, class_name=(class_name or "").strip())
    anomaly_map = np.asarray(result["anomaly_map"], dtype=np.float32) / 255.0
    return Analysis(name=name, image=image, score=float(result["score"]), anomaly_map=anomaly_map)


def verdict_text(score: float, threshold: float) -> str:
    """`ANOMALOUS` or `normal`, with the comparison that decided it (Markdown)."""
    if score >= threshold:
        return f"**ANOMALOUS**: score {score:.4f} ≥ threshold {threshold:.2f}"
    return f"**normal**: score {score:.4f} < threshold {threshold:.2f}"


def render_analysis(
    analysis: Analysis, threshold: float, overlay_fn: OverlayFunction | None = None
) -> tuple[float, str, Image.Image, Image.Image]:
    """(score, verdict, overlay, raw map) of an analysis at a threshold, without running the model again."""
    overlay_fn = overlay_fn or simple_overlay
    raw = Image.fromarray(np.round(np.clip(analysis.anomaly_map, 0, 1) * 255).astype(np.uint8))
    picture = overlay_fn(analysis.image, analysis.anomaly_map, threshold)
    return analysis.score, verdict_text(analysis.score, threshold), picture, raw


def analyse_image(
    detector: Any,
    image: Any,
    class_name: str | None,
    threshold: float | None = None,
    *,
    overlay_fn: OverlayFunction | None = None,
    max_bytes: int = MAX_UPLOAD_BYTES,
    max_pixels: int = MAX_PIXELS,
) -> tuple[float, str, Image.Image, Image.Image]:
    """Score one upload: `(score, verdict Markdown, heat-map overlay, raw map)`; the maps have the image's size.

    `detector` is a zero-shot-anomaly-detection pipeline, `image` a path, Gradio file object or PIL image,
    `threshold` the verdict's (and the overlay contour's) threshold, by default the model's. An unfit upload
    raises `UploadRejected` (a `ValueError`) with a message for the page, before the model runs.
    """
    threshold = _check_threshold(threshold, detector)
    picture = load_upload(image, max_bytes=max_bytes, max_pixels=max_pixels)
    analysis = run_detector(detector, picture, class_name, upload_name(image))
    return render_analysis(analysis, threshold, overlay_fn)


@dataclass
class BatchResult:
    """A batch: its table rows, sorted by score (highest first), the overlays in that order, the refusals."""

    rows: list[list[Any]]
    overlays: list[tuple[Image.Image, str]]
    refused: list[str]

    HEADERS = ("rank", "file", "score", "verdict")


def analyse_batch(
    detector: Any,
    files: Sequence[Any] | None,
    class_name: str | None,
    threshold: float | None = None,
    *,
    overlay_fn: OverlayFunction | None = None,
    max_bytes: int = MAX_UPLOAD_BYTES,
    max_pixels: int = MAX_PIXELS,
    max_files: int = MAX_BATCH_FILES,
) -> BatchResult:
    """Score several uploads of one class; the rows `[rank, file, score, verdict]` are sorted by score, highest first.

    Unfit files are skipped and listed in `refused` with their reason; more than `max_files` files are refused
    as a whole.
    """
    threshold = _check_threshold(threshold, detector)
    files = list(files or [])
    if not files:
        raise UploadRejected("No images: upload one or more image files first.")
    if len(files) > max_files:
        raise UploadRejected(f"{len(files)} files is more than the {max_files} one batch may hold.")
    analyses, refused = [], []
    for source in files:
        try:
            picture = load_upload(source, max_bytes=max_bytes, max_pixels=max_pixels)
        except UploadRejected as error:
            refused.append(str(error))
            continue
        analyses.append(run_detector(detector, picture, class_name, upload_name(source)))
    analyses.sort(key=lambda analysis: analysis.score, reverse=True)
    overlay_fn = overlay_fn or simple_overlay
    rows, overlays = [], []
    for rank, analysis in enumerate(analyses, start=1):
        verdict = "ANOMALOUS" if analysis.is_anomalous(threshold) else "normal"
        rows.append([rank, analysis.name, round(analysis.score, 4), verdict])
        picture = overlay_fn(analysis.image, analysis.anomaly_map, threshold)
        overlays.append((picture, f"{rank}. {analysis.name}: {analysis.score:.4f} ({verdict})"))
    return BatchResult(rows, overlays, refused)


# ---------------------------------------------------------------------------------------------- the model


def default_model() -> str:
    """`MOECLIP_MODEL`, else the folder of this file (an exported repository holds the model next to it)."""
    return os.environ.get(MODEL_ENV) or str(Path(__file__).resolve().parent)


def load_detector(model: Any, trust_remote_code: bool = True) -> Any:
    """The zero-shot-anomaly-detection pipeline of a model folder or Hub id, from the repository's remote code.

    A pipeline (anything callable with a `.model`) is returned as it is.
    """
    if callable(model) and hasattr(model, "model"):
        return model
    from transformers import pipeline

    return pipeline(TASK, model=str(model), trust_remote_code=trust_remote_code)


def class_suggestions(detector: Any) -> list[tuple[str, str]]:
    """Dropdown choices `(label, class description)` from the 14 benchmarks' classes, when the model code has them.

    The descriptions live in the prompts module the pipeline itself imports (`moeclip_hf.modeling.prompts`,
    or the flat `prompts.py` of an exported repository); without it the list is empty and free text works.
    """
    pipeline_module = importlib.import_module(type(detector).__module__)
    is_known_class = getattr(pipeline_module, "is_known_class", None)
    try:
        prompts = importlib.import_module(is_known_class.__module__)
        tables = prompts.CLASS_DESCRIPTIONS
    except (AttributeError, ImportError):
        return []
    return suggestions_from_descriptions(tables)


DATASET_NAMES = {
    "mvtec": "MVTec AD", "visa": "VisA", "btad": "BTAD", "rsdd": "RSDD", "dtd": "DTD-Synthetic",
    "brain_mri": "Brain MRI", "liver_ct": "Liver CT", "retina_oct": "Retina OCT", "head_ct": "Head CT",
    "colondb": "ColonDB", "clinicdb": "ClinicDB", "cvc300": "CVC-300", "endo": "Endo", "kvasir": "Kvasir",
}


def suggestions_from_descriptions(tables: dict[str, dict[str, str]]) -> list[tuple[str, str]]:
    """One choice per distinct description, labelled with the benchmark classes that use it."""
    users: dict[str, list[str]] = {}
    for dataset, table in tables.items():
        for class_name, description in table.items():
            users.setdefault(description, []).append(f"{DATASET_NAMES.get(dataset, dataset)} {class_name}")
    choices = []
    for description, classes in sorted(users.items(), key=lambda item: item[0].lower()):
        shown = ", ".join(classes[:3]) + (f" +{len(classes) - 3}" if len(classes) > 3 else "")
        choices.append((f"{description} ({shown})", description))
    return choices


def model_summary(detector: Any, model_name: str | None = None) -> str:
    """A Markdown line on the loaded model: name, input size and width, default threshold; a warning for toys."""
    config = detector.model.config
    vision = getattr(config, "vision_config", None)
    width = getattr(vision, "hidden_size", None)
    name = model_name or getattr(config, "_name_or_path", "") or "model"
    line = (
        f"**Model**: `{Path(str(name)).name or name}`; input {getattr(config, 'image_size', '?')} px, "
        f"vision width {width if width is not None else '?'}; default threshold {default_threshold(detector):g}."
    )
    if isinstance(width, int) and width < TINY_HIDDEN_SIZE:
        line += (
            f"\n\n⚠️ **This is a tiny model** (vision width {width} < {TINY_HIDDEN_SIZE}): it exists for tests and "
            "demos, and its scores and maps are noise."
        )
    return line


# --------------------------------------------------------------------------------------------------- the UI


def _page_report(markdown: str) -> str:
    """A report for the page: without its image links and links to files that are not shown, headings two levels down."""
    lines = [line for line in markdown.splitlines() if not line.lstrip().startswith("![")]
    text = re.sub(r"\[([^\]]+)\]\((?!https?://)[^)]*\)", r"\1", "\n".join(lines))
    return re.sub(r"^(#{1,4}) ", r"##\1 ", text, flags=re.MULTILINE)


def _lenient(image_input):
    """Make a `gr.Image` input hand an upload Pillow cannot open to the app's checks (and their message)
    instead of failing inside Gradio with Pillow's. Done on the instance: subclassing a Gradio component
    makes Gradio write a `.pyi` stub next to this file, a write outside the app's temporary folder."""
    strict = image_input.preprocess

    def preprocess(payload):
        try:
            return strict(payload)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
            return getattr(payload, "path", None)

    image_input.preprocess = preprocess
    return image_input


def _workspace(prefix: str = "moeclip-app-") -> tempfile.TemporaryDirectory:
    """The app's temporary folder, which Gradio's upload cache and every file the app writes go to."""
    workspace = tempfile.TemporaryDirectory(prefix=prefix)
    os.environ[TEMP_DIR_ENV] = workspace.name
    return workspace


def build_demo(
    detector: Any,
    *,
    suggestions: Sequence[tuple[str, str] | str] | None = None,
    explain_fn: ExplainFunction | None = None,
    overlay_fn: OverlayFunction | None = None,
    examples_fn: ExamplesFunction | None = None,
    model_name: str | None = None,
    max_bytes: int = MAX_UPLOAD_BYTES,
    max_pixels: int = MAX_PIXELS,
):
    """The Gradio Blocks of the app around one loaded pipeline.

    Creates the app's temporary folder (kept as `demo.moeclip_workspace`, a `TemporaryDirectory`) and points
    `GRADIO_TEMP_DIR` at it for this process, so Gradio's upload cache lives there; one app per process.
    Launch with [`launch_demo`] (or `demo.launch(max_file_size=..., allowed_paths=[workspace])`) and end with
    [`close_demo`].
    """
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    previous_temp_dir = os.environ.get(TEMP_DIR_ENV)
    workspace = _workspace()
    import gradio as gr

    folder = Path(workspace.name)
    default_temp_dirs: dict[str, Any] = {}
    _point_gradio_defaults_at(workspace.name, default_temp_dirs)  # Blocks already create a folder there
    if suggestions is None:
        suggestions = class_suggestions(detector)
    threshold = default_threshold(detector)
    limits = {"max_bytes": max_bytes, "max_pixels": max_pixels}
    examples = examples_fn(folder / "examples") if examples_fn is not None else []
    choices = list(suggestions)
    known = {choice[1] if isinstance(choice, tuple) else choice for choice in choices}
    for _, name in examples:  # the Examples table shows a class only when it is one of the choices
        if name not in known:
            choices.append((f"{name} (example)", name))
            known.add(name)

    def refuse(error: Exception) -> str:
        gr.Warning(str(error))
        return f"⚠️ **Refused**: {error}"

    def on_detect(image, class_name, threshold):
        try:
            picture = load_upload(image, **limits)
            analysis = run_detector(detector, picture, class_name, upload_name(image))
            score, verdict, overlaid, raw = render_analysis(analysis, _check_threshold(threshold, detector), overlay_fn)
        except UploadRejected as error:
            return None, "", None, None, refuse(error), None
        status = f"Scored `{analysis.name}` ({picture.width}x{picture.height}) as *{(class_name or '').strip() or 'object'}*."
        return score, verdict, overlaid, raw, status, analysis

    def on_threshold(analysis, threshold):
        if analysis is None:
            return gr.skip(), gr.skip(), gr.skip()
        _, verdict, overlaid, _ = render_analysis(analysis, float(threshold), overlay_fn)
        return verdict, overlaid, gr.skip()

    def on_explain(image, class_name):
        if explain_fn is None:
            return [], NO_ROUTING_TEXT, refuse(UploadRejected("routing maps are not available in this app."))
        try:
            picture = load_upload(image, **limits)
        except UploadRejected as error:
            return [], "", refuse(error)
        picture.filename = upload_name(image)  # the name the report shows, rather than a server path
        output_dir = Path(tempfile.mkdtemp(prefix="explain-", dir=folder))
        with _MODEL_LOCK:
            figures, report = explain_fn(detector, picture, (class_name or "").strip(), output_dir)
        gallery = gr.Gallery(value=figures, selected_index=0 if figures else None)  # opens the first figure large
        return gallery, _page_report(report), f"Explained `{picture.filename}`."

    def on_batch(files, class_name, threshold):
        try:
            batch = analyse_batch(detector, files, class_name, threshold, overlay_fn=overlay_fn, **limits)
        except UploadRejected as error:
            return [], [], refuse(error)
        status = f"Scored {len(batch.rows)} image(s), highest score first."
        if batch.refused:
            gr.Warning(f"{len(batch.refused)} file(s) refused; see the status below the table.")
            status += "\n\n⚠️ **Refused**:\n" + "\n".join(f"- {reason}" for reason in batch.refused)
        return batch.rows, batch.overlays, status

    intro = INTRO + "\n" + model_summary(detector, model_name)
    score_text = SCORE_TEXT.format(max_mb=f"{max_bytes / 2**20:g}", max_mp=f"{max_pixels / 1e6:g}")
    class_info = "pick a benchmark class's description from the list, or type your own words"
    with gr.Blocks(title=TITLE, analytics_enabled=False) as demo:
        gr.Markdown(intro, elem_id="intro")
        with gr.Tabs():
            with gr.Tab("Detect", id="detect"):
                with gr.Row():
                    with gr.Column():
                        image = _lenient(gr.Image(
                            type="filepath", label="Image", sources=["upload", "clipboard"], elem_id="image", height=320
                        ))
                        class_name = gr.Dropdown(
                            choices=choices, value=None, allow_custom_value=True, filterable=True,
                            label="What the image shows", info=class_info, elem_id="class-name",
                        )
                        slider = gr.Slider(0.0, 1.0, value=threshold, step=0.01, label="Threshold", elem_id="threshold")
                        detect = gr.Button("Detect anomalies", variant="primary", elem_id="detect")
                        if examples:
                            gr.Examples(examples=[list(example) for example in examples], inputs=[image, class_name],
                                        label="Examples (synthetic images)")
                    with gr.Column():
                        score = gr.Number(label="Anomaly score", precision=4, interactive=False, elem_id="score")
                        verdict = gr.Markdown(elem_id="verdict")
                        overlaid = gr.Image(label="Heat-map overlay", type="pil", format="png", interactive=False,
                                            elem_id="overlay", height=320)
                        raw = gr.Image(label="Raw anomaly map (0 black, 1 white)", type="pil", format="png",
                                       interactive=False, elem_id="raw-map", height=320)
                status = gr.Markdown(elem_id="status")
                gr.Markdown(score_text)
            with gr.Tab("Routing", id="routing"):
                gr.Markdown(ROUTING_TEXT if explain_fn is not None else NO_ROUTING_TEXT)
                explain = gr.Button("Explain the image of the Detect tab", elem_id="explain",
                                    interactive=explain_fn is not None)
                explain_status = gr.Markdown(elem_id="explain-status")
                figures = gr.Gallery(label="Routing and per-layer anomaly maps", columns=1, format="png",
                                     object_fit="contain", preview=True, elem_id="routing-maps", height=820)
                report = gr.Markdown(elem_id="routing-report")
            with gr.Tab("Batch", id="batch"):
                gr.Markdown(f"Score several images of one class (at most {MAX_BATCH_FILES}); the table is sorted by "
                            "score, highest first.")
                with gr.Row():
                    # No `file_types`: Gradio would refuse the whole batch for one odd file; the app's own
                    # checks refuse that file alone, with its reason.
                    files = gr.File(file_count="multiple", type="filepath", label="Images", elem_id="batch-files")
                    with gr.Column():
                        batch_class = gr.Dropdown(
                            choices=choices, value=None, allow_custom_value=True, filterable=True,
                            label="What the images show", info=class_info, elem_id="batch-class-name",
                        )
                        batch_slider = gr.Slider(0.0, 1.0, value=threshold, step=0.01, label="Threshold")
                        batch_button = gr.Button("Score all", variant="primary", elem_id="batch-run")
                batch_status = gr.Markdown(elem_id="batch-status")
                table = gr.Dataframe(headers=list(BatchResult.HEADERS), datatype=["number", "str", "number", "str"],
                                     interactive=False, elem_id="batch-table", label="Results")
                batch_gallery = gr.Gallery(label="Overlays, highest score first", columns=4, format="png",
                                           elem_id="batch-overlays")
        state = gr.State(None)
        detect.click(on_detect, [image, class_name, slider], [score, verdict, overlaid, raw, status, state])
        slider.change(on_threshold, [state, slider], [verdict, overlaid, status])
        explain.click(on_explain, [image, class_name], [figures, report, explain_status])
        batch_button.click(on_batch, [files, batch_class, batch_slider], [table, batch_gallery, batch_status])

    demo.moeclip_workspace = workspace
    demo.moeclip_default_temp_dirs = default_temp_dirs
    demo.moeclip_previous_temp_dir = previous_temp_dir
    demo.moeclip_max_bytes = max_bytes
    return demo


#: Gradio modules that read `GRADIO_TEMP_DIR` once, at import, into `DEFAULT_TEMP_DIR`; the server creates a
#: folder there at start. Where gradio was imported before the app was built, that would be outside its folder.
_GRADIO_DEFAULT_TEMP_DIRS = ("gradio.route_utils", "gradio.routes")


def _point_gradio_defaults_at(folder: str | None, saved: dict[str, Any]) -> None:
    """Set (or, with `folder=None`, restore) the import-time temporary folder of Gradio's server modules.

    `saved` keeps the values found the first time, for the restore.
    """
    for name in _GRADIO_DEFAULT_TEMP_DIRS:
        module = sys.modules.get(name)
        if module is None or not hasattr(module, "DEFAULT_TEMP_DIR"):
            continue
        if folder is None:
            if name in saved:
                module.DEFAULT_TEMP_DIR = saved.pop(name)
        else:
            saved.setdefault(name, module.DEFAULT_TEMP_DIR)
            module.DEFAULT_TEMP_DIR = folder


def launch_demo(demo, host: str | None = None, port: int | None = None, **kwargs):
    """`demo.launch` with the app's limits: no share link, uploads capped and cached in the app's folder.

    `host` and `port` default to Gradio's (`GRADIO_SERVER_NAME`, `GRADIO_SERVER_PORT`, else 127.0.0.1:7860).
    """
    workspace = demo.moeclip_workspace.name
    os.environ[TEMP_DIR_ENV] = workspace
    _point_gradio_defaults_at(workspace, demo.moeclip_default_temp_dirs)
    options = {
        "server_name": host,
        "server_port": port,
        "share": False,
        "max_file_size": demo.moeclip_max_bytes,
        "allowed_paths": [workspace],
        "show_error": True,
        "ssr_mode": False,
        "enable_monitoring": False,
        **kwargs,
    }
    return demo.launch(**options)


def close_demo(demo) -> None:
    """Stop the server (when launched), delete the app's folder and restore `GRADIO_TEMP_DIR`."""
    try:
        demo.close()
    finally:
        _point_gradio_defaults_at(None, demo.moeclip_default_temp_dirs)
        if os.environ.get(TEMP_DIR_ENV) == demo.moeclip_workspace.name:
            if demo.moeclip_previous_temp_dir is None:
                os.environ.pop(TEMP_DIR_ENV, None)
            else:
                os.environ[TEMP_DIR_ENV] = demo.moeclip_previous_temp_dir
        demo.moeclip_workspace.cleanup()


def create_app(model: Any = None):
    """The app for `model` (default: `default_model()`): the `moeclip_hf` app where that package is installed,
    otherwise this file's app on the repository's remote code (without the routing tab)."""
    model = model if model is not None else default_model()
    try:  # by name, so that the file holds no import of the package (the export's checks look for none)
        package_app = importlib.import_module("moeclip_hf.app.serve")
    except ImportError:
        return build_demo(load_detector(model), model_name=str(model))
    return package_app.build_app(model)


if __name__ == "__main__":
    launch_demo(create_app())
