"""Bad and hostile inputs at every public entry point: a clear error naming the input, or the documented conversion.

The entry points: `MoECLIPProcessor` and `MoECLIPModel.forward`, `pipeline("zero-shot-anomaly-detection")`,
`moeclip detect`, `moeclip evaluate`, `train.py` (its `main`), `load_benchmark`,
`MoECLIPModel.from_pretrained`, training resumption and the endpoint handler. Nothing may hang, die in a
DataLoader worker without saying which file, or exhaust memory.

Specified elsewhere and not repeated here:

- the reader-level conversions and errors (`read_image`, `read_mask`, `read_pair`, truncated and zero-byte files
  through `load_benchmark`, masks of another size): tests/test_data_transforms.py;
- JSON-lines and VisA table paths that escape the root, at the loader: tests/test_data_layouts.py;
- the handler's payload limit and its empty, non-base64 and non-image payloads: tests/test_hub.py;
- pixel_values of the wrong shape, NaN or an integer dtype: tests/test_modeling.py;
- a truncated newest checkpoint: tests/test_training.py (and the SIGKILL case: tests/test_interruption.py).

The file is long because it is one subject's whole specification; its sections follow the entry points.
"""

from __future__ import annotations

import ast
import hashlib
import json
import pickle
import re
import runpy
import shutil
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import pipeline

import moeclip_hf
from moeclip_hf import MoECLIPModel
from moeclip_hf.cli import main as moeclip
from moeclip_hf.data import load_benchmark, read_image
from moeclip_hf.hub import handler
from moeclip_hf.modeling.processing_moeclip import MAX_PROMPT_LENGTH
from moeclip_hf.testing import save_tiny_model, tiny_config, tiny_processor
from moeclip_hf.training import DataArguments, ModelArguments, TrainingArguments, train
from moeclip_hf.training.checkpointing import MANIFEST_NAME, load_model_weights

#: `main` of the repository's train.py, called in-process as the command line calls it.
train_py = runpy.run_path(str(Path(__file__).resolve().parents[1] / "train.py"))["main"]

PACKAGE_ROOT = Path(moeclip_hf.__file__).parent
#: Width and height of the test pictures: not square, so a map of the wrong orientation shows.
WIDTH, HEIGHT = 48, 32


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory) -> Path:
    """A tiny model with random routers and experts (so routing is not uniform), saved with its processor."""
    return save_tiny_model(tmp_path_factory.mktemp("tiny-moeclip"))


@pytest.fixture(scope="module")
def model(saved_model) -> MoECLIPModel:
    return MoECLIPModel.from_pretrained(saved_model).eval()


@pytest.fixture(scope="module")
def detector(saved_model):
    return pipeline("zero-shot-anomaly-detection", model=str(saved_model))


# ------------------------------------------------------------------------------------------------ the files


def noise(seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8))


