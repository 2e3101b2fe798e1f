"""Self-contained code for exported MoECLIP repositories, generated from the package's own sources.

`AutoModel.from_pretrained(repo, trust_remote_code=True)` must work where `moeclip_hf` is not installed
(the Hub's "Use this model" snippet, Inference Endpoints). transformers supports that through `auto_map`:
it copies the module file an entry names, plus every file that module imports as `from .name import ...`,
into one flat package of its modules cache. So the exported code has to be flat.

Rather than keeping a second, hand-maintained copy of the model code, this module generates the flat
files from the package's own sources at export time: it follows the package-internal imports of the
modules that define the configuration, model, processor and pipeline, gives every module a flat name
(`moeclip_hf/modeling/moe_lora/layer.py` -> `moe_lora_layer.py`) and rewrites each package import to
the flat relative import of that name. The exported code therefore never drifts from the package.

`auto_map` and `custom_pipelines` all point at one generated entry module, `moeclip.py`, which imports the
four public classes. transformers copies a local folder's remote code into a cache folder named by the
hash of the *entry file's* import closure; with one entry per class (config, model, processor, pipeline)
the closures differ, each class gets its own copy of the shared modules, and objects crossing between
them (the config's `MoELoraConfig` reaching the model's tuner) fail `isinstance` checks. One entry module
means one closure, one copy, one set of classes.

The endpoint handler (`handler.py`) and the Space app (`app.py`) are run as top-level scripts, where relative
imports do not work, so they are *bundled* instead (`bundle_source`): the entry module and the package modules
it imports are concatenated into one file, dependencies first, their package imports dropped. A name defined
by two bundled modules is refused, so the bundle means what the package means.
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import re
import sys
from collections.abc import Iterable
from pathlib import Path

from ..configuration import MoECLIPConfig
from ..modeling.modeling_moeclip import MoECLIPModel
from ..modeling.processing_moeclip import MoECLIPProcessor
from ..inference.pipeline import ZeroShotAnomalyDetectionPipeline
from ..inference.task import TASK

PACKAGE = __name__.split(".")[0]
#: The flat module every `auto_map` and `custom_pipelines` entry names.
ENTRY_MODULE = "moeclip"
#: The classes an exported repository exposes through remote code.
EXPORTED_CLASSES = (MoECLIPConfig, MoECLIPModel, MoECLIPProcessor, ZeroShotAnomalyDetectionPipeline)
DISTRIBUTION = "moeclip-hf"
#: Needed by every export whatever the code imports: the weights are stored as safetensors.
ALWAYS_REQUIRED = ("safetensors",)

_IMPORT_HEADER = re.compile(r"from\s+[.\w]+\s+import")
_REQUIREMENT_NAME = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def flat_module_name(module: str) -> str:
    """The flat file stem of a package module: drop the package and its top-level folder, join the rest.

    `moeclip_hf.modeling.moe_lora.layer` -> `moe_lora_layer`, `moeclip_hf.modeling.moe_lora` (a package
    `__init__`) -> `moe_lora`, `moeclip_hf.pipelines` -> `pipelines`.
    """
    parts = module.split(".")
    if parts[0] != PACKAGE or len(parts) < 2:
        raise ValueError(f"{module!r} is not a module of {PACKAGE}.")
    inner = parts[1:]
    return "_".join(inner[1:] if len(inner) > 1 else inner)


def _source_path(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ValueError(f"Cannot find the source file of {module}.")
    return Path(spec.origin)


def _package_imports(module: str, tree: ast.Module) -> list[tuple[ast.ImportFrom, str]]:
    """Each `from ... import` statement of `tree` that names a package module, with that module's full name.

    Plain `import moeclip_hf.x` and `from . import x` forms have no flat equivalent that keeps their names,
    so they are refused rather than exported broken.
    """
    is_package = _source_path(module).name == "__init__.py"
    anchor = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(alias.name.split(".")[0] == PACKAGE for alias in node.names):
            raise ValueError(f"{module}, line {node.lineno}: write `from ... import` to import package modules.")
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            if node.module is None:
                raise ValueError(
                    f"{module}, line {node.lineno}: `from . import name` cannot be flattened; name the module."
                )
            target = importlib.util.resolve_name("." * node.level + node.module, anchor)
        elif node.module and node.module.split(".")[0] == PACKAGE:
            target = node.module
        else:
            continue
        found.append((node, target))
    return found


def flatten_source(module: str) -> tuple[str, list[str]]:
    """The source of `module` with its package imports rewritten to flat relative imports.

    Returns the new source and the package modules it imports (which must be exported too).
    """
    path = _source_path(module)
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines(keepends=True)
    imports = _package_imports(module, ast.parse(source, filename=str(path)))
    for node, target in imports:
        line = lines[node.lineno - 1]
        header = _IMPORT_HEADER.match(line, node.col_offset)
        if header is None:
            raise ValueError(f"{path}, line {node.lineno}: cannot locate the `from ... import` to rewrite.")
        flat_header = f"from .{flat_module_name(target)} import"
        lines[node.lineno - 1] = line[: node.col_offset] + flat_header + line[header.end() :]
    relative = path.relative_to(_source_path(PACKAGE).parent.parent).as_posix()
    banner = f"# Generated from {relative} by {__name__} at export; edit the package source, not this file.\n"
    return banner + "".join(lines), [target for _, target in imports]


def collect_sources(entry_modules: Iterable[str]) -> dict[str, str]:
    """Flat file name -> flattened source for the entry modules and every package module they reach."""
    pending, seen, files = list(entry_modules), set(), {}
    while pending:
        module = pending.pop()
        if module in seen:
            continue
        seen.add(module)
        source, imported = flatten_source(module)
        name = f"{flat_module_name(module)}.py"
        if name in files:
            raise ValueError(f"Two package modules flatten to {name}; rename one of them.")
        files[name] = source
        pending.extend(imported)
    return files


def _bundle_order(entry_module: str) -> list[str]:
    """The entry module and the package modules it imports, dependencies first."""
    order: list[str] = []

    def visit(module: str, path: tuple[str, ...]) -> None:
        if module in order:
            return
        if module in path:
            raise ValueError(f"Import cycle between package modules: {' -> '.join((*path, module))}.")
        source = _source_path(module).read_text(encoding="utf-8")
        for _, target in _package_imports(module, ast.parse(source)):
            visit(target, (*path, module))
        order.append(module)

    visit(entry_module, ())
    return order


def _bundled_body(module: str, keep_docstring: bool) -> tuple[str, str | None, dict[str, str]]:
    """A module's source without its package imports, `from __future__` line and `__all__`; its docstring; and
    the top-level names it defines (name -> kind), for the collision check."""
    path = _source_path(module)
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source, filename=str(path))
    package_nodes = {id(node) for node, _ in _package_imports(module, tree)}
    docstring = ast.get_docstring(tree, clean=False)
    dropped: set[int] = set()
    defined: dict[str, str] = {}
    for index, node in enumerate(tree.body):
        is_docstring = index == 0 and docstring is not None and isinstance(node, ast.Expr)
        is_future = isinstance(node, ast.ImportFrom) and node.module == "__future__"
        is_all = isinstance(node, ast.Assign) and any(getattr(target, "id", None) == "__all__" for target in node.targets)
        if is_docstring or is_future or is_all or id(node) in package_nodes:
            if id(node) in package_nodes and any(alias.asname for alias in node.names):
                raise ValueError(f"{module}, line {node.lineno}: a bundled module imports package names without `as`.")
            dropped.update(range(node.lineno, node.end_lineno + 1))
            continue
        defined.update(_bound_names(node, module))
    nested = package_nodes - {id(node) for node in tree.body}
    if nested:
        raise ValueError(f"{module}: a bundled module imports package modules inside a function; import them at the top.")
    lines = [line for number, line in enumerate(source.splitlines(keepends=True), start=1) if number not in dropped]
    return "".join(lines).strip() + "\n", docstring if keep_docstring else None, defined


def _bound_names(node: ast.stmt, module: str) -> dict[str, str]:
    """The names a top-level statement binds, each with what it is bound to: the defining module, or for an import
    the imported object (the same import in two modules binds the same thing)."""
    if isinstance(node, ast.Import):
        return {alias.asname or alias.name.split(".")[0]: f"import {alias.name}" for alias in node.names}
    if isinstance(node, ast.ImportFrom):
        return {alias.asname or alias.name: f"from {node.module} import {alias.name}" for alias in node.names}
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name: module}
    targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
    return {name.id: module for target in targets for name in ast.walk(target) if isinstance(name, ast.Name)}


def bundle_source(entry_module: str) -> str:
    """One self-contained file: `entry_module` and every package module it imports, dependencies first.

    The file starts with the entry module's docstring and a note of where it was generated from; each module's
    code follows under a comment naming its source file. A module-level name defined by two different modules
    (or imported from two different places) is refused with an error naming it.
    """
    order = _bundle_order(entry_module)
    owners: dict[str, str] = {}
    sections = []
    docstring = None
    for module in order:
        body, module_docstring, defined = _bundled_body(module, keep_docstring=module == entry_module)
        docstring = module_docstring if module == entry_module else docstring
        for name, owner in defined.items():
            if owners.setdefault(name, owner) != owner:
                raise ValueError(f"Bundling {entry_module}: {name!r} is defined both by {owners[name]!r} and {owner!r}.")
        relative = _source_path(module).relative_to(_source_path(PACKAGE).parent.parent).as_posix()
        sections.append(f"# {'-' * 30} {relative}\n\n{body}")
    sources = ", ".join(_source_path(module).name for module in order)
    header = [
        f'"""{docstring}"""' if docstring else "",
        f"# Generated by {__name__} at export from the package sources ({sources}); edit those, not this file.",
        "",
        "from __future__ import annotations",
    ]
    return "\n".join([*header, "", *sections])


def entry_module_source() -> str:
    """The source of the entry module: one flat relative import per exported class."""
    docstring = '"""The remote-code entry point: `auto_map` and `custom_pipelines` name the classes imported here."""'
    imports = [f"from .{flat_module_name(cls.__module__)} import {cls.__name__}" for cls in EXPORTED_CLASSES]
    return "\n".join([docstring, "", *imports, ""])


def _entry_reference(cls: type) -> str:
    return f"{ENTRY_MODULE}.{cls.__name__}"


def auto_map() -> dict[str, str]:
    """The `auto_map` of config.json: the entry module's config, model and processor classes."""
    return {
        "AutoConfig": _entry_reference(MoECLIPConfig),
        "AutoModel": _entry_reference(MoECLIPModel),
        "AutoProcessor": _entry_reference(MoECLIPProcessor),
    }


