"""The package is layered: a module imports only modules below it; the table of problems and the config sit at
the bottom."""

import ast
import re
from pathlib import Path

import maml_convergence

# Bottom to top. A module may import any module listed before it, never one after it.
LAYERS = ["problems", "config", "figures", "progress", "provenance", "checkpoint", "source_data", "stability",
          "theory", "data", "tasks", "task_sources",
          "models", "maml",
          "higher_backend", "curvature", "curvature_mlp", "sharpness", "grid", "projection", "guideline", "audit",
          "experiments", "paper_grid", "claims", "reproduction", "plots", "step", "steps", "user_commands", "cli",
          "__main__"]
PACKAGE = Path(maml_convergence.__file__).parent
# Within the claims package, bottom to top likewise.
CLAIMS_LAYERS = ["results", "verdicts", "edge", "linear", "sinusoid", "few_shot", "guideline", "curves", "render",
                 "numbers", "__init__"]


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
    assert {p.stem for p in (PACKAGE / "claims").glob("*.py")} == set(CLAIMS_LAYERS)


def test_no_import_runs_up_a_layer():
    upward = {(m, i) for m in LAYERS for i in imports_of(m) if LAYERS.index(i) >= LAYERS.index(m)}
    assert upward == set()


def test_no_import_runs_up_a_layer_within_the_claims():
    within = {m: _imports(PACKAGE / "claims" / f"{m}.py", 1) for m in CLAIMS_LAYERS}
    upward = {(m, i) for m, found in within.items() for i in found if CLAIMS_LAYERS.index(i) >= CLAIMS_LAYERS.index(m)}
    assert upward == set()


def test_the_bottom_imports_nothing_of_the_package_but_the_table_of_problems():
    assert imports_of("problems") == set() and imports_of("config") == {"problems"}


def test_the_package_docstring_names_every_module_bottom_up():
    named = [m for m in re.findall(r"``(\w+)``", maml_convergence.__doc__) if m in LAYERS]
    assert named == [m for m in LAYERS if m != "__main__"]
