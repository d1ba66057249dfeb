"""The Snakemake workflow: lint, dry-run, a quick end-to-end run, and an interrupted run."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import env_with_bin

FIGURES = [f"figures/{f}.{e}" for f in ("fig1", "fig2", "fig3", "fig4a", "fig4b", "fig4c", "fig5")
           for e in ("png", "pdf")]
RESULTS = ["results/fig2/curves.csv", "results/linear/second/grid.csv", "results/linear/first/grid.csv",
           "results/sinusoid/grid.csv", "results/audit/linear_boundary.csv", "results/fig5/curvature.csv",
           "results/fig1/gradients.csv", "results/omniglot/grid.csv", "results/miniimagenet/grid.csv",
           "results/linear/reference.json"]


def snakemake(root, bin_dir, workdir, *args, **kw):
    cmd = [sys.executable, "-m", "snakemake", "-s", str(root / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(root / "config" / "quick.yaml"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env_with_bin(bin_dir), **kw)


def test_lint_is_clean(root, bin_dir):
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--lint"], cwd=root, capture_output=True, text=True,
                          env=env_with_bin(bin_dir))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Congratulations" in proc.stdout + proc.stderr


def test_dry_run_of_paper_config_resolves(root, bin_dir, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-s", str(root / "Snakefile"), "--directory",
                           str(tmp_path)], capture_output=True, text=True, env=env_with_bin(bin_dir))
    assert proc.returncode == 0, proc.stderr
    for rule in ("fig1", "fig2", "fig3", "fig4a", "fig4b", "fig4c", "fig5", "linear_grid", "sinusoid_grid",
                 "linear_audit", "fig5_analysis", "image_chunk", "image_grid", "claims"):
        assert rule in proc.stdout
    # the paper's image grids are split into the configured number of chunk jobs
    assert proc.stdout.count("rule image_chunk:") == 16


@pytest.mark.parametrize("profile", ["slurm", "local-gpu"])
def test_cluster_and_gpu_profiles_resolve(root, bin_dir, tmp_path, profile):
    """Dry-runs through each profile: every chunk is a job that asks for one GPU."""
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-s", str(root / "Snakefile"), "--directory",
                           str(tmp_path), "--profile", str(root / "profiles" / profile)],
                          capture_output=True, text=True, env=env_with_bin(bin_dir))
    assert proc.returncode == 0, proc.stderr[-3000:]
    chunks = [block for block in proc.stdout.split("\n\n") if "rule image_chunk:" in block]
    assert len(chunks) == 16
    assert all("gpu=1" in block for block in chunks)


def test_bad_config_stops_with_the_key(root, bin_dir, tmp_path):
    proc = snakemake(root, bin_dir, tmp_path, "-n", "--config", "seed=-3")
    assert proc.returncode != 0
    assert "config key 'seed'" in proc.stderr and "Traceback" not in proc.stderr


@pytest.fixture(scope="module")
def quick_run(root, bin_dir, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("quick")
    proc = snakemake(root, bin_dir, workdir, "--cores", "2")
    assert proc.returncode == 0, proc.stderr[-4000:]
    return workdir


def test_quick_run_writes_every_figure_and_the_claims(quick_run):
    for rel in FIGURES + RESULTS + ["results/claims.json", "figures/CLAIMS.md"]:
        path = quick_run / rel
        assert path.exists() and path.stat().st_size > 0, rel
    assert (quick_run / "figures/fig4a.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    claims = json.loads((quick_run / "results/claims.json").read_text())
    ids = {c["id"] for c in claims["claims"]}
    assert {"C1", "C2-alpha-second", "C2-beta-second", "C2-alpha-first", "C2-beta-first", "C3", "C4", "C5", "C6",
            "A-sinusoid",
            "A-paper-second", "A-exact-second", "A-paper-first", "A-exact-first"} <= ids
    assert all(c["verdict"] in {"holds", "fails", "inconclusive"} for c in claims["claims"])
    assert [c["id"] for c in claims["claims"] if "LESS than" not in c["rests_on"]] == []  # quick runs say so
    table = (quick_run / "figures/CLAIMS.md").read_text()
    assert all(f"| {i} |" in table for i in ids)


def test_quick_run_results_have_provenance(quick_run):
    prov = json.loads((quick_run / "results/sinusoid/provenance.json").read_text())
    for key in ("config", "seed", "versions", "git_commit", "device", "wall_seconds", "fingerprint"):
        assert key in prov
    grid = pd.read_csv(quick_run / "results/sinusoid/grid.csv")
    assert len(grid) == prov["cells"] and set(grid.status) <= {"ok", "diverged"}
    assert grid.loc[grid.status == "ok", "final_loss"].notna().all()
    assert grid.loc[grid.status == "diverged", "final_loss"].isna().all()


def test_interrupted_run_completes_with_identical_results(root, bin_dir, tmp_path, quick_run):
    """SIGINT while the sinusoid grid runs; the rerun resumes from its checkpoint."""
    slower = tmp_path / "slower.yaml"
    slower.write_text(yaml.safe_dump({"checkpoint_every": 0.0}))
    workdir = tmp_path / "run"
    cmd = [sys.executable, "-m", "snakemake", "-s", str(root / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(root / "config" / "quick.yaml"), str(slower), "--cores", "1",
           "--until", "sinusoid_grid"]
    proc = subprocess.Popen(cmd, env=env_with_bin(bin_dir), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    ckpt = workdir / "results/sinusoid/grid.ckpt"
    deadline = time.monotonic() + 240
    while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ckpt.exists(), "the grid never wrote a checkpoint"
    os.killpg(proc.pid, signal.SIGINT)
    proc.wait(timeout=120)
    assert not (workdir / "results/sinusoid/grid.csv").exists(), "the run finished before the interruption"
    assert ckpt.exists()

    again = snakemake(root, bin_dir, workdir, str(slower), "--cores", "2", "--rerun-incomplete",
                      "--until", "sinusoid_grid")
    assert again.returncode == 0, again.stderr[-4000:]
    assert "resuming from checkpoint" in (workdir / "logs/sinusoid_grid.log").read_text()
    assert not ckpt.exists()
    rel = "results/sinusoid/grid.csv"
    assert (workdir / rel).read_text() == (quick_run / rel).read_text()
