"""The web app without a browser: inference, upload checks, the server's temporary folder, the Space app, `serve`.

The file is long because it is one subject's whole specification; its sections follow the entry points.
"""

import argparse
import ast
import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from moeclip_hf import MoECLIPModel, hub
from moeclip_hf.benchmarks import BENCHMARKS
from moeclip_hf.app import scoring, serve, ui, uploads
from moeclip_hf.hub.remote_code import bundle_source
from moeclip_hf.testing import BLOCK_PACKAGE_IMPORTS, randomize_moe, tiny_config, tiny_processor
from moeclip_hf.inference.visualization import overlay

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
needs_gradio = pytest.mark.skipif(
    importlib.util.find_spec("gradio") is None, reason='the app needs gradio: pip install "moeclip-hf[app]"'
)


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-moeclip")
    randomize_moe(MoECLIPModel(tiny_config())).save_pretrained(folder)
    tiny_processor().save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def detector(saved_model):
    return serve.load_detector(saved_model)


class Spy:
    """A pipeline stand-in that records whether it was called."""

    def __init__(self, detector):
        self.detector, self.model, self.calls = detector, detector.model, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.detector(*args, **kwargs)


def picture(width=90, height=60, seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def save(image: Image.Image, path: Path, **kwargs) -> Path:
    image.save(path, **kwargs)
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def files_under(folder: Path) -> set[Path]:
    return {path for path in folder.rglob("*") if path.is_file()} if folder.exists() else set()


# -------------------------------------------------------------------------------------------- inference


def test_analyse_image_gives_the_pipelines_score_and_maps_of_the_images_size(detector, tmp_path):
    path = save(picture(), tmp_path / "part.png")
    score, verdict, overlaid, raw = scoring.analyse_image(detector, str(path), "bottle", 0.5)
    expected = detector(str(path), class_name="bottle")
    assert score == pytest.approx(expected["score"], abs=1e-7)
    assert raw.mode == "L" and raw.size == (90, 60)
    assert np.array_equal(np.asarray(raw), np.asarray(expected["anomaly_map"]))
    assert overlaid.mode == "RGB" and overlaid.size == (90, 60)
    assert verdict.startswith("**ANOMALOUS**" if score >= 0.5 else "**normal**") and f"{score:.4f}" in verdict


def test_the_overlay_is_the_one_moeclip_detect_draws(detector, tmp_path):
    path = save(picture(seed=3), tmp_path / "part.png")
    _, _, overlaid, raw = scoring.analyse_image(detector, path, "screw", 0.4)
    values = detector(str(path), class_name="screw", output_format="array")["anomaly_map"]
    expected = overlay(picture(seed=3), values, 0.4)  # the contour on the float map, not its 8-bit picture
    assert np.array_equal(np.asarray(overlaid), np.asarray(expected))


def test_the_verdict_follows_the_threshold_and_defaults_to_the_models(detector):
    score, verdict, _, _ = scoring.analyse_image(detector, picture(), "bottle")
    assert f"threshold {detector.model.config.anomaly_threshold:.2f}" in verdict
    assert scoring.analyse_image(detector, picture(), "bottle", 0.0)[1].startswith("**ANOMALOUS**")
    assert scoring.analyse_image(detector, picture(), "bottle", min(1.0, score + 0.01))[1].startswith("**normal**")
    with pytest.raises(uploads.UploadRejected, match="threshold"):
        scoring.analyse_image(detector, picture(), "bottle", 1.5)


def test_pil_images_any_mode_and_empty_class_names_are_accepted(detector):
    grey16 = Image.fromarray((np.arange(64 * 48, dtype=np.uint16).reshape(48, 64) * 7))
    score, _, overlaid, _ = scoring.analyse_image(detector, grey16, "", 0.5)
    assert 0.0 <= score <= 1.0 and overlaid.size == (64, 48)
    rgba = picture().convert("RGBA")
    assert scoring.analyse_image(detector, rgba, "bottle")[0] == pytest.approx(
        detector(picture(), class_name="bottle")["score"], abs=1e-6
    )


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda folder: folder / "missing.png", "missing on the server"),
        (lambda folder: save_bytes(folder / "empty.png", b""), "empty file"),
        (lambda folder: save_bytes(folder / "notes.png", b"plain text, not pixels"), "notes.png: not a PNG, JPEG"),
        (lambda folder: save_bytes(folder / "cut.png", png_bytes(picture())[:200]), "cut.png: not a PNG, JPEG"),
        (lambda folder: save(picture(), folder / "part.ppm"), "not a PNG, JPEG"),  # Pillow reads PPM; the app does not
    ],
)
def test_non_images_are_refused_with_a_message_before_the_model_runs(detector, tmp_path, make, message):
    spy = Spy(detector)
    with pytest.raises(uploads.UploadRejected, match=message) as refusal:
        scoring.analyse_image(spy, make(tmp_path), "bottle", 0.5)
    assert spy.calls == 0
    assert str(tmp_path) not in str(refusal.value)  # the page shows file names, never server paths


