"""Hub export: the repository folder, its remote code (run without the package), the endpoint handler, the card.

The file is long because it is one subject's whole specification; its sections follow the entry points.
"""

import ast
import base64
import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from huggingface_hub import ModelCard
from PIL import Image
from safetensors.torch import load_file
from transformers import AutoImageProcessor

from moeclip_hf import MoECLIPModel, MoECLIPProcessor
from moeclip_hf import hub
from moeclip_hf.benchmarks import BENCHMARKS
from moeclip_hf.hub import export, model_card
from moeclip_hf.hub import handler
from moeclip_hf.inference.pipeline import ZeroShotAnomalyDetectionPipeline
from moeclip_hf.inference.task import TASK
from moeclip_hf.hub.remote_code import ENTRY_MODULE, bundle_source, flat_module_name, flatten_source, remote_code_files
from moeclip_hf.testing import BLOCK_PACKAGE_IMPORTS, randomize_moe, tiny_config, tiny_processor

REPO_ID = "org/moeclip-tiny"
ROOT = Path(__file__).resolve().parents[1]
RESULTS = {
    "datasets": {
        "mvtec": {
            "classes": {"bottle": {"image_auroc": 0.9}},
            "mean": {"image_auroc": 0.939, "image_ap": 0.968, "pixel_auroc": 0.925, "pixel_ap": 0.457, "pixel_aupro": 0.8},
        },
        "visa": {"classes": {"candle": {"image_auroc": 0.8, "pixel_ap": 0.2}, "pcb1": {"image_auroc": 0.9, "samples": 3}}},
    }
}

# Runs in a fresh interpreter that cannot import moeclip_hf: only the exported folder's own code is available.
REMOTE_SCRIPT = textwrap.dedent(
    '''
    import base64, io, json, os, sys

    try:
        import moeclip_hf
        package_importable = True
    except ImportError:
        package_importable = False

    import torch
    from PIL import Image
    from safetensors.torch import save_file
    from transformers import AutoModel, AutoProcessor

    folder, image_path, out = sys.argv[1:4]
    report = {"package_importable": package_importable}
    model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
    report["model_module"] = type(model).__module__
    report["processor_module"] = type(processor).__module__
    image = Image.open(image_path).convert("RGB")
    with torch.no_grad():
        outputs = model(**processor(images=image, class_names=["bottle"], return_tensors="pt"))
    save_file({"anomaly_map": outputs.anomaly_map.contiguous(), "anomaly_score": outputs.anomaly_score.contiguous()},
              os.path.join(out, "remote.safetensors"))

    sys.path.insert(0, folder)
    from handler import EndpointHandler
    endpoint = EndpointHandler(folder)
    report["pipeline_module"] = type(endpoint.pipeline).__module__
    payload = base64.b64encode(open(image_path, "rb").read()).decode("ascii")
    report["anomaly"] = endpoint({"inputs": payload, "parameters": {"class_name": "flux capacitor"}})
    report["segmentation"] = endpoint(
        {"inputs": payload, "parameters": {"class_name": "bottle", "threshold": 0.0, "output_format": "segmentation"}}
    )
    json.dumps(report)

    def error_of(request):
        try:
            endpoint(request)
        except ValueError as error:
            return str(error)
        return None

    report["errors"] = {
        "not_an_image": error_of({"inputs": base64.b64encode(b"plain text, not pixels").decode("ascii")}),
        "empty": error_of({"inputs": ""}),
        "no_inputs": error_of({"parameters": {}}),
        "unknown_parameter": error_of({"inputs": payload, "parameters": {"colour": "red"}}),
    }
    os.environ["MOECLIP_MAX_PAYLOAD_BYTES"] = "64"
    report["errors"]["too_large"] = error_of({"inputs": payload})
    with open(os.path.join(out, "report.json"), "w") as handle:
        json.dump(report, handle)
    '''
)
REMOTE_SCRIPT = BLOCK_PACKAGE_IMPORTS + REMOTE_SCRIPT


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def model():
    return randomize_moe(MoECLIPModel(tiny_config()))


