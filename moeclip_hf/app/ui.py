"""The web app's page: upload an image, name what it shows, see the anomaly score, verdict and maps.

The Gradio Blocks are the same for `moeclip serve` (`moeclip_hf.app.serve`) and for the Space of an exported
repository (`moeclip_hf.app.space`, bundled into its `app.py`); they differ only in the detector and in the
optional routing tab (`explain_fn`) and example images (`examples_fn`).

Everything the app or Gradio writes (uploads, result images, explanation figures) goes to one
`tempfile.TemporaryDirectory` that the app owns and deletes when it is closed: `GRADIO_TEMP_DIR`, Gradio's
documented setting, points there. Gradio reads that variable for its upload cache when a request comes, and
once, at import, for a few folders of its own (an empty `vibe_edit_history`, made when the server starts);
`moeclip serve` and the Space create the folder before gradio is imported, so those land in it too.
Non-images reach the app's own checks, and their message, because the events take the raw upload
(`preprocess=False`, a documented event option) instead of letting `gr.Image` decode it.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from .scoring import (
    MODEL_LOCK,
    BatchResult,
    analyse_batch,
    check_threshold,
    class_suggestions,
    default_threshold,
    model_summary,
    render_analysis,
    run_detector,
)
from .uploads import MAX_BATCH_FILES, MAX_PIXELS, MAX_UPLOAD_BYTES, UploadRejected, load_upload, upload_name

TEMP_DIR_ENV = "GRADIO_TEMP_DIR"

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
Routing maps need the `moeclip-hf` package: `pip install "moeclip-hf[app]"` and run
`moeclip serve --model <this repository>` for the app with its routing tab.
"""

#: `(detector, RGB image, class name, output folder) -> ([(figure, caption), ...], markdown report)`.
ExplainFunction = Callable[[Any, Image.Image, str, Path], tuple[list[tuple[Image.Image, str]], str]]
#: `(folder) -> [(image path, class name), ...]`: writes example images into the app's folder.
ExamplesFunction = Callable[[Path], list[tuple[str, str]]]


def _page_report(markdown: str) -> str:
    """A report for the page: without its image links and links to files that are not shown, headings two levels down."""
    lines = [line for line in markdown.splitlines() if not line.lstrip().startswith("![")]
    text = re.sub(r"\[([^\]]+)\]\((?!https?://)[^)]*\)", r"\1", "\n".join(lines))
    return re.sub(r"^(#{1,4}) ", r"##\1 ", text, flags=re.MULTILINE)


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
    if suggestions is None:
        suggestions = class_suggestions()
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
            score, verdict, overlaid, raw = render_analysis(analysis, check_threshold(threshold, detector))
        except UploadRejected as error:
            return None, "", None, None, refuse(error), None
        status = f"Scored `{analysis.name}` ({picture.width}x{picture.height}) as *{(class_name or '').strip() or 'object'}*."
        return score, verdict, overlaid, raw, status, analysis

    def on_threshold(analysis, threshold):
        if analysis is None:
            return gr.skip(), gr.skip(), gr.skip()
        _, verdict, overlaid, _ = render_analysis(analysis, float(threshold))
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
        with MODEL_LOCK:
            figures, report = explain_fn(detector, picture, (class_name or "").strip(), output_dir)
        gallery = gr.Gallery(value=figures, selected_index=0 if figures else None)  # opens the first figure large
        return gallery, _page_report(report), f"Explained `{picture.filename}`."

    def on_batch(files, class_name, threshold):
        try:
            batch = analyse_batch(detector, files, class_name, threshold, **limits)
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
                        image = gr.Image(
                            type="filepath", label="Image", sources=["upload", "clipboard"], elem_id="image", height=320
                        )
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
        # preprocess=False: the handlers get the raw upload (a file payload with its path and name), so that
        # the app's own checks, not Gradio's decoding, judge it and word the refusal.
        detect.click(
            on_detect, [image, class_name, slider], [score, verdict, overlaid, raw, status, state], preprocess=False
        )
        slider.change(on_threshold, [state, slider], [verdict, overlaid, status])
        explain.click(on_explain, [image, class_name], [figures, report, explain_status], preprocess=False)
        batch_button.click(
            on_batch, [files, batch_class, batch_slider], [table, batch_gallery, batch_status], preprocess=False
        )

    demo.moeclip_workspace = workspace
    demo.moeclip_previous_temp_dir = previous_temp_dir
    demo.moeclip_max_bytes = max_bytes
    return demo


def launch_demo(demo, host: str | None = None, port: int | None = None, **kwargs):
    """`demo.launch` with the app's limits: no share link, uploads capped and cached in the app's folder.

    `host` and `port` default to Gradio's (`GRADIO_SERVER_NAME`, `GRADIO_SERVER_PORT`, else 127.0.0.1:7860).
    """
    workspace = demo.moeclip_workspace.name
    os.environ[TEMP_DIR_ENV] = workspace
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
        if os.environ.get(TEMP_DIR_ENV) == demo.moeclip_workspace.name:
            if demo.moeclip_previous_temp_dir is None:
                os.environ.pop(TEMP_DIR_ENV, None)
            else:
                os.environ[TEMP_DIR_ENV] = demo.moeclip_previous_temp_dir
        demo.moeclip_workspace.cleanup()


__all__ = ["TEMP_DIR_ENV", "build_demo", "close_demo", "launch_demo"]