def test_no_image_is_refused_with_a_message(detector):
    with pytest.raises(uploads.UploadRejected, match="No image"):
        scoring.analyse_image(detector, None, "bottle")


def test_uploads_over_20_mb_are_refused_before_decoding(detector, tmp_path):
    big = save(Image.new("RGB", (2700, 2700)), tmp_path / "big.bmp")  # 21.9 MB uncompressed, 7.3 megapixels
    assert big.stat().st_size > uploads.MAX_UPLOAD_BYTES == 20 * 2**20
    spy = Spy(detector)
    with pytest.raises(uploads.UploadRejected, match=r"MB, more than the limit of 20 MB"):
        scoring.analyse_image(spy, big, "bottle")
    assert spy.calls == 0


def test_images_over_50_megapixels_are_refused_from_their_header(detector, tmp_path, monkeypatch):
    huge = save(Image.new("L", (8000, 6400)), tmp_path / "huge.png")  # 51.2 megapixels, a small file
    assert huge.stat().st_size < uploads.MAX_UPLOAD_BYTES and uploads.MAX_PIXELS == 50_000_000
    decoded = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self, *args: decoded.append(self) or None)
    with pytest.raises(uploads.UploadRejected, match=r"8000x6400 pixels \(51.2 megapixels\), more than the limit of 50 megapixels"):
        scoring.analyse_image(detector, huge, "bottle")
    assert decoded == []
    with pytest.raises(uploads.UploadRejected, match="megapixels"):
        scoring.analyse_image(detector, Image.new("RGB", (100, 100)), "bottle", max_pixels=99 * 100)


def test_a_batch_is_sorted_by_score_and_lists_the_refused_files(detector, tmp_path):
    paths = [save(picture(64 + 8 * index, 48, seed=index), tmp_path / f"part{index}.png") for index in range(4)]
    notes = save_bytes(tmp_path / "notes.txt", b"not an image")
    batch = scoring.analyse_batch(detector, [*paths[:2], notes, *paths[2:]], "bottle", 0.5)
    assert [row[0] for row in batch.rows] == [1, 2, 3, 4]
    scores = [row[2] for row in batch.rows]
    assert scores == sorted(scores, reverse=True)
    expected = {path.name: round(detector(str(path), class_name="bottle")["score"], 4) for path in paths}
    assert {row[1]: row[2] for row in batch.rows} == expected
    assert all(row[3] == ("ANOMALOUS" if row[2] >= 0.5 else "normal") for row in batch.rows)
    assert [caption.split(".")[0] for _, caption in batch.overlays] == ["1", "2", "3", "4"]
    assert len(batch.refused) == 1 and "notes.txt" in batch.refused[0]
    with pytest.raises(uploads.UploadRejected, match="No images"):
        scoring.analyse_batch(detector, [], "bottle")
    with pytest.raises(uploads.UploadRejected, match="more than the 2"):
        scoring.analyse_batch(detector, paths[:3], "bottle", max_files=2)


def test_routing_figures_come_from_moeclip_explain(detector, tmp_path):
    figures, report = serve.explain_routing(detector, picture(), "bottle", tmp_path)
    layers = detector.model.config.moe_config.layers
    assert [caption for _, caption in figures] == [f"patch routing, MoE layer {layer}" for layer in layers] + [
        "anomaly maps per feature layer and scale"
    ]
    assert all(isinstance(figure, Image.Image) and figure.width > 100 for figure, _ in figures)
    assert "# MoECLIP explanation" in report
    assert {path.parent for path in tmp_path.rglob("*.png")} == {tmp_path}


def test_class_suggestions_cover_the_benchmarks_descriptions():
    values = [value for _, value in scoring.class_suggestions()]
    assert "metal nut which has four notched edges" in values and "dark bottle" in values
    assert len(values) == len(set(values))
    assert any(f"{BENCHMARKS['mvtec'].display_name} metal_nut" in label for label, _ in scoring.class_suggestions())


# -------------------------------------------------------------------------------------------- the server

