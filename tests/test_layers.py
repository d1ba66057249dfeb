"""The package is layered: a module imports only modules below it; the table of problems and the config sit at
the bottom."""

import ast
import re
from pathlib import Path

import pytest

import maml_convergence

# Bottom to top. A module may import any module listed before it, never one after it.
LAYERS = ["problems", "config", "figures", "progress", "provenance", "captions", "checkpoint", "source_data",
          "stability", "theory", "data", "tasks", "task_sources",
          "models", "maml",
          "higher_backend", "curvature", "curvature_mlp", "sharpness", "grid", "projection", "guideline", "audit",
          "experiments", "paper_grid", "claims", "reproduction", "plots", "step", "steps", "user_commands", "cli",
          "__main__"]
PACKAGE = Path(maml_convergence.__file__).parent
# Within each subpackage, bottom to top likewise.
SUBPACKAGE_LAYERS = {
    "claims": ["results", "verdicts", "edge", "linear", "sinusoid", "few_shot", "guideline", "curves", "render",
               "numbers", "__init__"],
    "guideline": ["ladder", "protocol", "run", "probe", "report", "__init__"],
}


def _imports(path: Path, level: int) -> set[str]:
    """What ``path`` imports ``level`` packages up (1: its own package)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == level:
            found |= {node.module.split(".")[0]} if node.module else {alias.name for alias in node.names}
    return found


def imports_of(module: str) -> set[str]:
    """The package's modules that ``module`` imports (a subpackage: any of its files); a name the package itself
    defines (``__version__``) is no module."""
    found = set().union(*(_imports(f, 2) for f in (PACKAGE / module).glob("*.py"))) if (PACKAGE / module).is_dir() \
        else _imports(PACKAGE / f"{module}.py", 1)
    return {m for m in found if (PACKAGE / f"{m}.py").exists() or (PACKAGE / m).is_dir()}


def test_every_module_has_a_layer():
    modules = {p.stem for p in PACKAGE.glob("*.py")} | {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert modules - {"__init__"} == set(LAYERS)
    for package, layers in SUBPACKAGE_LAYERS.items():
        assert {p.stem for p in (PACKAGE / package).glob("*.py")} == set(layers), package


def test_no_import_runs_up_a_layer():
    upward = {(m, i) for m in LAYERS for i in imports_of(m) if LAYERS.index(i) >= LAYERS.index(m)}
    assert upward == set()


@pytest.mark.parametrize("package", SUBPACKAGE_LAYERS)
def test_no_import_runs_up_a_layer_within_a_subpackage(package):
    layers = SUBPACKAGE_LAYERS[package]
    within = {m: _imports(PACKAGE / package / f"{m}.py", 1) for m in layers}
    upward = {(m, i) for m, found in within.items() for i in found if layers.index(i) >= layers.index(m)}
    assert upward == set()


def test_the_bottom_imports_nothing_of_the_package_but_the_table_of_problems():
    assert imports_of("problems") == set() and imports_of("config") == {"problems"}


def test_the_package_docstring_names_every_module_bottom_up():
    named = [m for m in re.findall(r"``(\w+)``", maml_convergence.__doc__) if m in LAYERS]
    assert named == [m for m in LAYERS if m != "__main__"]