def mode_pictures() -> dict[str, Image.Image]:
    """One picture per mode that real benchmarks and users hand over; each must be converted, never refused."""
    ramp = np.linspace(1000, 5000, WIDTH * HEIGHT).astype(np.uint16).reshape(HEIGHT, WIDTH)  # a 13-bit scanner
    rgba = np.asarray(noise(1).convert("RGBA")).copy()
    rgba[: HEIGHT // 2, :, 3] = 0  # the top half transparent
    return {
        "16-bit.png": Image.fromarray(ramp),
        "grayscale.jpg": noise(2).convert("L"),
        "cmyk.jpg": noise(3).convert("CMYK"),
        "palette.png": noise(4).convert("P", palette=Image.Palette.ADAPTIVE),
        "rgba.png": Image.fromarray(rgba),
        "bilevel.png": noise(5).convert("1"),
    }


def write_mode_files(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, picture in mode_pictures().items():
        picture.save(folder / name, quality=95) if name.endswith(".jpg") else picture.save(folder / name)
        paths.append(folder / name)
    return paths


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def huge_png_bytes(side: int = 20_000) -> bytes:
    """A 69-byte PNG whose header claims side x side pixels (400 megapixels for 20000): a decompression bomb."""
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # bit depth 1, grayscale
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def write_broken_file(folder: Path, kind: str) -> Path:
    """A file with an image suffix that cannot be used as an image."""
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "zero-byte":
        path = folder / "zero-byte.png"
        path.write_bytes(b"")
    elif kind == "truncated":
        path = folder / "truncated.png"
        noise().save(path)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif kind == "not-an-image":
        path = folder / "notes.jpg"
        path.write_text("Inspection notes, saved with the wrong extension.\n")
    elif kind == "huge":
        path = folder / "huge.png"
        path.write_bytes(huge_png_bytes())
    else:
        raise AssertionError(kind)
    return path


BROKEN_KINDS = ["zero-byte", "truncated", "not-an-image", "huge"]


def write_benchmark(root: Path, good: list[Path] = ()) -> Path:
    """A one-class MVTec-layout root: a normal and an anomalous picture with its mask, plus copies of `good`."""
    normal = root / "bottle" / "test" / "good"
    anomalous, masks = root / "bottle" / "test" / "crack", root / "bottle" / "ground_truth" / "crack"
    for folder in (normal, anomalous, masks):
        folder.mkdir(parents=True, exist_ok=True)
    noise(10).save(normal / "000.png")
    noise(11).save(anomalous / "000.png")
    mask = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
    mask[8:16, 8:24] = 255
    Image.fromarray(mask).save(masks / "000_mask.png")
    for index, path in enumerate(good, start=1):
        shutil.copy(path, normal / f"{index:03d}{path.suffix}")
    return root


def detect(saved_model: Path, images: list[Path], class_name: str, output: Path) -> int:
    arguments = ["--model", str(saved_model), "--class-name", class_name, "--output", str(output)]
    return moeclip(["detect", *map(str, images), *arguments])


def evaluate(saved_model: Path, root: Path, output: Path, *extra: str) -> int:
    return moeclip(
        ["evaluate", "--model", str(saved_model), "--dataset", "mvtec", "--data-root", str(root),
         "--output", str(output), "--quiet", "--device", "cpu", *extra]
    )  # fmt: skip


def train_py_on(root: Path, output: Path, *extra: str) -> int:
    return train_py(
        ["--clip", "tiny", "--dataset", "mvtec", "--data-root", str(root), "--output-dir", str(output),
         "--batch-size", "2", "--max-steps", "2", "--report-to", "none", *extra]
    )  # fmt: skip


# ------------------------------------------------------------------------- documented conversions: they work


@pytest.mark.parametrize("name", list(mode_pictures()))
def test_the_pipeline_scores_every_image_mode_as_its_rgb_conversion(detector, tmp_path, name):
    (path,) = [path for path in write_mode_files(tmp_path) if path.name == name]
    result = detector(str(path), class_name="bottle")
    assert result["anomaly_map"].size == (WIDTH, HEIGHT)
    assert 0.0 <= result["score"] <= 1.0
    assert result["score"] == detector(read_image(path), class_name="bottle")["score"]


def test_the_processor_converts_every_mode_exactly_as_the_data_pipeline_does(tmp_path):
    """16-bit grayscale is stretched by its own range, not clipped at 255 into a white picture; transparency
    is composited onto white; the rest is PIL's conversion. The model sees the same pixels either way."""
    processor = tiny_processor()
    for path in write_mode_files(tmp_path):
        stored = Image.open(path)
        direct = processor(images=stored, return_tensors="pt")["pixel_values"]
        converted = processor(images=read_image(path), return_tensors="pt")["pixel_values"]
        assert torch.equal(direct, converted), path.name
        assert torch.equal(processor(images=[stored, stored], return_tensors="pt")["pixel_values"][1], converted[0])
    ramp = processor(images=mode_pictures()["16-bit.png"], return_tensors="pt")["pixel_values"]
    assert ramp.std() > 0.5  # a visible ramp, not a saturated constant


def test_moeclip_detect_scores_every_mode_and_writes_overlays_of_their_size(saved_model, tmp_path, capsys):
    paths = write_mode_files(tmp_path / "images")
    assert detect(saved_model, paths, "bottle", tmp_path / "out") == 0
    printed = capsys.readouterr().out
    for path in paths:
        assert str(path) in printed
        assert Image.open(tmp_path / "out" / f"{path.stem}_overlay.png").size == (WIDTH, HEIGHT)


def test_moeclip_evaluate_and_train_py_read_every_mode(saved_model, tmp_path, capsys):
    root = write_benchmark(tmp_path / "mvtec", write_mode_files(tmp_path / "modes"))
    assert len(load_benchmark("mvtec", root)) == 2 + len(mode_pictures())
    assert evaluate(saved_model, root, tmp_path / "results") == 0
    bottle = json.loads((tmp_path / "results" / "results.json").read_text())["datasets"]["mvtec"]["classes"]["bottle"]
    assert all(0.0 <= bottle[metric] <= 1.0 for metric in ("image_auroc", "pixel_auroc", "pixel_aupro"))
    assert train_py_on(root, tmp_path / "run") == 0
    assert (tmp_path / "run" / "final" / "model.safetensors").is_file()


# --------------------------------------------------------------------------- unreadable files: named errors


@pytest.mark.parametrize("kind", BROKEN_KINDS)
def test_the_pipeline_names_a_file_it_cannot_read(detector, tmp_path, kind):
    path = write_broken_file(tmp_path, kind)
    started = time.perf_counter()
    with pytest.raises(ValueError, match=re.escape(f"cannot read image {path}")):
        detector(str(path), class_name="bottle")
    assert time.perf_counter() - started < 5.0


@pytest.mark.parametrize("kind", BROKEN_KINDS)
def test_moeclip_detect_names_a_file_it_cannot_read(saved_model, tmp_path, capsys, kind):
    path = write_broken_file(tmp_path / "images", kind)
    assert detect(saved_model, [path], "bottle", tmp_path / "out") == 1
    assert f"moeclip: error: cannot read image {path}" in capsys.readouterr().err
    assert not list((tmp_path / "out").glob("*.png"))


def test_a_huge_image_is_refused_from_its_header_before_any_pixel_is_decoded(detector, tmp_path):
    """400 megapixels would take 1.2 GB as RGB: PIL's decompression-bomb check refuses the 69-byte file at once."""
    payload = huge_png_bytes()
    assert len(payload) < 100
    path = tmp_path / "huge.png"
    path.write_bytes(payload)
    started = time.perf_counter()
    with pytest.raises(ValueError, match=re.escape(f"cannot read image {path}") + ".*exceeds limit"):
        read_image(path)
    with pytest.raises(ValueError, match=r"cannot read image <image bytes>.*exceeds limit"):
        detector(payload, class_name="bottle")
    with pytest.raises(ValueError, match="not a decodable image.*exceeds limit"):
        handler.read_request_image(payload)
    assert time.perf_counter() - started < 2.0


def test_an_image_without_pixels_is_refused_by_name(detector):
    with pytest.raises(ValueError, match=r"<in-memory image>: it is empty \(0x0 pixels\)"):
        detector(Image.new("RGB", (0, 0)), class_name="bottle")


def write_broken_benchmark(root: Path, kind: str) -> Path:
    """A benchmark with one unusable sample: an unreadable image, or a mask of another size than its image."""
    write_benchmark(root)
    if kind == "mask-size":
        Image.new("L", (WIDTH, HEIGHT + 1)).save(root / "bottle" / "ground_truth" / "crack" / "000_mask.png")
        return root / "bottle" / "ground_truth" / "crack" / "000_mask.png"
    path = write_broken_file(root / "bottle" / "test" / "good", kind)
    return path.rename(path.with_name("001" + path.suffix))


#: Every kind in the evaluating process, and one from a DataLoader worker: the worker re-raises the same error in
#: the main process (after which PyTorch takes about 5 s to shut the worker down, so one case suffices).
EVALUATE_CASES = [*((kind, 0) for kind in [*BROKEN_KINDS, "mask-size"]), ("truncated", 1)]


@pytest.mark.parametrize(("kind", "workers"), EVALUATE_CASES)
def test_moeclip_evaluate_names_the_file_even_from_a_dataloader_worker(saved_model, tmp_path, capsys, kind, workers):
    bad = write_broken_benchmark(tmp_path / "mvtec", kind)
    assert evaluate(saved_model, tmp_path / "mvtec", tmp_path / "results", "--num-workers", str(workers)) == 1
    error = capsys.readouterr().err.partition("moeclip: error: ")[2]
    assert str(bad) in error
    assert not (tmp_path / "results" / "results.json").exists()


@pytest.mark.parametrize("kind", [*BROKEN_KINDS, "mask-size"])
def test_train_py_names_the_file_it_cannot_read_and_exits_1_without_a_traceback(tmp_path, capsys, kind):
    bad = write_broken_benchmark(tmp_path / "mvtec", kind)
    assert train_py_on(tmp_path / "mvtec", tmp_path / "run", "--max-steps", "4") == 1
    error = capsys.readouterr().err
    assert "train.py: error: " in error and str(bad) in error
    assert "Traceback" not in error and "no checkpoint was written" in error
    assert not (tmp_path / "run" / "final").exists()


def test_a_file_that_breaks_after_a_checkpoint_leaves_the_checkpoint_to_resume_from(tmp_path, capsys):
    root = write_benchmark(tmp_path / "mvtec")
    assert train_py_on(root, tmp_path / "run", "--max-steps", "1", "--save-steps", "1") == 0
    (checkpoint,) = list((tmp_path / "run" / "checkpoints").iterdir())
    write_broken_file(root / "bottle" / "test" / "good", "truncated").replace(root / "bottle" / "test" / "good" / "000.png")
    capsys.readouterr()
    assert train_py_on(root, tmp_path / "run", "--max-steps", "6", "--save-steps", "1", "--resume") == 1
    error = capsys.readouterr().err
    assert str(root / "bottle" / "test" / "good" / "000.png") in error
    assert f"the last checkpoint, {checkpoint}, is kept" in error and "--resume" in error


# ----------------------------------------------------------------------------------- tensors given directly


def inputs_for(batch: int = 1) -> dict[str, torch.Tensor]:
    processor = tiny_processor()
    return dict(processor(images=[noise(seed) for seed in range(batch)], class_names=["bottle"], return_tensors="pt"))


def edited(**changes):
    """The processor's inputs with some entries added or replaced; each value is a function of those inputs."""
    return lambda inputs: {**inputs, **{name: make(inputs) for name, make in changes.items()}}


def with_text_embeds(make):
    """`pixel_values` with the given `text_embeds` instead of prompts."""
    return lambda inputs: {"pixel_values": inputs["pixel_values"], "text_embeds": make(inputs)}


IDS, MASK = "prompt_input_ids", "prompt_attention_mask"
NO_DEFECT, DEFECT = (lambda x: torch.zeros(1, 1, 64, 64)), (lambda x: torch.tensor([1]))

#: case -> (how the processor's inputs are spoiled, what the error says)
BAD_TENSORS = {
    "pixel +inf": (
        edited(pixel_values=lambda x: torch.full_like(x["pixel_values"], float("inf"))),
        "pixel_values contains NaN or inf",
    ),
    "one pixel -inf": (
        edited(pixel_values=lambda x: x["pixel_values"].index_fill(3, torch.tensor([5]), -float("inf"))),
        "pixel_values contains NaN or inf",
    ),
    "empty batch": (
        lambda x: {name: value[:0] for name, value in x.items()},
        r"batch >= 1; got \(0, 3, 64, 64\)",
    ),
    "float prompt ids": (
        edited(prompt_input_ids=lambda x: x[IDS].float()),
        "prompt_input_ids must hold integer token ids; got torch.float32",
    ),
    "ids beyond the vocabulary": (
        edited(prompt_input_ids=lambda x: x[IDS] + 10**6),
        r"prompt_input_ids holds token ids outside the text tower's vocabulary \[0, 519\)",
    ),
    "negative ids": (
        edited(prompt_input_ids=lambda x: x[IDS] - 10**6),
        "prompt_input_ids holds token ids outside the text tower's vocabulary",
    ),
    "2-d prompt ids": (
        edited(prompt_input_ids=lambda x: x[IDS][0]),
        r"prompt_input_ids must have shape \(batch, prompts, length\)",
    ),
    "prompts of two images": (
        edited(
            prompt_input_ids=lambda x: x[IDS].repeat(2, 1, 1), prompt_attention_mask=lambda x: x[MASK].repeat(2, 1, 1)
        ),
        "prompt_input_ids holds prompts for 2 images but pixel_values holds 1",
    ),
    "mask of other prompts": (
        edited(prompt_attention_mask=lambda x: x[MASK][..., :3]),
        r"prompt_attention_mask has shape \(1, 16, 3\) but prompt_input_ids",
    ),
    "normal prompts only": (
        edited(prompt_input_ids=lambda x: x[IDS][:, :6], prompt_attention_mask=lambda x: x[MASK][:, :6]),
        "no abnormal prompt is left",
    ),
    "text_embeds NaN": (
        with_text_embeds(lambda x: torch.full((1, 2, 32), float("nan"))),
        "text_embeds contains NaN or inf",
    ),
    "text_embeds shape": (
        with_text_embeds(lambda x: torch.zeros(1, 3, 32)),
        r"text_embeds must have shape \(batch, 2, 32\)",
    ),
    "label 2": (
        edited(masks=NO_DEFECT, labels=lambda x: torch.tensor([2])),
        r"labels must be 0 \(normal\) or 1 \(anomalous\); got \[2\]",
    ),
    "NaN mask": (
        edited(masks=lambda x: torch.full((1, 1, 64, 64), float("nan")), labels=DEFECT),
        "masks contains NaN or inf",
    ),
    "mask of another size": (
        edited(masks=lambda x: torch.zeros(1, 1, 32, 32), labels=DEFECT),
        r"`mask` must have shape \(1, 1, 64, 64\)",
    ),
    "mask without label": (
        edited(masks=NO_DEFECT),
        "needs both `masks` and `labels`",
    ),
}


@pytest.mark.parametrize("case", list(BAD_TENSORS))
def test_bad_tensors_are_refused_by_name(model, case):
    make, message = BAD_TENSORS[case]
    with pytest.raises(ValueError, match=message):
        model(**make(inputs_for()))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_pixel_values_of_another_float_dtype_are_cast_to_the_models(model, dtype):
    inputs = inputs_for()
    with torch.no_grad():
        expected = model(**inputs).anomaly_score
        score = model(**{**inputs, "pixel_values": inputs["pixel_values"].to(dtype)}).anomaly_score
    torch.testing.assert_close(score, expected, atol=2e-2, rtol=0)


def test_a_bf16_model_takes_the_processors_float32_pixels(saved_model):
    inputs = inputs_for()
    full = MoECLIPModel.from_pretrained(saved_model).eval()
    half = MoECLIPModel.from_pretrained(saved_model, dtype=torch.bfloat16).eval()
    assert inputs["pixel_values"].dtype == torch.float32
    with torch.no_grad():
        scores = half(**inputs).anomaly_score.float(), full(**inputs).anomaly_score
    torch.testing.assert_close(*scores, atol=2e-2, rtol=0)


# --------------------------------------------------------------------------------------------- class names


def test_an_empty_class_name_is_the_class_agnostic_object_prompt(detector, saved_model, tmp_path, capsys):
    processor = tiny_processor()
    for empty in ("", "   "):
        assert torch.equal(
            processor(class_names=[empty])["prompt_input_ids"], processor(class_names=["object"])["prompt_input_ids"]
        )
        assert detector(noise(), class_name=empty)["score"] == detector(noise(), class_name="object")["score"]
    path = tmp_path / "part.png"
    noise().save(path)
    assert detect(saved_model, [path], "", tmp_path / "out") == 0


def test_a_class_name_of_ten_thousand_characters_is_truncated_to_the_context_length(detector, saved_model, tmp_path):
    name = "scratched " * 1000
    assert len(name) == 10_000
    ids = tiny_processor()(class_names=[name])["prompt_input_ids"]
    assert ids.shape[-1] == MAX_PROMPT_LENGTH == 77
    started = time.perf_counter()
    result = detector(noise(), class_name=name)
    assert 0.0 <= result["score"] <= 1.0 and result["anomaly_map"].size == (WIDTH, HEIGHT)
    assert detector(noise(), class_name="x" * 10_000)["anomaly_map"].size == (WIDTH, HEIGHT)
    assert time.perf_counter() - started < 10.0
    path = tmp_path / "part.png"
    noise().save(path)
    assert detect(saved_model, [path], name, tmp_path / "out") == 0


@pytest.mark.parametrize(
    ("class_names", "images", "message"),
    [
        ([None], 1, "class names must be strings; got NoneType"),
        ([3], 1, "class names must be strings; got int"),
        ([], None, "class_names is empty"),
        (["bottle", "pill"], 3, "class_names has 2 entries for 3 images"),
    ],
)
def test_class_names_that_are_not_one_string_per_image_are_refused(class_names, images, message):
    pictures = None if images is None else [noise(seed) for seed in range(images)]
    with pytest.raises(ValueError, match=message):
        tiny_processor()(images=pictures, class_names=class_names)


# -------------------------------------------------------------------------------------------- hostile files


@pytest.mark.parametrize("escape", ["../outside.png", "ABSOLUTE"])
def test_meta_file_paths_outside_the_root_are_refused_by_evaluate_and_train_py(saved_model, tmp_path, capsys, escape):
    root = tmp_path / "data"
    root.mkdir()
    noise().save(tmp_path / "outside.png")
    path = str(tmp_path / "outside.png") if escape == "ABSOLUTE" else escape
    (root / "meta.jsonl").write_text(json.dumps({"image_path": path, "label": 0, "class_name": "bottle"}) + "\n")
    expected = "escapes the root" if escape != "ABSOLUTE" else "is absolute"

    code = moeclip(["evaluate", "--model", str(saved_model), "--dataset", "jsonl", "--data-root", str(root),
                    "--output", str(tmp_path / "results"), "--quiet"])  # fmt: skip
    assert code == 1 and expected in capsys.readouterr().err
    assert train_py(["--clip", "tiny", "--dataset", "jsonl", "--data-root", str(root), "--output-dir",
                     str(tmp_path / "run"), "--report-to", "none"]) == 2  # fmt: skip
    error = capsys.readouterr().err
    assert "train.py: error: cannot train on --dataset jsonl" in error and expected in error
    assert not (tmp_path / "results").exists() and not (tmp_path / "run").exists()


def set_field(section: str | None, **values):
    """An edit of config.json: set `values` in `section` (a sub-dict such as "moe_config"), or at the top level."""
    return lambda config: (config if section is None else config[section]).update(values)


#: case -> (the edit of a valid config.json, what the error says)
ABSURD_CONFIGS = {
    "1e9 experts": (set_field("moe_config", num_experts=1e9), "MoELoraConfig.num_experts must be in [1, 1024]"),
    "negative rank": (set_field("moe_config", r=-4), "MoELoraConfig.r must be a positive rank"),
    "1e9 hidden size": (
        set_field("vision_config", hidden_size=10**9),
        "vision_config.hidden_size must be an integer in [1, 16384]",
    ),
    "1e9 layers": (  # before the size bounds, this one built encoder layers until memory ran out
        set_field("vision_config", num_hidden_layers=10**9),
        "vision_config.num_hidden_layers must be an integer in [1, 256]",
    ),
    "1e12 vocabulary": (
        set_field("text_config", vocab_size=10**12),
        "text_config.vocab_size must be an integer in [1, 1000000]",
    ),
    "1e9 image size": (set_field(None, image_size=10**9), "image_size must be in (0, 8192]"),
}

#: Loads each folder in a fresh interpreter whose address space may grow by 1 GiB at most once the libraries are
#: imported: a runaway allocation fails there, as a MemoryError, instead of exhausting the machine.
LOADER = """
import json, resource, sys, time
from pathlib import Path
from transformers import pipeline
from moeclip_hf import MoECLIPModel

status = Path("/proc/self/status").read_text().splitlines()
limit = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:")) + (1 << 30)
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
loaders = {"from_pretrained": MoECLIPModel.from_pretrained,
           "pipeline": lambda folder: pipeline("zero-shot-anomaly-detection", model=folder)}
outcomes = {}
for name, (loader, folder) in json.loads(sys.argv[1]).items():
    started = time.perf_counter()
    try:
        loaders[loader](folder)
        kind, message = "returned", ""
    except BaseException as error:
        kind, message = type(error).__name__, str(error)
    outcomes[name] = [kind, message, time.perf_counter() - started]
print(json.dumps(outcomes))
"""


@pytest.fixture(scope="module")
def absurd_config_outcomes(saved_model, tmp_path_factory) -> dict[str, tuple[str, str, float]]:
    """(exception type, message, seconds) of loading each hostile folder, with `from_pretrained` and `pipeline`."""
    jobs = {}
    for case, (edit, _) in ABSURD_CONFIGS.items():
        folder = tmp_path_factory.mktemp("hostile")
        shutil.copytree(saved_model, folder, dirs_exist_ok=True)
        config = json.loads((folder / "config.json").read_text())
        edit(config)
        (folder / "config.json").write_text(json.dumps(config))
        jobs[case] = ("from_pretrained", str(folder))
        jobs[f"{case}, pipeline"] = ("pipeline", str(folder))
    done = subprocess.run(
        [sys.executable, "-c", LOADER, json.dumps(jobs)], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("loader", ["from_pretrained", "pipeline"])
@pytest.mark.parametrize("case", list(ABSURD_CONFIGS))
def test_a_config_json_with_absurd_sizes_fails_validation_before_allocating(absurd_config_outcomes, case, loader):
    kind, message, seconds = absurd_config_outcomes[case if loader == "from_pretrained" else f"{case}, pipeline"]
    assert kind == "ValueError" and ABSURD_CONFIGS[case][1] in message, (kind, message)
    assert seconds < 2.0


def test_no_package_module_can_unpickle():
    """No pickle-family import, no torch.load without weights_only=True, no numpy load with allow_pickle=True."""
    unpicklers = {"pickle", "cPickle", "_pickle", "dill", "joblib", "marshal", "shelve", "cloudpickle"}
    problems = []
    for path in sorted(PACKAGE_ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            where = f"{path.relative_to(PACKAGE_ROOT)}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Import):
                problems += [where for alias in node.names if alias.name.split(".")[0] in unpicklers]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in unpicklers:
                problems.append(where)
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                keywords = {keyword.arg: keyword.value for keyword in node.keywords}
                safe = isinstance(keywords.get("weights_only"), ast.Constant) and keywords["weights_only"].value is True
                if node.func.attr == "load" and ast.unparse(node.func.value) == "torch" and not safe:
                    problems.append(where)
                pickled = keywords.get("allow_pickle")
                if pickled is not None and not (isinstance(pickled, ast.Constant) and pickled.value is False):
                    problems.append(where)
                if node.func.attr in ("read_pickle", "from_pickle"):
                    problems.append(where)
    assert problems == []


class _Trap:
    """Unpickling this object creates `path`: the payload of a hostile pickle."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def plant_trap(path: Path, marker: Path) -> None:
    """Write a pickle at `path` that would create `marker` if anything unpickled it, and prove that it would."""
    torch.save({"state": _Trap(marker)}, path)
    torch.load(path, weights_only=False)  # the unsafe load this package never does
    assert marker.exists()
    marker.unlink()


def test_a_pickled_pytorch_model_bin_is_never_loaded(saved_model, tmp_path):
    folder = tmp_path / "pickled"
    shutil.copytree(saved_model, folder)
    (folder / "model.safetensors").unlink()
    marker = tmp_path / "code-ran"
    plant_trap(folder / "pytorch_model.bin", marker)

    with pytest.raises(OSError, match="no file named model.safetensors"):
        MoECLIPModel.from_pretrained(folder)
    with pytest.raises((OSError, ValueError)):
        pipeline("zero-shot-anomaly-detection", model=str(folder))
    with pytest.raises(FileNotFoundError, match=f"no safetensors weights in {re.escape(str(folder))}"):
        load_model_weights(MoECLIPModel(tiny_config()), folder)
    assert not marker.exists()


def test_resuming_never_runs_code_planted_in_a_checkpoint(tmp_path):
    """Even a tampered optimizer.bin whose manifest was rewritten to match is read by the weights-only unpickler."""
    arguments = (
        ModelArguments(clip="tiny"),
        DataArguments(dataset="synthetic", data_root=str(tmp_path / "data"), classes=["marble"],
                      synthetic_images_per_category=2, synthetic_image_size=64),
    )  # fmt: skip
    options = {"output_dir": str(tmp_path / "run"), "report_to": ["none"], "save_steps": 1}
    result = train(*arguments, TrainingArguments(max_steps=1, **options))
    optimizer_state = result.checkpoint_path / "optimizer.bin"
    marker = tmp_path / "code-ran"
    plant_trap(optimizer_state, marker)
    manifest = json.loads((result.checkpoint_path / MANIFEST_NAME).read_text())
    data = optimizer_state.read_bytes()
    manifest["files"]["optimizer.bin"] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (result.checkpoint_path / MANIFEST_NAME).write_text(json.dumps(manifest))

    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        train(*arguments, TrainingArguments(max_steps=2, resume=True, **options))
    assert not marker.exists()
