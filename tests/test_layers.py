"""The package is layered: a module imports only modules below it, and config sits at the bottom."""

import ast
import re
from pathlib import Path

import maml_convergence

# Bottom to top. A module may import any module listed before it, never one after it.
LAYERS = ["config", "progress", "provenance", "checkpoint", "source_data", "stability", "theory", "data", "tasks",
          "models", "maml",
          "higher_backend", "curvature", "curvature_mlp", "sharpness", "grid", "guideline", "audit", "experiments",
          "paper_grid", "claims", "plots", "cli", "__main__"]
PACKAGE = Path(maml_convergence.__file__).parent


def imports_of(module: str) -> set[str]:
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            found |= {node.module} if node.module else {alias.name for alias in node.names}
    return found


def test_every_module_has_a_layer():
    assert {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"} == set(LAYERS)


def test_no_import_runs_up_a_layer():
    upward = {(m, i) for m in LAYERS for i in imports_of(m) if LAYERS.index(i) >= LAYERS.index(m)}
    assert upward == set()


def test_config_imports_nothing_of_the_package():
    assert imports_of("config") == set()


def test_the_package_docstring_names_every_module_bottom_up():
    named = [m for m in re.findall(r"``(\w+)``", maml_convergence.__doc__) if m in LAYERS]
    assert named == [m for m in LAYERS if m != "__main__"]
