"""The table of problems (src/maml_convergence/problems.py) is the one place a problem is named, and every
task family does what the grid runner asks of it (tasks.TaskFamily)."""

import ast
import dataclasses
import io
import re
import tokenize
from pathlib import Path

import pytest
import torch

from maml_convergence import config, figures, models, problems, tasks
from maml_convergence.tasks import EVAL_STREAM, FAMILIES
from test_images import fake_omniglot  # noqa: F401 - a fixture

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "maml_convergence"
# The one name of a problem that is also another thing's name: the linear problem's network is called linear
# too (the key of models.MODELS), and a model's name is not a problem's.
NOT_A_PROBLEM = {("models.py", "MODELS", "linear")}
# A problem's name as the key of a config section (cfg["sinusoid"]: the schema defines the sections): the
# receivers that are a config.
CONFIG = re.compile(r"(^|\.)(cfg|config)$|\['config'\]$|^paper_scale\(\)$")
CONFIG_KEY = re.compile(r"(cfg|config)\s*\[\s*$")  # the same in a rule file or a report template


def named(value) -> bool:
    """A string that names a problem: the name itself, or one alternative of a pattern ("omniglot|miniimagenet")."""
    return isinstance(value, str) and any(part in problems.NAMES for part in value.split("|"))


def strays_in_python(source: str, where: str) -> list[str]:
    """Problem names written as string literals in Python source, other than as the key of a config section and
    the exceptions of NOT_A_PROBLEM (file, dict, key)."""
    tree = ast.parse(source)
    keys = {id(node.slice) for node in ast.walk(tree)
            if isinstance(node, ast.Subscript) and CONFIG.search(ast.unparse(node.value))}
    excepted = {id(key) for node in ast.walk(tree) if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict)
                for target in node.targets if isinstance(target, ast.Name) for key in node.value.keys
                if isinstance(key, ast.Constant) and (Path(where).name, target.id, key.value) in NOT_A_PROBLEM}
    return [f"{where}:{node.lineno}: {node.value!r}" for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and named(node.value) and id(node) not in keys | excepted]


def strays_in_rules(text: str, where: str) -> list[str]:
    """The same for a Snakemake file (Python's tokens, not Python's grammar): each string token that names a
    problem and is not the key of a config section."""
    found, before = [], []
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type == tokenize.STRING and not token.string.lower().startswith(("f", "rf", "fr")):
            if named(ast.literal_eval(token.string)) and not CONFIG_KEY.search(" ".join(before[-2:]) + " "):
                found.append(f"{where}:{token.start[0]}: {token.string}")
        if token.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT):
            before.append(token.string)
    return found


def strays_in_text(text: str, where: str) -> list[str]:
    """The same for a report template (Jinja, not Python): a quoted string that names a problem and is not the key
    of a config section."""
    return [f"{where}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0)}"
            for m in re.finditer(r"""(["'])([^"'\n]*)\1""", text)
            if named(m.group(2)) and not CONFIG_KEY.search(text[:m.start()])]


def test_no_problem_is_named_outside_the_table():
    strays = []
    for path in sorted([*PACKAGE.rglob("*.py"), *(ROOT / "benchmarks").glob("*.py")]):
        if path.name != "problems.py":
            strays += strays_in_python(path.read_text(), str(path.relative_to(ROOT)))
    rules = ROOT / "rules"
    for path in [ROOT / "Snakefile", *sorted(rules.rglob("*.smk"))]:
        strays += strays_in_rules(path.read_text(), str(path.relative_to(ROOT)))
    for path in sorted(rules.rglob("*.rst")):
        strays += strays_in_text(path.read_text(), str(path.relative_to(ROOT)))
    assert strays == []


def test_the_stray_check_finds_a_name_written_again():
    assert strays_in_python('FEW = ("omniglot", "miniimagenet")\nx = cfg["omniglot"]["k_shot"]', "a.py") == \
        ["a.py:1: 'omniglot'", "a.py:1: 'miniimagenet'"]
    assert strays_in_python('if dataset == "sinusoid": pass', "b.py") == ["b.py:1: 'sinusoid'"]
    assert sorted(strays_in_python('PREPARED["omniglot"]; self.cfg["linear"]; x = "omniglot|miniimagenet"', "c.py")) \
        == ["c.py:1: 'omniglot'", "c.py:1: 'omniglot|miniimagenet'"]
    assert strays_in_python('MODELS = {"linear": f, "sinusoid": g}\nOTHER = {"linear": f}', "models.py") == \
        ["models.py:1: 'sinusoid'", "models.py:2: 'linear'"]
    assert strays_in_rules('dataset="omniglot",\nconfig["linear"]["orders"]\nx=["sinusoid", "linear"]', "c.smk") \
        == ['c.smk:1: "omniglot"', 'c.smk:3: "sinusoid"', 'c.smk:3: "linear"']
    assert strays_in_rules('dataset="omniglot|miniimagenet"\nshell: "run --x \'a\' b", d="linear"', "d.smk") == \
        ['d.smk:1: "omniglot|miniimagenet"', 'd.smk:2: "linear"']
    assert strays_in_text('{{ snakemake.config["sinusoid"] }} {% if d == "omniglot" %}', "e.rst") == \
        ['e.rst:1: "omniglot"']