def copies_elsewhere(name: str, roots: list[Path], excluded: list[Path]) -> list[Path]:
    """Files called `name` under `roots` (not following links), outside the `excluded` folders, .venv and .git."""
    skip = {str(path.resolve()) for path in excluded}
    found = []
    for root in roots:
        for folder, subfolders, files in os.walk(root):
            subfolders[:] = [
                sub for sub in subfolders
                if sub not in (".venv", ".git", ".ci-venv") and str(Path(folder, sub).resolve()) not in skip
            ]
            found += [Path(folder, file) for file in files if file == name]
    return found


@pytest.fixture(scope="module")
def served(detector):
    """The app on a free loopback port."""
    demo = serve.build_app(detector)
    port = free_port()
    serve.launch(demo, port=port, prevent_thread_lock=True, quiet=True)
    yield demo, f"http://127.0.0.1:{port}/"
    ui.close_demo(demo)
    assert not Path(demo.moeclip_workspace.name).exists()


@pytest.fixture(scope="module")
def client(served):
    from gradio_client import Client

    return Client(served[1], analytics_enabled=False, verbose=False)


@needs_gradio
def test_the_app_owns_a_temporary_folder_that_gradios_cache_points_to(served):
    demo, _ = served
    workspace = Path(demo.moeclip_workspace.name)
    assert workspace.is_dir() and workspace.name.startswith("moeclip-app-")
    assert os.environ["GRADIO_TEMP_DIR"] == str(workspace)
    package = Path(serve.__file__).parents[1]
    assert not list(package.rglob("*.pyi")), "Gradio wrote stubs into the package"  # e.g. for a component subclass
    assert sorted(path.name for path in (workspace / "examples").iterdir()) == [
        "checkers_hole.png", "hex_nut_scratch.png", "tablet_good.png"
    ]


