"""Installable, not only editable: the wheel `pip install .` builds runs in a fresh environment, away from the
checkout, with its defaults inside the package."""

import subprocess
import sys
import sysconfig
import textwrap
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

USER_MODULE = textwrap.dedent("""
    import torch

    def model():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(1, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))

    def sample_tasks(i):  # 4 regression tasks y = a x, 5 support and 5 query points
        g = torch.Generator().manual_seed(i)
        a, x = torch.rand(4, 1, 1, generator=g), torch.rand(4, 10, 1, generator=g)
        return x[:, :5], a * x[:, :5], x[:, 5:], a * x[:, 5:]
""")


@pytest.mark.slow
def test_the_built_wheel_runs_suggest_in_a_fresh_environment(tmp_path):
    run = lambda *cmd, **kw: subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)  # noqa: E731
    built = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                "-w", str(tmp_path / "wheel"), str(ROOT))
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next((tmp_path / "wheel").glob("maml_convergence-*.whl"))
    env = tmp_path / "env"
    venv.create(env, with_pip=False)
    python = env / "bin" / "python"
    # Reuse this environment's torch and the other dependencies: a path line, which (unlike a site folder)
    # runs none of this environment's .pth files, so the editable install of the checkout stays out.
    site = run(str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip()
    Path(site, "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = run(sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", str(wheel))
    assert installed.returncode == 0, installed.stderr[-2000:]
    work = tmp_path / "elsewhere"
    work.mkdir()
    (work / "mymodels.py").write_text(USER_MODULE)
    where = run(str(python), "-c", "import maml_convergence, maml_convergence.config as c; "
                "print(maml_convergence.__file__); print(c.load()['seed'])", cwd=work)
    assert where.returncode == 0 and str(env) in where.stdout and str(ROOT) not in where.stdout, where
    version = run(str(env / "bin" / "maml-convergence"), "--version", cwd=work)
    assert version.returncode == 0 and version.stdout.strip().endswith("0.1.0"), version
    suggested = run(str(env / "bin" / "maml-convergence"), "suggest", "--model", "mymodels:model",
                    "--tasks", "mymodels:sample_tasks", "--iterations", "3", "--out", "report.json", cwd=work)
    assert suggested.returncode in (0, 1), suggested.stderr[-2000:]  # 1: no cell trained in 3 iterations, said so
    assert (work / "report.json").is_file(), suggested.stderr[-2000:]