@pytest.fixture(scope="module")
def exported(tmp_path_factory, model):
    folder = tmp_path_factory.mktemp("exported") / "moeclip-tiny"
    return hub.export_model(model, folder, processor=tiny_processor(), results=RESULTS, repo_id=REPO_ID)


@pytest.fixture(scope="module")
def image_path(tmp_path_factory):
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("images") / "part.png"
    Image.fromarray(rng.integers(0, 256, (48, 72, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def remote_run(tmp_path_factory, exported, image_path):
    """Load the export in a subprocess that cannot import moeclip_hf; returns its report and output folder."""
    work = tmp_path_factory.mktemp("remote")
    script = work / "remote_check.py"
    script.write_text(REMOTE_SCRIPT)
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_MODULES_CACHE=str(work / "modules"))
    completed = subprocess.run(
        [sys.executable, str(script), str(exported), str(image_path), str(work)],
        cwd=work, env=env, capture_output=True, text=True, timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    return json.loads((work / "report.json").read_text()), work


def decode_png(text: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(text)))


# ------------------------------------------------------------------------------------------ exported folder


def test_export_writes_a_complete_hub_repository(exported):
    names = {path.name for path in exported.iterdir()}
    expected = {
        "model.safetensors", "config.json", "processor_config.json", "preprocessor_config.json",
        "tokenizer_config.json", "README.md", "handler.py", "requirements.txt", "app.py", f"{ENTRY_MODULE}.py",
    }
    assert expected <= names
    assert set(remote_code_files()) <= names
    assert not any(name.endswith((".bin", ".pt", ".pth", ".pkl")) for name in names)


def test_export_loads_with_the_package_and_keeps_every_weight(exported, model):
    reloaded = MoECLIPModel.from_pretrained(exported)
    expected = model.state_dict()
    for name, value in reloaded.state_dict().items():
        torch.testing.assert_close(value, expected[name], rtol=0, atol=0)
    assert MoECLIPProcessor.from_pretrained(exported).image_size == 64
    assert AutoImageProcessor.from_pretrained(exported).size == {"height": 64, "width": 64}


def test_config_points_auto_classes_and_the_pipeline_at_the_remote_code(exported):
    config = json.loads((exported / "config.json").read_text())
    assert config["auto_map"] == {
        "AutoConfig": f"{ENTRY_MODULE}.MoECLIPConfig",
        "AutoModel": f"{ENTRY_MODULE}.MoECLIPModel",
        "AutoProcessor": f"{ENTRY_MODULE}.MoECLIPProcessor",
    }
    assert config["custom_pipelines"][TASK]["impl"] == f"{ENTRY_MODULE}.ZeroShotAnomalyDetectionPipeline"
    processor_config = json.loads((exported / "processor_config.json").read_text())
    assert processor_config["auto_map"] == {"AutoProcessor": f"{ENTRY_MODULE}.MoECLIPProcessor"}


def test_remote_code_compiles_and_never_imports_the_package(exported):
    flat_files = {path.stem for path in exported.glob("*.py")}
    for path in exported.glob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        compile(tree, str(path), "exec")
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert all(alias.name.split(".")[0] != "moeclip_hf" for alias in node.names), path.name
            elif isinstance(node, ast.ImportFrom):
                assert node.level in (0, 1), f"{path.name}: nested relative import"
                assert node.level == 1 or node.module.split(".")[0] != "moeclip_hf", path.name
                assert node.level == 0 or node.module in flat_files, f"{path.name} imports a missing .{node.module}"


def test_remote_code_is_the_package_source_with_only_its_imports_rewritten():
    for module in ["moeclip_hf.modeling.modeling_moeclip", "moeclip_hf.modeling.moe_lora", "moeclip_hf.inference.pipeline"]:
        original = Path(sys.modules[module].__file__).read_text().splitlines()
        flattened, _ = flatten_source(module)
        flattened = flattened.splitlines()[1:]  # the provenance banner
        assert len(flattened) == len(original)
        changed = [(old, new) for old, new in zip(original, flattened) if old != new]
        assert changed, module
        assert all(old.lstrip().startswith("from .") and new.lstrip().startswith("from .") for old, new in changed)


def test_flat_module_names():
    assert flat_module_name("moeclip_hf.modeling.moe_lora.layer") == "moe_lora_layer"
    assert flat_module_name("moeclip_hf.configuration.configuration_moeclip") == "configuration_moeclip"
    assert flat_module_name("moeclip_hf.inference.pipeline") == "pipeline"
    with pytest.raises(ValueError, match="not a module of moeclip_hf"):
        flat_module_name("transformers.models")


def test_requirements_pin_what_the_exported_code_imports(exported):
    lines = (exported / "requirements.txt").read_text().split()
    names = {line.split("<")[0].split(">")[0].split("=")[0] for line in lines}
    assert {"torch", "transformers", "peft", "safetensors", "pillow", "numpy"} <= names
    assert not names & {"kornia", "datasets", "accelerate", "gradio"}  # gradio comes with a Space's SDK
    assert "matplotlib" in names  # the app's overlay colours the map with matplotlib's colour maps
    assert any(line.startswith("peft") and "<" in line for line in lines)


def test_export_from_a_saved_folder_finds_its_processor(tmp_path, model):
    model.save_pretrained(tmp_path / "saved")
    tiny_processor().save_pretrained(tmp_path / "saved")
    folder = hub.export_model(tmp_path / "saved", tmp_path / "export")
    assert MoECLIPProcessor.from_pretrained(folder).image_size == 64
    with pytest.raises(ValueError, match="processor="):
        hub.export_model(MoECLIPModel(tiny_config()), tmp_path / "no-processor")


# -------------------------------------------------------------------------------- without the package


def test_remote_code_runs_without_the_package_and_matches_it(remote_run, exported, image_path):
    report, work = remote_run
    assert report["package_importable"] is False
    assert report["model_module"].startswith("transformers_modules.")
    assert report["processor_module"].startswith("transformers_modules.")
    local = MoECLIPModel.from_pretrained(exported).eval()
    processor = MoECLIPProcessor.from_pretrained(exported)
    with torch.no_grad():
        expected = local(**processor(images=Image.open(image_path).convert("RGB"), class_names=["bottle"]))
    remote = load_file(work / "remote.safetensors")
    torch.testing.assert_close(remote["anomaly_map"], expected.anomaly_map, rtol=0, atol=1e-6)
    torch.testing.assert_close(remote["anomaly_score"], expected.anomaly_score, rtol=0, atol=1e-6)


def test_endpoint_handler_answers_base64_images_without_the_package(remote_run):
    report, _ = remote_run
    assert report["pipeline_module"].startswith("transformers_modules.")
    answer = report["anomaly"]
    assert set(answer) == {"score", "is_anomalous", "threshold", "anomaly_map"}
    assert 0.0 <= answer["score"] <= 1.0 and answer["is_anomalous"] == (answer["score"] >= answer["threshold"])
    anomaly_map = decode_png(answer["anomaly_map"])
    assert anomaly_map.format == "PNG" and anomaly_map.size == (72, 48) and anomaly_map.mode == "L"
    (segment,) = report["segmentation"]
    assert segment["label"] == "anomaly"
    assert np.all(np.asarray(decode_png(segment["mask"])) == 255)  # threshold 0: every pixel reaches it


def test_endpoint_handler_refuses_bad_requests_clearly(remote_run):
    errors = remote_run[0]["errors"]
    assert "not a decodable image" in errors["not_an_image"]
    assert "empty" in errors["empty"]
    assert '"inputs"' in errors["no_inputs"]
    assert "Unknown parameters ['colour']" in errors["unknown_parameter"]
    assert "more than the limit of 64 bytes" in errors["too_large"]


# ------------------------------------------------------------------------------------------ the handler


def test_handler_is_generated_from_the_package_and_speaks_the_pipelines_task(exported):
    source = (exported / "handler.py").read_text()
    assert source == bundle_source("moeclip_hf.hub.handler")
    assert "moeclip_hf/image_io.py" in source and "moeclip_hf/hub/handler.py" in source  # the one image reader
    assert handler.TASK == TASK
    pipeline_parameters = ZeroShotAnomalyDetectionPipeline._sanitize_parameters.__code__.co_varnames
    assert set(handler.PARAMETERS) <= set(pipeline_parameters)


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        (base64.b64encode(b"GIF89a but truncated").decode("ascii"), "not a decodable image"),
        (b"%PDF-1.7 not an image", "not a decodable image"),
        ("/etc/hostname", "not valid base64"),  # never a file the request names
        ("https://example.com/part.png", "not valid base64"),  # nor a URL to fetch
        ("", "empty"),
        (b"", "empty"),
        ("not base64 at all!", "not valid base64"),
        (12, "base64-encoded image string or raw image bytes; got int"),
        (Image.new("RGB", (0, 0)), "empty"),
    ],
)
def test_bad_payloads_get_clear_errors(inputs, message):
    with pytest.raises(ValueError, match=message):
        handler.read_request_image(inputs)