def test_every_problem_names_a_family_a_model_a_section_and_a_figure_that_exist():
    sections = config.schema()["properties"]
    for p in problems.PROBLEMS:
        assert p.family in FAMILIES and p.model in models.MODELS and p.name in sections
        assert p.figure is None or p.figure in figures.names()
        assert p.repeats in ("draw", "seed") and p.dtype in ("float32", "float64")
        assert (p.prepared is None) == (p.images_per_class is None) == (p.name not in problems.FEW_SHOT)
    assert len(problems.NAMES) == len(set(problems.NAMES))
    with pytest.raises(KeyError, match="the problems are linear, sinusoid"):
        problems.get("sinusoids")


REGRESSION = [tasks.LinearRegressionTask(points=6, seed=2), tasks.SinusoidTasks(tasks=5, seed=2),
              tasks.SampledTasks(lambda i: tasks.SinusoidTasks(tasks=3, seed=7).sample(i), seed=1)]


@pytest.mark.parametrize("family", REGRESSION, ids=lambda f: type(f).__name__)
def test_a_family_streams_what_it_samples_and_evaluates_on_its_reserved_batch(family):
    seeds = [family, dataclasses.replace(family, seed=family.seed + 1)]
    stream = type(family).stream(seeds, 4, torch.float64, "cpu")
    pairs = [(0, 0), (1, 3), (0, 2)]
    got = stream.get(pairs)
    for k, (s, it) in enumerate(pairs):
        one = seeds[s].sample(it, dtype=torch.float64)
        for f in ("xs", "ys", "xq", "yq"):
            assert torch.equal(getattr(got, f)[k], getattr(one, f))
    evaluation = family.eval_batch(torch.float64, "cpu")
    assert torch.equal(evaluation.xq, family.sample(EVAL_STREAM, dtype=torch.float64).xq)
    assert family.heldout_batch(torch.float64, "cpu") is None


def test_a_few_shot_family_evaluates_on_its_own_task_counts(fake_omniglot):  # noqa: F811
    family = tasks.FewShotTasks(dataset=problems.OMNIGLOT, path=fake_omniglot, tasks=2, eval_tasks=3,
                                heldout_tasks=4, k_query=2)
    assert family.eval_batch(torch.float32, "cpu").xs.shape[0] == 3
    heldout = family.heldout_batch(torch.float32, "cpu")
    assert heldout.xs.shape[0] == 4
    assert torch.equal(heldout.xq, family.heldout().sample(EVAL_STREAM, tasks=4).xq)
    assert dataclasses.replace(family, heldout_tasks=0).heldout_batch(torch.float32, "cpu") is None


def test_the_grid_runner_never_asks_which_family_it_has():
    tree = ast.parse((PACKAGE / "grid.py").read_text())
    named = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)} | {
        node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)} | {
        node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)}
    assert named.isdisjoint({*FAMILIES, "SampledTasks", "FewShotStream", "heldout_tasks", "eval_tasks"})
    assert "hasattr" not in named


@pytest.mark.parametrize("family", [*FAMILIES.values(), tasks.SampledTasks], ids=lambda f: f.__name__)
def test_every_family_has_the_protocol_and_every_family_of_the_table_builds_from_its_section(family):
    for method in ("sample", "eval_batch", "heldout_batch", "stream"):
        assert callable(getattr(family, method)), method
    assert dataclasses.is_dataclass(family) and "seed" in {f.name for f in dataclasses.fields(family)}
    if family.__name__ in FAMILIES:
        cfg = config.load()
        for p in problems.PROBLEMS:
            if p.family == family.__name__:
                built = family.from_config(p.name, cfg[p.name], 7, data_path="x.npz")
                assert isinstance(built, family) and built.seed == 7
