"""The recipes of docs/extending.md, carried out on toys: a new figure is four files (docs/figures.md among them,
rewritten by update-docs), the docs check passes and the workflow schedules it; a new claim is a judge and one
registry line, judged on results whose answer is known."""

import json
import math
import os
import re
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from conftest import env_with_bin
from maml_convergence import claims, cli, config

# what the recipe edits or reads
WORKFLOW = ["Snakefile", "rules", "config", "notebooks", "src", "environment.yml", "docs"]
TOY_RULES = '''# A toy figure: Fig. 2's curves again, drawn by a notebook of its own.


rule toy_curves:
    output:
        curves="results/toy/curves.csv",
        provenance="results/toy/provenance.json",
    params:
        config=step_config("fig2-curves"),
    shell:
        "maml-convergence fig2-curves --config-json {params.config:q} --out {output.curves}"
        " --provenance {output.provenance}"


FIGURE_SOURCES["toy"] = {"curves": rules.toy_curves.output.curves,
                         "curves_provenance": rules.toy_curves.output.provenance}
'''


def git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


@pytest.mark.slow
def test_a_new_figure_is_four_files_and_the_workflow_schedules_it(root, bin_dir, tmp_path):
    copy = tmp_path / "repo"
    copy.mkdir()
    for name in WORKFLOW:
        if (root / name).is_dir():
            shutil.copytree(root / name, copy / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy(root / name, copy / name)
    for meta in (root / "figures" / "data").glob("*/provenance.json"):  # the config each figure was drawn with
        (copy / meta.relative_to(root)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(meta, copy / meta.relative_to(root))
    git(copy, "init", "-q")
    git(copy, "add", "-A")
    git(copy, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "before")

    table = copy / "src" / "maml_convergence" / "figures.py"
    table.write_text(table.read_text().replace('    Figure("guideline",',
                                               '    Figure("toy", rules="toy", notebook="toy",'
                                               ' commands=("fig2-curves",), functions=("fig2_curves",)),\n'
                                               '    Figure("guideline",'))
    (copy / "rules" / "toy.smk").write_text(TOY_RULES)
    notebook = json.loads((copy / "notebooks" / "fig2.ipynb").read_text())
    notebook["cells"][0]["source"] = ["# A toy figure — Fig. 2's curves again\n", "\n",
                                      "β_c(α) for the eigenvalues `fig2.eigenvalues`, drawn again.\n"]
    (copy / "notebooks" / "toy.ipynb").write_text(json.dumps(notebook, indent=1))
    env = {**env_with_bin(bin_dir), "PYTHONPATH": str(copy / "src")}  # the copy's table of figures
    docs = subprocess.run([sys.executable, "-m", "maml_convergence", "update-docs", "--pages", "docs/figures.md"],
                          cwd=copy, capture_output=True, text=True, env=env)
    assert docs.returncode == 0, docs.stdout + docs.stderr

    touched = git(copy, "status", "--porcelain", "--untracked-files=all").splitlines()
    assert sorted(line[3:] for line in touched) == ["docs/figures.md", "notebooks/toy.ipynb", "rules/toy.smk",
                                                    "src/maml_convergence/figures.py"], touched
    assert len(touched) == 4
    diff = git(copy, "diff", "-U0", "docs/figures.md")
    assert [line for line in diff.splitlines() if line.startswith("-") and not line.startswith("---")] == []
    assert [line[1:] for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++")] == [
        "| A toy figure | [rules/toy.smk](../rules/toy.smk) | `fig2-curves` | "
        "`fig2_curves` | `fig2` | [notebooks/toy.ipynb](../notebooks/toy.ipynb) |",
        '| <img src="../figures/toy.png" width="300" alt="toy"><br>`figures/toy` | **A toy figure — Fig. 2\'s curves '
        'again.** β_c(α) for the eigenvalues 1.0, 2.0, 3.0, 4.0, 5.0, drawn again. | '
        '[notebooks/toy.ipynb](../notebooks/toy.ipynb) |']  # two rows added, none changed
    check = subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; "
                            "from maml_convergence import captions; "
                            "text = Path('docs/figures.md').read_text(); "
                            "sys.exit(captions.with_figure_tables(text) != text)"],
                           cwd=copy, capture_output=True, text=True, env=env)
    assert check.returncode == 0, check.stdout + check.stderr  # test_docs' check, on the copy

    env = {**env_with_bin(bin_dir), "PYTHONPATH": str(copy / "src")}  # the copy's table of figures
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-s", str(copy / "Snakefile"), "--directory",
                           str(tmp_path / "run"), "--configfile", str(copy / "config" / "quick.yaml"),
                           "--forceall", "figures/toy.png"], capture_output=True, text=True, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    jobs = re.findall(r"^(\w+)\s+(\d+)$", out.split("Job stats:")[1].split("total")[0], re.M)
    assert dict(jobs) == {"toy_curves": "1", "source_data": "1", "toy": "1"}
    assert "figures/data/toy/provenance.json" in out and "notebooks/toy.ipynb" in out
    caption = tmp_path / "run" / ".snakemake" / "maml-convergence" / "report" / "toy.rst"
    assert "A toy figure" in caption.read_text()  # its report caption