def test_payload_limit_comes_from_the_environment(monkeypatch):
    payload = png_bytes(Image.new("RGB", (32, 32), "red"))
    encoded = base64.b64encode(payload).decode("ascii")
    assert handler.read_request_image(f"data:image/png;base64,{encoded}").size == (32, 32)
    monkeypatch.setenv(handler.MAX_PAYLOAD_ENV, str(len(payload) - 1))
    for inputs in (payload, encoded):
        with pytest.raises(ValueError, match="more than the limit"):
            handler.read_request_image(inputs)
    monkeypatch.setenv(handler.MAX_PAYLOAD_ENV, "lots")
    with pytest.raises(ValueError, match="MOECLIP_MAX_PAYLOAD_BYTES must be a positive number"):
        handler.read_request_image(payload)


def test_parameters_and_results_are_checked_and_made_json():
    assert handler.pipeline_parameters(None) == {}
    with pytest.raises(ValueError, match="must be an object"):
        handler.pipeline_parameters(["class_name"])
    result = handler.to_json([{"label": "anomaly", "score": 0.5, "mask": Image.new("L", (3, 2))}])
    assert decode_png(result[0]["mask"]).size == (3, 2)
    json.dumps(result)


# ---------------------------------------------------------------------------------------- model card


def test_the_card_template_ships_with_the_package_and_tags_the_widget_task():
    packaged = Path(model_card.__file__).parent / "model_card.md"
    metadata, _ = model_card.split_front_matter(packaged.read_text())
    assert metadata["pipeline_tag"] == "image-segmentation"