@needs_gradio
def test_apps_started_one_after_another_each_delete_their_folder_and_restore_the_setting(detector, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", "/nonexistent/previous-setting")
    workspaces = []
    for _ in range(2):
        demo = serve.build_app(detector, examples=False)
        workspaces.append(Path(demo.moeclip_workspace.name))
        assert os.environ["GRADIO_TEMP_DIR"] == str(workspaces[-1])
        serve.launch(demo, port=free_port(), prevent_thread_lock=True, quiet=True)
        ui.close_demo(demo)
        assert os.environ["GRADIO_TEMP_DIR"] == "/nonexistent/previous-setting"
    assert workspaces[0] != workspaces[1] and not any(workspace.exists() for workspace in workspaces)


@needs_gradio
def test_uploads_land_only_in_the_apps_temporary_folder(served, client, tmp_path):
    import httpx
    from gradio_client import handle_file

    demo, url = served
    workspace = Path(demo.moeclip_workspace.name)
    probe = f"upload-probe-{uuid.uuid4().hex}.png"  # a name no earlier run left anywhere
    path = save(picture(), tmp_path / probe)
    with path.open("rb") as handle:
        response = httpx.post(url + "gradio_api/upload", files={"files": (probe, handle, "image/png")})
    assert response.status_code == 200
    (stored,) = response.json()
    assert Path(stored).resolve().is_relative_to(workspace.resolve()) and Path(stored).read_bytes() == path.read_bytes()

    score, verdict, overlay_path, raw_path, status = client.predict(
        handle_file(str(path)), "bottle", 0.5, api_name="/on_detect"
    )
    for output in (overlay_path, raw_path):
        assert Path(output).resolve().is_relative_to(workspace.resolve())
    _, report, _ = client.predict(handle_file(str(path)), "bottle", api_name="/on_explain")
    assert any(workspace.glob("explain-*/routing_layer*.png"))
    assert f"explanation of `{probe}`" in report and str(workspace) not in report  # no server paths on the page
    copies = [file for file in files_under(workspace) if file.name == probe]
    assert copies and all(file.read_bytes() == path.read_bytes() for file in copies)
    roots = [Path(tempfile.gettempdir()), Path.cwd(), Path.home() / ".cache"]
    assert copies_elsewhere(probe, roots, excluded=[workspace, tmp_path]) == []


@needs_gradio
def test_the_served_app_scores_like_the_pipeline(served, client, detector, tmp_path):
    from gradio_client import handle_file

    path = save(picture(seed=5), tmp_path / "part.png")
    score, verdict, overlay_path, raw_path, status = client.predict(handle_file(str(path)), "bottle", 0.5, api_name="/on_detect")
    assert score == pytest.approx(detector(str(path), class_name="bottle")["score"], abs=1e-4)
    assert Image.open(overlay_path).size == (90, 60) and "Scored `part.png`" in status


@needs_gradio
def test_the_served_app_refuses_non_images_and_oversized_uploads_with_a_message(served, client, tmp_path):
    import httpx
    from gradio_client import handle_file

    notes = save_bytes(tmp_path / "notes.txt", b"plain text, not pixels")
    score, verdict, overlay_path, raw_path, status = client.predict(handle_file(str(notes)), "bottle", 0.5, api_name="/on_detect")
    assert score is None and overlay_path is None and status.startswith("⚠️ **Refused**") and "cannot read image notes.txt: not a PNG, JPEG" in status
    rows, _, batch_status = client.predict(
        [handle_file(str(save(picture(), tmp_path / "ok.png"))), handle_file(str(notes))], "bottle", 0.5, api_name="/on_batch"
    )
    assert [row[1] for row in rows["data"]] == ["ok.png"] and "notes.txt" in batch_status
    oversized = tmp_path / "big.bin"
    oversized.write_bytes(b"\0" * (uploads.MAX_UPLOAD_BYTES + 1))
    with oversized.open("rb") as handle:
        response = httpx.post(served[1] + "gradio_api/upload", files={"files": ("big.png", handle, "image/png")})
    assert response.status_code == 413


# --------------------------------------------------------------------------------------- the Space app

SPACE_SCRIPT = textwrap.dedent(
    '''
    import json, os, socket, sys

    folder, image_path, out = sys.argv[1:4]
    os.environ["MOECLIP_MODEL"] = folder
    sys.path.insert(0, folder)
    import app as space

    import httpx

    demo = space.create_app()
    report = {"workspace": demo.moeclip_workspace.name, "temp_dir": os.environ["GRADIO_TEMP_DIR"]}
    detector = space.load_remote_detector(folder)
    report["pipeline_module"] = type(detector).__module__
    report["suggestions"] = len(space.class_suggestions())
    score, verdict, overlay, raw = space.analyse_image(detector, image_path, "bottle", 0.5)
    overlay.save(os.path.join(out, "space-overlay.png"))
    raw.save(os.path.join(out, "space-raw.png"))
    report.update(score=score, verdict=verdict)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    space.launch_demo(demo, host="127.0.0.1", port=port, prevent_thread_lock=True, quiet=True)
    page = httpx.get(f"http://127.0.0.1:{port}/")
    config = httpx.get(f"http://127.0.0.1:{port}/config").json()
    report["status"] = page.status_code
    texts = [component.get("props", {}).get("value") for component in config["components"]]
    report["routing_note"] = any(isinstance(text, str) and "Routing maps need the `moeclip-hf` package" in text for text in texts)
    space.close_demo(demo)
    report["package_importable"] = "moeclip_hf" in sys.modules
    with open(os.path.join(out, "report.json"), "w") as handle:
        json.dump(report, handle)
    '''
)
SPACE_SCRIPT = BLOCK_PACKAGE_IMPORTS + SPACE_SCRIPT


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export")
    return hub.export_model(randomize_moe(MoECLIPModel(tiny_config())), folder, processor=tiny_processor())


def test_the_space_app_is_generated_from_the_package_and_imports_nothing_from_it(exported):
    source = (exported / "app.py").read_text()
    assert source == bundle_source("moeclip_hf.app.space")
    for module in ("app/ui.py", "app/scoring.py", "app/uploads.py", "image_io.py", "inference/visualization.py"):
        assert f"moeclip_hf/{module}" in source  # the app's logic has one home: these package modules
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            assert not any(alias.name.split(".")[0] == "moeclip_hf" for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0 and (node.module or "").split(".")[0] != "moeclip_hf"
    assert "importlib" not in source  # no way back into the package


@needs_gradio
def test_the_space_app_runs_without_the_package_and_scores_as_moeclip_serve(exported, detector, tmp_path):
    image_path = save(picture(), tmp_path / "part.png")
    script = tmp_path / "space_check.py"
    script.write_text(SPACE_SCRIPT)
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "GRADIO_TEMP_DIR")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"))
    completed = subprocess.run(
        [sys.executable, str(script), str(exported), str(image_path), str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    assert not list(exported.glob("*.pyi")), "the app wrote into the exported repository"
    report = json.loads((tmp_path / "report.json").read_text())
    assert not report["package_importable"]
    assert not report["pipeline_module"].startswith("moeclip_hf")
    # `moeclip serve` on the same folder: the package's own pipeline and app code
    served_detector = serve.load_detector(exported)
    assert type(served_detector).__module__ == "moeclip_hf.inference.pipeline"
    score, verdict, overlaid, raw = scoring.analyse_image(served_detector, image_path, "bottle", 0.5)
    assert report["score"] == pytest.approx(score, abs=1e-6) and report["verdict"] == verdict
    assert np.array_equal(np.asarray(Image.open(tmp_path / "space-raw.png")), np.asarray(raw))
    assert np.array_equal(np.asarray(Image.open(tmp_path / "space-overlay.png")), np.asarray(overlaid))
    assert report["suggestions"] == len(scoring.class_suggestions()) > 30
    assert report["temp_dir"] == report["workspace"] and not Path(report["workspace"]).exists()
    assert report["status"] == 200 and report["routing_note"]


# ------------------------------------------------------------------------------------------ moeclip serve


def serve_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="moeclip")
    serve.add_serve_parser(parser.add_subparsers())
    return parser


def test_serve_defaults_to_loopback_port_7860():
    args = serve_parser().parse_args(["serve", "--model", "some/folder"])
    assert (args.model, args.host, args.port, args.no_examples, args.run) == ("some/folder", "127.0.0.1", 7860, False, serve.run_serve)
    assert serve.is_loopback("127.0.0.1") and serve.is_loopback("localhost") and serve.is_loopback("::1")
    assert not serve.is_loopback("0.0.0.0")


SERVE_SCRIPT = textwrap.dedent(
    """
    import argparse, sys
    from moeclip_hf.app import serve

    build_app = serve.build_app

    def announcing_build_app(*args, **kwargs):
        demo = build_app(*args, **kwargs)
        print("WORKSPACE", demo.moeclip_workspace.name, flush=True)
        return demo

    serve.build_app = announcing_build_app
    parser = argparse.ArgumentParser(prog="moeclip")
    serve.add_serve_parser(parser.add_subparsers())
    args = parser.parse_args(["serve", *sys.argv[1:]])
    sys.exit(args.run(args))
    """
)


@needs_gradio
def test_serve_serves_on_loopback_until_interrupted_then_deletes_its_folder(saved_model, tmp_path):
    """`moeclip serve` in its own process: it answers on loopback, writes nothing outside its folder (a private
    TMPDIR stays empty once it has exited), and Ctrl-C ends it cleanly.

    The server's output goes to a file, not a pipe: a pipe nobody reads fills up, and a server blocked on a full
    pipe never sees Ctrl-C through (the test once waited more than 60 s for that).
    """
    import signal
    import time

    import httpx

    port = free_port()
    script = tmp_path / "serve.py"
    script.write_text(SERVE_SCRIPT)
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    log = tmp_path / "serve.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TMPDIR": str(private_tmp)}
    env.pop("GRADIO_TEMP_DIR", None)
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, str(script), "--model", str(saved_model), "--port", str(port), "--no-examples"],
            stdout=output, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path,
        )
    try:
        deadline = time.monotonic() + 120
        while "Running on local URL" not in log.read_text() and time.monotonic() < deadline:
            assert process.poll() is None, f"moeclip serve exited early:\n{log.read_text()[-3000:]}"
            time.sleep(0.2)
        workspaces = [line.split(maxsplit=1)[1].strip() for line in log.read_text().splitlines() if line.startswith("WORKSPACE")]
        page = httpx.get(f"http://127.0.0.1:{port}/", timeout=30)
        assert page.status_code == 200 and "MoECLIP" in page.text
        (workspace,) = map(Path, workspaces)
        assert workspace.is_dir() and workspace.parent == private_tmp
        assert not (workspace / "examples").exists()
        assert [path.name for path in private_tmp.iterdir()] == [workspace.name]  # Gradio's own folders inside it
    finally:
        process.send_signal(signal.SIGINT)
        try:
            code = process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert code == 0, log.read_text()[-3000:]
    assert not workspace.exists() and list(private_tmp.iterdir()) == []


def test_serve_without_gradio_says_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "gradio", None)
    args = serve_parser().parse_args(["serve", "--model", "x"])
    assert serve.run_serve(args) == 1
    assert 'pip install "moeclip-hf[app]"' in capsys.readouterr().err


def test_serve_refuses_a_missing_model_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="model not found"):
        serve.load_detector(str(tmp_path / "nothing-here"))


# --------------------------------------------------------------------------------------------- helpers


def png_bytes(image: Image.Image) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def save_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