def custom_pipelines() -> dict[str, dict]:
    """The `custom_pipelines` of config.json, so that `pipeline(TASK, model=repo, trust_remote_code=True)` works."""
    implementation = _entry_reference(ZeroShotAnomalyDetectionPipeline)
    return {TASK: {"impl": implementation, "pt": ["AutoModel"], "tf": [], "type": "multimodal"}}


def remote_code_files() -> dict[str, str]:
    """Flat file name -> source: the entry module and every package module the exported classes need."""
    files = collect_sources(cls.__module__ for cls in EXPORTED_CLASSES)
    entry = f"{ENTRY_MODULE}.py"
    if entry in files:
        raise ValueError(f"A package module flattens to {entry}, the name reserved for the entry module.")
    return {entry: entry_module_source(), **files}


def write_remote_code(folder: str | Path) -> list[Path]:
    """Write the flat remote-code files into `folder`; returns their paths."""
    folder = Path(folder)
    paths = []
    for name, source in sorted(remote_code_files().items()):
        path = folder / name
        path.write_text(source, encoding="utf-8")
        paths.append(path)
    return paths


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def third_party_imports(paths: Iterable[str | Path]) -> set[str]:
    """Top-level names of the non-standard-library modules the files import (relative imports excluded)."""
    names = set()
    for path in paths:
        for node in ast.walk(ast.parse(Path(path).read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return {name for name in names if name not in sys.stdlib_module_names and name != "__future__"}


def requirements(paths: Iterable[str | Path], provided: Iterable[str] = ()) -> list[str]:
    """requirements.txt lines for code that imports what `paths` import, except the `provided` modules.

    Module names are mapped to their distributions (`PIL` -> `pillow`) and each distribution gets the
    version range this package declares for it, so an endpoint installs what the package was tested with.
    """
    distributions = importlib.metadata.packages_distributions()
    needed = {_normalized(name) for name in ALWAYS_REQUIRED}
    for module in third_party_imports(paths) - set(provided):
        if module not in distributions:
            raise ValueError(f"The exported code imports {module!r}, which no installed distribution provides.")
        needed.update(_normalized(name) for name in distributions[module])
    declared = _declared_requirements()
    return sorted(declared.get(name, name) for name in needed)


def _declared_requirements() -> dict[str, str]:
    """Normalised name -> requirement line of this package's unconditional dependencies (extras left out)."""
    try:
        lines = importlib.metadata.requires(DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        return {}  # a source tree that was never installed declares no ranges
    declared = {}
    for line in lines:
        match = _REQUIREMENT_NAME.match(line)
        if match and ";" not in line:
            declared[_normalized(match.group(1))] = line.strip()
    return declared


__all__ = [
    "ENTRY_MODULE",
    "bundle_source",
    "EXPORTED_CLASSES",
    "auto_map",
    "collect_sources",
    "custom_pipelines",
    "entry_module_source",
    "flat_module_name",
    "flatten_source",
    "remote_code_files",
    "requirements",
    "third_party_imports",
    "write_remote_code",
]