def test_card_front_matter_names_the_task_tags_and_base_model(exported):
    card = (exported / "README.md").read_text()
    assert card.startswith("---\n")
    metadata = yaml.safe_load(card.split("---\n")[1])
    assert metadata["library_name"] == "transformers"
    assert metadata["pipeline_tag"] == "image-segmentation"
    assert {"anomaly-detection", "zero-shot", "clip", "moe", "lora", "moeclip"} <= set(metadata["tags"])
    assert metadata["license"] == "apache-2.0"
    assert metadata["base_model"] == model_card.DEFAULT_BASE_MODEL
    assert metadata["datasets"]
    assert {"src", "example_title"} <= set(metadata["widget"][0])
    assert "$" not in card.split("---\n", 2)[2].replace("$$", "")
    assert f'model="{REPO_ID}"' in card


def test_card_model_index_holds_the_evaluation_results_in_percent(exported):
    card = ModelCard((exported / "README.md").read_text())
    results = {(result.dataset_type, result.metric_type): result for result in card.data.eval_results}
    assert results["mvtec", "image_auroc"].metric_value == pytest.approx(93.9)
    assert results["mvtec", "pixel_aupro"].metric_value == pytest.approx(80.0)
    assert results["mvtec", "image_auroc"].dataset_name == BENCHMARKS["mvtec"].display_name == "MVTec-AD"
    assert results["mvtec", "image_auroc"].task_type == TASK
    assert results["visa", "image_auroc"].metric_value == pytest.approx(85.0)  # the mean of its classes
    assert results["visa", "pixel_ap"].metric_value == pytest.approx(20.0)
    assert ("visa", "samples") not in results
    assert card.data.model_name == "moeclip-tiny"
    assert "| MVTec-AD | 93.9 | 96.8 | 92.5 | 45.7 | 80.0 |" in card.text