def beta_c_at_alpha_zero(ids, results):
    """A toy claim with a known answer: Fig. 2's beta_c at alpha = 0 is 2 / lambda for each eigenvalue."""
    curves = results.table(results.path("fig2"))
    at_zero = curves[curves.alpha == 0]
    error = float((at_zero.beta_c * at_zero["lambda"] / 2 - 1).abs().max())
    return [{"id": ids[0], "claim": "beta_c(0) = 2 / lambda", "short": "beta_c(0) = 2 / lambda",
             "verdict": "holds" if error < 1e-9 else "fails", "why": f"largest relative error {error:.2g}",
             "summary": f"largest relative error {error:.2g}", "measured": {"error": error},
             "rule": "holds if every relative error < 1e-9", "rests_on": "Fig. 2's curves"}]


def test_a_new_claim_is_one_judge_and_one_registry_line(tmp_path, monkeypatch):
    out = tmp_path / "fig2"
    assert cli.main(["fig2-curves", "--configfile", "--out", str(out / "curves.csv"),
                     "--provenance", str(out / "provenance.json")]) == 0
    monkeypatch.setattr(claims, "REGISTRY", claims.REGISTRY + (claims.Family(("X1",), ("fig2",),
                                                                             beta_c_at_alpha_zero),))
    cfg = config.load()
    judged = claims.evaluate(cfg, {"fig2": out / "curves.csv"})
    assert [(row["id"], row["verdict"]) for row in judged["claims"]] == [("X1", "holds")]
    assert "X1" in claims.to_markdown(judged)

    curves = pd.read_csv(out / "curves.csv")
    curves.loc[curves.alpha == 0, "beta_c"] *= 1.01  # a table whose answer is known to be wrong
    curves.to_csv(out / "curves.csv", index=False)
    assert [row["verdict"] for row in claims.evaluate(cfg, {"fig2": out / "curves.csv"})["claims"]] == ["fails"]


TOY_FAMILY = '''

@dataclass(frozen=True)
class ToyLines(ReservedEvaluation):
    """y = a x, a ~ U[0.5, 2], x ~ U[-1, 1]: ``points`` support and ``points`` query points a task."""

    tasks: int = 4
    points: int = 5
    seed: int = 0

    def sample(self, iteration: int, dtype=torch.float32, device=None) -> Batch:
        g = _generator(self.seed, iteration)
        a = _uniform(g, (self.tasks, 1, 1), (0.5, 2.0))
        x = _uniform(g, (self.tasks, 2 * self.points, 1), (-1.0, 1.0))
        k, y = self.points, a * x
        return Batch(x[:, :k], y[:, :k], x[:, k:], y[:, k:]).to(dtype=dtype).to(device)

    @classmethod
    def stream(cls, seeds, iterations: int, dtype, device) -> StackedStream:
        return StackedStream(seeds, iterations, dtype, device)

    @classmethod
    def from_config(cls, name: str, section: dict, seed: int, data_path: str | None = None) -> "ToyLines":
        return cls(tasks=section["tasks"], points=section["points"], seed=seed)
'''
TOY_SECTION = '''
toy:
  iterations: 20
  seeds: [0, 1]
  tasks: 4
  points: 5
  alpha_range: [0.1, 0.1]
  beta_range: [0.01, 0.02]
  mantissas: [1, 2]
'''
TOY_SCHEMA = '''  toy:
    type: object
    additionalProperties: false
    required: [iterations, seeds, tasks, points, alpha_range, beta_range, mantissas]
    properties:
      iterations: {$ref: "#/$defs/positive_int"}
      seeds: {$ref: "#/$defs/seeds"}
      tasks: {$ref: "#/$defs/positive_int"}
      points: {$ref: "#/$defs/positive_int"}
      alpha_range: {$ref: "#/$defs/rate_range"}
      beta_range: {$ref: "#/$defs/rate_range"}
      mantissas: {$ref: "#/$defs/mantissas"}
'''


