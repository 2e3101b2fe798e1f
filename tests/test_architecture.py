"""The package's shape (docs/ARCHITECTURE.md): imports flow one way, and the light entry points stay light.

The layers are listed once, here, lowest first. A module may import from its own layer and the layers below
it, never from a layer above; no two modules import each other, directly or around a loop; and no
production module imports `moeclip_hf.testing`. Imports inside functions count: a lazy import is still a
dependency.
"""

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "moeclip_hf"

#: Lowest first. Each entry is a module or a package (all its modules, unless one is listed itself); the
#: package `moeclip_hf` stands for its `__init__` only.
LAYERS = (
    (
        "moeclip_hf._lazy",
        "moeclip_hf.benchmarks",
        "moeclip_hf.image_io",
        "moeclip_hf.distributed",
        "moeclip_hf.conversion.files",
        "moeclip_hf.conversion.open_clip",
        "moeclip_hf.conversion.tokenizer",
        "moeclip_hf.conversion.released_defaults",
    ),
    ("moeclip_hf.configuration",),
    ("moeclip_hf.modeling",),
    ("moeclip_hf.data", "moeclip_hf.inference", "moeclip_hf.presets", "moeclip_hf.conversion"),
    ("moeclip_hf.evaluation", "moeclip_hf.training", "moeclip_hf.analysis"),
    ("moeclip_hf.app",),
    ("moeclip_hf.hub", "moeclip_hf.demo"),
    ("moeclip_hf.cli", "moeclip_hf"),
)
#: Test helpers: only tests import it.
TEST_HELPERS = "moeclip_hf.testing"
#: What `import moeclip_hf` and `moeclip --help` must not load (issue 17).
HEAVY = ("datasets", "kornia", "pandas", "scipy", "gradio", "matplotlib")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imported_modules(name: str, path: Path) -> set[str]:
    """The package modules `name` imports anywhere in its source (`from a import b` counts `a.b` when that is a
    module, `a` otherwise)."""
    modules = package_modules()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "moeclip_hf")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            elif (node.module or "").split(".")[0] == "moeclip_hf":
                target = node.module
            else:
                continue
            for alias in node.names:
                found.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in modules else target)
    return found


def layer_of(name: str) -> int:
    matches = [
        (len(entry), index)
        for index, entries in enumerate(LAYERS)
        for entry in entries
        if name == entry or (entry != "moeclip_hf" and name.startswith(entry + "."))
    ]
    if not matches:
        raise AssertionError(f"{name} belongs to no layer: add it to LAYERS (and to docs/ARCHITECTURE.md)")
    return max(matches)[1]


def import_graph() -> dict[str, set[str]]:
    return {name: imported_modules(name, path) - {name} for name, path in package_modules().items()}


def test_every_module_sits_in_a_layer_and_imports_nothing_above_it():
    upward = []
    for name, imports in import_graph().items():
        if name == TEST_HELPERS:
            continue
        for target in imports:
            if target != TEST_HELPERS and layer_of(target) > layer_of(name):
                upward.append(f"{name} (layer {layer_of(name)}) imports {target} (layer {layer_of(target)})")
    assert upward == []


def test_no_production_module_imports_the_test_helpers():
    importers = [name for name, imports in import_graph().items() if TEST_HELPERS in imports and name != TEST_HELPERS]
    assert importers == []


def test_the_import_graph_has_no_cycles():
    graph = import_graph()
    state: dict[str, str] = {}
    cycles = []

    def visit(name: str, path: list[str]) -> None:
        state[name] = "open"
        for target in sorted(graph.get(name, ())):
            if state.get(target) == "open":
                cycles.append(" -> ".join([*path[path.index(target):], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == []


def test_the_layers_name_only_existing_modules():
    modules = package_modules()
    missing = [entry for entries in LAYERS for entry in entries if entry not in modules]
    assert missing == []


def test_docs_architecture_names_every_module():
    text = (PACKAGE.parent / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    words = set(re.findall(r"[A-Za-z_]+", text))
    unnamed = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path.stem not in words and not (path.stem == "__init__" and path.parent.name in words)
    ]
    assert unnamed == []
    layer_names = {entry.removeprefix("moeclip_hf.").lstrip("_") for entries in LAYERS for entry in entries}
    assert {name for name in layer_names if not set(name.split(".")) <= words} <= {"moeclip_hf"}


def loaded_after(code: str) -> dict:
    """The heavy libraries (and torch) in `sys.modules` after running `code` in a fresh interpreter."""
    script = f"import json, sys\n{code}\nprint(json.dumps([name for name in {(*HEAVY, 'torch', 'transformers')!r} if name in sys.modules]))"
    env = {**os.environ, "PYTHONPATH": str(PACKAGE.parent)}
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert completed.returncode == 0, completed.stderr[-2000:]
    return set(json.loads(completed.stdout.strip().splitlines()[-1]))


def test_import_moeclip_hf_loads_no_heavy_library():
    assert loaded_after("import moeclip_hf") == set()


@pytest.mark.parametrize("argv", [["--help"], ["evaluate", "--help"], ["serve", "--help"], ["demo", "--help"]])
def test_the_command_line_help_needs_neither_torch_nor_the_heavy_libraries(argv):
    code = f"from moeclip_hf.cli import main\ntry:\n    main({argv!r})\nexcept SystemExit:\n    pass"
    assert loaded_after(code) == set()


def test_using_a_class_registers_moeclip_with_transformers():
    code = (
        "from moeclip_hf import MoECLIPConfig\n"
        "from transformers import AutoConfig\n"
        "assert type(AutoConfig.for_model('moeclip')) is MoECLIPConfig"
    )
    assert "torch" in loaded_after(code)
