"""The web app end to end: headless Chromium (through Playwright) drives `moeclip serve`'s page on loopback.

Needs Debian's Chromium at /usr/bin/chromium and the `playwright` Python package (Playwright's own browser
download is not used). The browser never reaches the network: every request to anything but the app's
loopback address is aborted (and recorded), host names do not resolve, and background services are off.
Screenshots go to the test's tmp_path and, when MOECLIP_SCREENSHOT_DIR is set, into that folder too.
"""

import importlib.util
import os
import shutil
import socket
from pathlib import Path

import pytest
from PIL import Image

from moeclip_hf.data.synthetic import render
from moeclip_hf.testing import save_tiny_model

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT_DIR_ENV = "MOECLIP_SCREENSHOT_DIR"
TIMEOUT_MS = 30_000
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--no-pings",
    "--disable-breakpad",
    "--disable-crash-reporter",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]

missing = [
    reason
    for reason, absent in (
        (f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)", not CHROMIUM.is_file()),
        ("the playwright package is not installed (pip install playwright)", importlib.util.find_spec("playwright") is None),
        ('gradio is not installed (pip install "moeclip-hf[app]")', importlib.util.find_spec("gradio") is None),
    )
    if absent
]
pytestmark = pytest.mark.skipif(bool(missing), reason="; ".join(missing))

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("tiny-moeclip"))


@pytest.fixture(scope="module")
def server(saved_model):
    from moeclip_hf.app import serve, ui

    demo = serve.build_app(str(saved_model))
    port = free_port()
    serve.launch(demo, host="127.0.0.1", port=port, prevent_thread_lock=True, quiet=True)
    yield demo, f"http://127.0.0.1:{port}"
    ui.close_demo(demo)


@pytest.fixture()
def page(tmp_path, server):
    from playwright.sync_api import sync_playwright

    _, origin = server
    blocked = []

    def only_the_app(route):
        if route.request.url.startswith(origin + "/") or route.request.url == origin:
            return route.continue_()
        blocked.append(route.request.url)
        return route.abort()

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),  # a fresh profile for every run
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
            # Chromium keeps its crash database under $XDG_CONFIG_HOME whatever the profile: keep it in tmp_path too.
            env={**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "xdg-config"), "XDG_CACHE_HOME": str(tmp_path / "xdg-cache")},
            service_workers="block",
        )
        context.set_default_timeout(TIMEOUT_MS)
        context.route("**/*", only_the_app)
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.blocked_requests = blocked
            yield page
        finally:
            context.close()


def screenshot(page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    folder = os.environ.get(SCREENSHOT_DIR_ENV)
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, Path(folder) / name)
    return path


def test_upload_name_the_class_and_see_score_verdict_overlay_and_routing(page, server, saved_model, tmp_path):
    from transformers import pipeline

    import moeclip_hf

    moeclip_hf.register()  # the task, for transformers' `pipeline`

    demo, origin = server
    workspace = Path(demo.moeclip_workspace.name)
    image_path = tmp_path / "hex-nut-scratch.png"
    Image.fromarray(render("hex_nut", "scratch", image_size=192, seed=7).image).save(image_path)

    page.goto(origin + "/")
    page.get_by_text("What the numbers mean").wait_for()
    page.locator("#image input[type=file]").set_input_files(str(image_path))
    page.locator("#image img").first.wait_for()
    class_box = page.locator("#class-name input")
    class_box.fill("hex nut")
    class_box.press("Escape")  # keeps the typed text (allow_custom_value) and closes the list of suggestions
    page.locator("#detect").click()

    score_box = page.locator("#score input")
    page.wait_for_function("() => document.querySelector('#score input')?.value !== ''", timeout=TIMEOUT_MS)
    page.locator("#overlay img").wait_for()
    page.locator("#raw-map img").wait_for()
    shown = float(score_box.input_value())
    expected = pipeline("zero-shot-anomaly-detection", model=str(saved_model))(str(image_path), class_name="hex nut")
    assert shown == pytest.approx(expected["score"], abs=1e-4)
    verdict = page.locator("#verdict").inner_text()
    assert ("ANOMALOUS" if expected["score"] >= 0.5 else "normal") in verdict and f"{shown:.4f}" in verdict
    assert "as hex nut" in page.locator("#status").inner_text()
    overlay_src = page.locator("#overlay img").get_attribute("src")
    assert overlay_src.startswith(origin)
    assert any(path.name == image_path.name for path in workspace.rglob("*.png"))  # the upload, in the app's folder
    page.locator("#intro").click()  # nothing focused in the picture
    assert page.locator("#class-name [role=listbox]").count() == 0  # the list of suggestions is closed
    shot = screenshot(page, tmp_path, "screenshot-app.png")
    assert Image.open(shot).size[0] == 1280

    threshold_box = page.locator("#threshold input[type=number]")
    for threshold, word in ((0.0, "ANOMALOUS"), (1.0, "normal")):  # the verdict follows the slider, no new run
        threshold_box.fill(str(threshold))
        threshold_box.press("Enter")
        page.locator("#verdict").get_by_text(f"threshold {threshold:.2f}").wait_for()
        assert page.locator("#verdict").inner_text().startswith(word)

    page.get_by_role("tab", name="Routing").click()
    page.locator("#explain").click()
    page.locator("#routing-maps img").first.wait_for()
    report = page.locator("#routing-report").inner_text()
    assert f"MoECLIP explanation of {image_path.name}" in report and str(workspace) not in report
    screenshot(page, tmp_path, "screenshot-app-routing.png")
    assert page.blocked_requests == [], page.blocked_requests


def test_non_images_and_oversized_uploads_are_refused_with_a_message_on_the_page(page, server, tmp_path):
    demo, origin = server
    workspace = demo.moeclip_workspace.name
    notes = tmp_path / "notes.png"
    notes.write_bytes(b"plain text, not pixels")
    big = tmp_path / "big.bmp"
    Image.new("RGB", (2700, 2700)).save(big)  # 21.9 MB
    page.goto(origin + "/")
    page.locator("#image input[type=file]").set_input_files(str(big))
    page.get_by_text("exceed the maximum allowed size of 20.0 Mb").wait_for()

    page.reload()
    page.locator("#image input[type=file]").set_input_files(str(notes))
    page.locator("#detect").click()
    page.locator("#status").get_by_text("Refused").wait_for()
    status = page.locator("#status").inner_text()
    assert "cannot read image notes.png: not a PNG, JPEG" in status and workspace not in status
    assert page.locator("#overlay img").count() == 0

    page.get_by_role("tab", name="Batch").click()
    good = tmp_path / "tablet.png"
    Image.fromarray(render("tablet", None, image_size=96, seed=1).image).save(good)
    page.locator("#batch-files input[type=file]").set_input_files([str(good), str(notes)])
    page.locator("#batch-files").get_by_text("notes", exact=True).wait_for()  # shown as "notes" + ".png"
    page.locator("#batch-class-name input").fill("tablet")
    page.locator("#batch-class-name input").press("Escape")
    page.locator("#batch-run").click()
    status = page.locator("#batch-status")
    status.get_by_text("Refused").wait_for()
    assert "cannot read image notes.png: not a PNG, JPEG" in status.inner_text()
    assert page.locator("#batch-table").get_by_text("tablet.png").count() >= 1
    assert page.blocked_requests == [], page.blocked_requests
