"""`moeclip` explains itself, and its explain / analyze / export commands write what they promise."""

import pytest
from PIL import Image

from moeclip_hf.cli import build_parser, main
from moeclip_hf.data.synthetic import generate
from moeclip_hf.testing import save_tiny_model


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("tiny-moeclip"))


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    text = capsys.readouterr().out
    for command in ("demo", "detect", "evaluate", "data", "explain", "analyze", "export", "serve"):
        assert f"    {command}" in text


def test_no_command_prints_the_help_and_fails(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out
    assert main(["data"]) == 2
    assert "check" in (text := capsys.readouterr().out) and "list" in text


def test_explain_writes_a_report_with_its_figures(saved_model, tmp_path):
    image = tmp_path / "part.png"
    Image.new("RGB", (50, 40), (120, 60, 30)).save(image)
    assert main(["explain", str(image), "--model", str(saved_model), "--class-name", "bottle", "--output", str(tmp_path / "out")]) == 0
    report = (tmp_path / "out" / "report.md").read_text()
    figures = sorted((tmp_path / "out").glob("*.png"))
    assert any(path.name.startswith("routing_layer") for path in figures)
    assert all(path.name in report for path in figures if path.name != "input.png")


def test_analyze_writes_utilisation_and_similarity(saved_model, tmp_path):
    generate(tmp_path / "data", categories=["stripes"], images_per_category=2, seed=0, image_size=64)
    code = main(["analyze", "--model", str(saved_model), "--dataset", "mvtec", "--data-root", str(tmp_path / "data"),
                 "--output", str(tmp_path / "out"), "--quiet"])
    assert code == 0
    for name in ("utilisation.csv", "similarity.csv", "patch_statistics.csv", "report.md"):
        assert (tmp_path / "out" / name).exists(), name


def test_export_writes_the_hub_folder(saved_model, tmp_path):
    assert main(["export", "--model", str(saved_model), "--output", str(tmp_path / "hub")]) == 0
    names = {path.name for path in (tmp_path / "hub").iterdir()}
    assert {"model.safetensors", "config.json", "README.md", "handler.py", "app.py", "requirements.txt"} <= names


def test_export_push_without_a_repo_id_is_refused(saved_model, tmp_path, capsys):
    assert main(["export", "--model", str(saved_model), "--output", str(tmp_path / "hub"), "--push"]) == 1
    assert "--repo-id" in capsys.readouterr().err