@pytest.mark.slow
def test_a_new_task_family_is_four_files_and_trains_through_the_cli(root, tmp_path):
    copy = tmp_path / "repo"
    for name in ("src", "config"):
        shutil.copytree(root / name, copy / name, symlinks=True,  # the package's defaults link to config/
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    git(copy, "init", "-q")
    git(copy, "add", "-A")
    git(copy, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "before")

    family = copy / "src" / "maml_convergence" / "tasks.py"
    text = family.read_text()
    anchor = "\n\n# The families the table of problems names"
    family.write_text(text.replace(anchor, TOY_FAMILY + anchor).replace(
        "(LinearRegressionTask, SinusoidTasks, FewShotTasks)", "(LinearRegressionTask, SinusoidTasks, FewShotTasks, "
        "ToyLines)"))
    table = copy / "src" / "maml_convergence" / "problems.py"
    table.write_text(table.read_text().replace("\n)\nBY_NAME", '\n    Problem("toy", title="toy lines", '
                                               'family="ToyLines", model="linear"),\n)\nBY_NAME'))
    (copy / "config" / "config.yaml").write_text((copy / "config" / "config.yaml").read_text() + TOY_SECTION)
    schema = copy / "config" / "schema.yaml"
    schema.write_text(schema.read_text().replace("\n  linear:\n", "\n" + TOY_SCHEMA + "  linear:\n", 1))

    touched = git(copy, "status", "--porcelain", "--untracked-files=all").splitlines()
    assert sorted(line.split()[-1] for line in touched) == ["config/config.yaml", "config/schema.yaml",
                                                           "src/maml_convergence/problems.py",
                                                           "src/maml_convergence/tasks.py"]
    env = {**os.environ, "PYTHONPATH": str(copy / "src"), "OMP_NUM_THREADS": "1"}
    out = tmp_path / "toy"
    proc = subprocess.run([sys.executable, "-m", "maml_convergence", "grid", "--problem", "toy", "--out",
                           str(out / "grid.csv"), "--provenance", str(out / "provenance.json")],
                          capture_output=True, text=True, env=env, cwd=copy)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    grid = pd.read_csv(out / "grid.csv")
    assert sorted(set(zip(grid.alpha, grid.beta))) == [(0.0, 0.01), (0.0, 0.02), (0.1, 0.01), (0.1, 0.02)]
    assert sorted(grid.seed.unique()) == [0, 1] and (grid.status == "ok").all()
    assert (grid.final_loss < grid.initial_loss).all()  # y = a x is learnt by the linear model at these rates
    prov = json.loads((out / "provenance.json").read_text())
    assert set(prov["config"]) >= {"toy", "seed"} and not {"sinusoid", "omniglot"} & set(prov["config"])
    probe = subprocess.run([sys.executable, "-m", "maml_convergence", "suggest", "--problem", "toy",
                            "--iterations", "10"], capture_output=True, text=True, env=env, cwd=copy)
    assert probe.returncode == 0, (probe.stdout + probe.stderr)[-3000:]
    answer = json.loads(probe.stdout.strip().splitlines()[-1])  # suggest probes the new problem too
    assert answer["recommended"]["outcome"] == "trained" and 0 < answer["alpha_c"] < math.inf