def test_results_are_read_from_files_and_folders_and_percentages_kept(tmp_path):
    percent = {"mvtec": {"mean": {"image_auroc": 93.9, "pixel_ap": 45.7, "pixel_f1_max": None}}}
    (tmp_path / "old.json").write_text(json.dumps({"datasets": {"visa": {"mean": {"image_auroc": 0.5}}}}))
    os.utime(tmp_path / "old.json", (1, 1))
    (tmp_path / "new.json").write_text(json.dumps(percent))
    assert hub.load_results(tmp_path / "new.json") == {"mvtec": {"image_auroc": 93.9, "pixel_ap": 45.7}}
    assert hub.load_results(tmp_path) == hub.load_results(tmp_path / "new.json")
    with pytest.raises(ValueError, match="no image_\\* or pixel_\\* metrics"):
        hub.load_results({"datasets": {"mvtec": {"mean": {"loss": 0.3}}}})
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ValueError, match="broken.json"):
        hub.load_results(tmp_path / "broken.json")


def test_card_without_results_has_no_model_index():
    card = hub.render_model_card(tiny_config())
    metadata, body = model_card.split_front_matter(card)
    assert "model-index" not in metadata
    assert "No evaluation results" in body
    assert model_card.PLACEHOLDER_REPO_ID in body


def test_base_model_is_the_clip_checkpoint_when_known(tmp_path):
    config = tiny_config()
    config._name_or_path = "openai/clip-vit-base-patch16"
    assert model_card.base_model_id(config) == "openai/clip-vit-base-patch16"
    assert model_card.base_model_id(config, repo_id="openai/clip-vit-base-patch16") == model_card.DEFAULT_BASE_MODEL
    config._name_or_path = str(tmp_path)
    assert model_card.base_model_id(config) == model_card.DEFAULT_BASE_MODEL


# ------------------------------------------------------------------------------------------------- push


class RecordingApi:
    """Stands in for `huggingface_hub.HfApi`: records the calls and what the uploaded folder held."""

    calls: list = []

    def __init__(self, token=None):
        self.calls.append(("init", token))

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))

    def upload_folder(self, repo_id, folder_path, **kwargs):
        files = sorted(path.name for path in Path(folder_path).iterdir())
        self.calls.append(("upload_folder", repo_id, Path(folder_path), files, kwargs))
        return "commit-info"


def test_push_to_hub_creates_the_repository_and_uploads_the_export(monkeypatch, model):
    RecordingApi.calls = []
    monkeypatch.setattr(export, "HfApi", RecordingApi)
    commit = hub.push_to_hub(model, REPO_ID, results=RESULTS, private=True, token="hf_test", processor=tiny_processor())
    assert commit == "commit-info"
    (_, token), (_, created, create_kwargs), (_, uploaded, folder, files, upload_kwargs) = RecordingApi.calls
    assert token == "hf_test" and created == uploaded == REPO_ID
    assert create_kwargs["private"] is True and create_kwargs["exist_ok"] is True
    assert {"README.md", "config.json", "model.safetensors", "handler.py", "requirements.txt"} <= set(files)
    assert upload_kwargs["repo_type"] == "model"
    assert not folder.exists()
