"""The Snakemake workflow: lint, dry-runs, a quick end-to-end run, what a config edit reruns,
a moved checkout, interruptions (Ctrl-C and kill -9), failures, logs and the report."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from conftest import env_with_bin
from maml_convergence import captions, figures

FIGURES = [f"figures/{f}.{e}" for f in figures.names() for e in ("png", "pdf")]  # the table of figures
RESULTS = ["results/fig2/curves.csv", "results/linear/second/grid.csv", "results/linear/first/grid.csv",
           "results/linear-n2/second/grid.csv", "results/linear-n2/first/grid.csv",
           "results/audit-n2/linear_boundary.csv",
           "results/sinusoid/grid.csv", "results/audit/linear_boundary.csv", "results/fig5/curvature.csv",
           "results/fig1/gradients.csv", "results/omniglot/grid.csv", "results/miniimagenet/grid.csv",
           "results/omniglot-paper/grid.csv",
           "results/linear/reference.json", "results/data/omniglot/record.json",
           "results/sinusoid/local-bound/bounds.csv", "results/fig6/sharpness.csv",
           "results/fig7/sharpness.csv"] + [f"results/guideline/{p}/{f}" for p in ("sinusoid", "omniglot")
                                            for f in ("suggestion.json", "check.csv", "probe.png")]
SOURCE = ["Snakefile", "rules", "config", "notebooks", "environment.yml"]  # what the workflow reads of the checkout


def snakemake(root, bin_dir, workdir, *args, configfile="quick.yaml", **kw):
    cmd = [sys.executable, "-m", "snakemake", "-s", str(root / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(root / "config" / configfile), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env_with_bin(bin_dir), **kw)


def scheduled(proc) -> dict:
    """Job counts of a dry run, by rule ({} when nothing is to be done)."""
    out = proc.stdout + proc.stderr
    if "Nothing to be done" in out:
        return {}
    table = out.split("Job stats:")[1].split("total")[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def test_lint_is_clean(root, bin_dir):
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--lint"], cwd=root, capture_output=True, text=True,
                          env=env_with_bin(bin_dir))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Congratulations" in proc.stdout + proc.stderr


def test_every_rule_that_runs_a_command_is_named_for_it_and_every_provenance_file_is_provenance_json(root):
    """One vocabulary: rule ``image_merge`` runs ``maml-convergence image-merge``; a step's provenance is its
    folder's provenance.json."""
    for path in sorted((root / "rules").glob("*.smk")):
        for name, body in re.findall(r"^rule (\w+):\n(.*?)(?=^rule |\Z)", path.read_text(), re.M | re.S):
            commands = re.findall(r'"maml-convergence ([a-z0-9-]+) ', body)
            assert commands in ([], [name.replace("_", "-")]), (path.name, name, commands)
            for provenance in re.findall(r'provenance=(?:report\()?"([^"]+)"', body):
                assert provenance.endswith("/provenance.json"), (path.name, name, provenance)


def test_dry_run_of_paper_config_resolves(root, bin_dir, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-s", str(root / "Snakefile"), "--directory",
                           str(tmp_path)], capture_output=True, text=True, env=env_with_bin(bin_dir))
    assert proc.returncode == 0, proc.stderr
    jobs = scheduled(proc)
    for rule in ("fig1", "fig2", "fig3", "fig3_n2", "fig4a", "fig4bc", "fig5", "linear_grid", "sinusoid_grid",
                 "sinusoid_reference", "linear_audit", "fig5_analysis", "prepare_data", "image_grid", "image_merge",
                 "sinusoid_local_bound", "fig6_runs", "fig6", "fig7_sharpness", "fig7", "suggest", "guideline_check",
                 "guideline", "claims"):
        assert rule in jobs
    # the paper's image grids are split into the configured number of chunk jobs
    assert jobs["image_grid"] == 16 and jobs["fig4bc"] == 2
    assert jobs["suggest"] == jobs["guideline_check"] == 2  # the config's problems: sinusoid, omniglot


@pytest.fixture(scope="module")
def fresh_clone(root, tmp_path_factory) -> Path:
    """What a fresh clone holds: the repository's tracked files (as in this working tree), figures/ and its source
    data included, and no results/."""
    clone = tmp_path_factory.mktemp("clone")
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True).stdout
    for name in filter(None, tracked.decode().split("\0")):
        if (root / name).is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / name, clone / name)
    return clone


COMPUTE_STEPS = ("linear_grid", "linear_reference", "linear_audit", "sinusoid_grid", "sinusoid_reference", "fig1_runs",
                 "fig5_train", "fig5_analysis", "sinusoid_local_bound", "fig6_runs", "fig7_sharpness", "prepare_data",
                 "project_image_grids", "image_grid", "image_merge", "suggest", "guideline_check", "suggest_exact",
                 "claims", "reproduction")


@pytest.mark.parametrize("configfile", ["reduced.yaml", None])
def test_on_a_fresh_clone_a_run_computes_every_step_not_only_the_drawings(root, bin_dir, fresh_clone, configfile):
    """The committed figures/ and its source data never stand in for a computation: a dry run of `make reproduce`
    (and of the paper's config) on a fresh clone schedules every compute step, from the data download on."""
    extra = ["--configfile", str(fresh_clone / "config" / configfile)] if configfile else []
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-s", str(fresh_clone / "Snakefile"),
                           "--directory", str(fresh_clone), *extra], capture_output=True, text=True,
                          env=env_with_bin(bin_dir))
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = scheduled(proc)
    assert [step for step in COMPUTE_STEPS if step not in jobs] == []


@pytest.mark.slow
def test_a_run_projected_beyond_its_limit_stops_first_in_one_line_having_trained_nothing(root, bin_dir, tmp_path):
    proc = snakemake(root, bin_dir, tmp_path, "--cores", "2", "--config", "max_projected_hours=1e-9")
    assert proc.returncode != 0
    line = [x for x in (tmp_path / "logs/project_image_grids.log").read_text().splitlines()
            if x.startswith("maml-convergence:")]
    assert len(line) == 1 and "max_projected_hours = 1e-09: stopped before anything trained" in line[0]
    assert "make reproduce" in line[0] and "paper-grid" in line[0]
    trained = [str(p.relative_to(tmp_path)) for p in (tmp_path / "results").rglob("*") if p.is_file()]
    assert trained == []


@pytest.mark.slow
def test_the_report_builds_on_a_fresh_clone_from_what_the_repository_holds(root, bin_dir, fresh_clone):
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(fresh_clone / "Snakefile"), "--directory",
                           str(fresh_clone), "--configfile", str(fresh_clone / "config" / "reduced.yaml"), "--report",
                           str(fresh_clone / "report.html")], capture_output=True, text=True, env=env_with_bin(bin_dir))
    assert proc.returncode == 0, proc.stderr[-3000:]
    html = re.sub(r"(\\n|\s)+", " ", (fresh_clone / "report.html").read_text())
    for fig in ("fig1", "fig4a", "fig4b", "fig7", "guideline"):
        assert f"{fig}.png" in html
    assert "CLAIMS.md" in html and "provenance.json" in html


@pytest.mark.parametrize("profile", ["slurm", "local-gpu"])
def test_cluster_and_gpu_profiles_resolve(root, bin_dir, tmp_path, profile):
    """Dry-runs through each profile: every chunk is a job that asks for one GPU."""
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-s", str(root / "Snakefile"), "--directory",
                           str(tmp_path), "--profile", str(root / "profiles" / profile)],
                          capture_output=True, text=True, env=env_with_bin(bin_dir))
    assert proc.returncode == 0, proc.stderr[-3000:]
    chunks = [block for block in proc.stdout.split("\n\n") if "rule image_grid:" in block]
    assert len(chunks) == 16
    assert all("gpu=1" in block for block in chunks)


@pytest.mark.parametrize("overlay,key", [
    ("seed: -3", "seed"),
    ("divergence: {blowup_factor: .nan}", "divergence.blowup_factor"),
    ("checkpoint_every: .nan", "checkpoint_every"),
    ("sinusoid: {alpha_range: [.nan, 0.9]}", "sinusoid.alpha_range.0"),
    ("sinusoid: {beta_range: [0.01, .inf]}", "sinusoid.beta_range.1"),
    ("fig1: {beta: .nan}", "fig1.beta"),
    ("sinusoid: {reference: {alpha: .nan, beta: 0.01}}", "sinusoid.reference.alpha"),
    ("fig6: {alphas: [0.0, 0.05]}", "fig6.alphas.1"),
    ("guideline: {sinusoid: {budget_seconds: .nan}}", "guideline.sinusoid.budget_seconds"),
    ("guideline: {cifar: {budget_seconds: 10}}", "guideline.cifar"),
])
def test_bad_config_stops_the_workflow_with_one_line_naming_the_key(root, bin_dir, tmp_path, overlay, key):
    (tmp_path / "bad.yaml").write_text(overlay + "\n")
    proc = snakemake(root, bin_dir, tmp_path, "-n", "--configfile", str(root / "config/quick.yaml"),
                     str(tmp_path / "bad.yaml"))
    assert proc.returncode != 0
    assert f"maml-convergence: config key '{key}'" in proc.stderr
    assert "Traceback" not in proc.stderr and "Error" not in proc.stderr


@pytest.fixture(scope="module")
def quick_run(root, bin_dir, tmp_path_factory):
    """The quick workflow, run once for the tests that read it. Every step with one thread, two at a time:
    most of the quick steps are start-up (Python, torch, a Jupyter kernel), which one thread does as fast."""
    workdir = tmp_path_factory.mktemp("quick")
    proc = snakemake(root, bin_dir, workdir, "--cores", "2", "--max-threads", "1")
    assert proc.returncode == 0, proc.stderr[-4000:]
    return workdir


@pytest.mark.slow
def test_quick_run_writes_every_figure_and_the_claims(quick_run):
    for rel in FIGURES + RESULTS + ["figures/claims.json", "figures/CLAIMS.md"]:
        path = quick_run / rel
        assert path.exists() and path.stat().st_size > 0, rel
    assert (quick_run / "figures/fig4a.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    claims = json.loads((quick_run / "figures/claims.json").read_text())
    ids = {c["id"] for c in claims["claims"]}
    assert {"C1", "C2-alpha-second", "C2-beta-second", "C2-alpha-first", "C2-beta-first", "C3", "C4", "C5", "C6",
            "C7-omniglot", "C7-miniimagenet", "A-sinusoid", "A-local-sinusoid", "G1-sinusoid", "G1-omniglot",
            "A-paper-second", "A-exact-second", "A-paper-first", "A-exact-first", "A-paper-n2-second",
            "A-exact-n2-second", "A-alpha_c-n2-second", "A-paper-n2-first", "A-exact-n2-first",
            "A-alpha_c-n2-first", "E1"} <= ids
    assert all(c["verdict"] in {"holds", "fails", "inconclusive", "pending"} for c in claims["claims"])
    assert [c["id"] for c in claims["claims"] if "LESS than" not in c["rests_on"]] == []  # quick runs say so
    table = (quick_run / "figures/CLAIMS.md").read_text().split("|---|---|---|---|\n")[1].split("\n\n")[0]
    assert [row.split("]")[0].removeprefix("| [") for row in table.splitlines()] == [c["id"] for c in claims["claims"]]
    cells = [cell for row in table.replace(r"\|", "").splitlines() for cell in row.split("|")]
    assert max(map(len, cells)) <= 200, max(cells, key=len)


@pytest.mark.slow
def test_quick_run_results_have_provenance(quick_run, root):
    prov = json.loads((quick_run / "results/sinusoid/provenance.json").read_text())
    for key in ("config", "workflow_config", "seed", "versions", "git_commit", "device", "wall_seconds", "fingerprint"):
        assert key in prov
    # the step ran with the sections it reads; the whole config of the run is recorded beside them
    assert set(prov["config"]) == {"sinusoid", "backend", "seed", "device", "divergence", "checkpoint_every"}
    quick = yaml.safe_load((root / "config/quick.yaml").read_text())
    assert prov["workflow_config"]["fig5"]["iterations"] == quick["fig5"]["iterations"]
    assert prov["resumed"] == 0
    grid = pd.read_csv(quick_run / "results/sinusoid/grid.csv")
    assert len(grid) == prov["cells"] and set(grid.status) <= {"ok", "diverged"}
    assert grid.loc[grid.status == "ok", "final_loss"].notna().all()
    assert grid.loc[grid.status == "diverged", "final_loss"].isna().all()


@pytest.mark.slow
def test_every_grid_has_alpha_zero_and_the_repeated_ones_every_seed(quick_run, root):
    quick = yaml.safe_load((root / "config/quick.yaml").read_text())
    for name, seeds in (("linear/second", quick["linear"]["seeds"]), ("sinusoid", quick["sinusoid"]["seeds"]),
                        ("omniglot", None), ("miniimagenet", None)):
        grid = pd.read_csv(quick_run / f"results/{name}/grid.csv")
        assert grid.alpha.min() == 0.0, name
        if seeds:
            assert sorted(grid.seed.unique()) == seeds and grid.groupby("seed").size().nunique() == 1, name
    omniglot = pd.read_csv(quick_run / "results/omniglot/grid.csv")
    trained = omniglot[omniglot.status == "ok"]
    assert trained[["final_accuracy", "heldout_accuracy", "heldout_loss"]].notna().all().all()
    assert trained.final_accuracy.between(0, 1).all()
    assert "heldout_accuracy" not in pd.read_csv(quick_run / "results/miniimagenet/grid.csv")  # no held-out split
    c3 = next(c for c in json.loads((quick_run / "figures/claims.json").read_text())["claims"] if c["id"] == "C3")
    assert f"of {len(quick['sinusoid']['seeds'])} seeds" in c3["summary"] and "vs alpha = 0" in c3["summary"]


@pytest.mark.slow
def test_logs_hold_progress_lines_not_carriage_return_frames(quick_run):
    logs = {p.name: p.read_text() for p in (quick_run / "logs").glob("*.log")}
    assert "cell-it" in logs["sinusoid_grid.log"]  # progress is still reported
    assert [name for name, text in logs.items() if "\r" in text] == []


@pytest.mark.slow
def test_a_dry_run_after_the_run_has_nothing_to_do_and_no_warning(root, bin_dir, quick_run):
    proc = snakemake(root, bin_dir, quick_run, "-n")
    assert proc.returncode == 0 and scheduled(proc) == {}
    assert "missing provenance" not in proc.stdout + proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("how", ["overlay", "command line"])
def test_a_claims_only_change_reruns_only_the_claims(root, bin_dir, quick_run, tmp_path, how):
    overlay = tmp_path / "claims.yaml"
    overlay.write_text("claims: {near_edge_factor: 2.0}\n")
    change = (["--configfile", str(root / "config/quick.yaml"), str(overlay)] if how == "overlay"
              else ["--config", "claims={near_edge_factor: 2.0}"])
    proc = snakemake(root, bin_dir, quick_run, "-n", *change)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert scheduled(proc) == {"claims": 1, "publish_claims": 1, "reproduction": 1, "all": 1}


@pytest.mark.slow
def test_a_change_reruns_the_steps_that_read_it_and_what_draws_on_them(root, bin_dir, quick_run):
    proc = snakemake(root, bin_dir, quick_run, "-n", "--config", "fig2={eigenvalues: [1, 2, 4], alpha_points: 600}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    # claims.json records Fig. 2's numbers, so the claims step draws on fig2_curves too.
    assert scheduled(proc) == {"fig2_curves": 1, "source_data": 1, "fig2": 1, "claims": 1, "publish_claims": 1,
                               "reproduction": 1, "all": 1}


@pytest.mark.slow
def test_training_the_grids_with_the_reference_backend_reruns_the_grids_and_what_draws_on_them(root, bin_dir,
                                                                                             quick_run):
    proc = snakemake(root, bin_dir, quick_run, "-n", "--config", "backend=higher")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert set(scheduled(proc)) == {"linear_grid", "sinusoid_grid", "image_grid", "image_merge", "source_data", "fig3",
                                    "fig3_n2", "fig4a", "fig4bc", "fig6_runs", "fig6", "fig7_sharpness", "fig7",
                                    "guideline", "claims", "publish_claims", "reproduction", "project_image_grids",
                                    "all"}


@pytest.mark.slow
def test_a_guideline_change_reruns_that_problems_suggestion_and_what_draws_on_it(root, bin_dir, quick_run):
    quick = yaml.safe_load((root / "config/quick.yaml").read_text())["guideline"]
    changed = {**quick, "sinusoid": {**quick["sinusoid"], "budget_seconds": 16}}
    proc = snakemake(root, bin_dir, quick_run, "-n", "--config", f"guideline={json.dumps(changed)}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert scheduled(proc) == {"suggest": 1, "guideline_check": 1, "source_data": 1, "guideline": 1, "claims": 1,
                               "publish_claims": 1, "reproduction": 1, "all": 1}


@pytest.mark.slow
def test_moving_the_checkout_reruns_nothing(root, bin_dir, quick_run, tmp_path):
    """Checkout and results moved elsewhere (timestamps kept, as mv or cp -a keep them)."""
    moved = tmp_path / "elsewhere" / "maml-convergence"
    moved.mkdir(parents=True)
    for name in SOURCE:
        (shutil.copytree if (root / name).is_dir() else shutil.copy2)(root / name, moved / name)
    shutil.copytree(quick_run, tmp_path / "elsewhere" / "results", symlinks=True)
    proc = snakemake(moved, bin_dir, tmp_path / "elsewhere" / "results", "-n")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert scheduled(proc) == {}, proc.stdout[-3000:]
    assert "missing provenance" not in proc.stdout + proc.stderr


@pytest.mark.slow
def test_a_second_working_directory_shares_the_prepared_data_without_warnings(root, bin_dir, quick_run, tmp_path):
    """make quick and the paper run use different working directories and one copy of the datasets."""
    target = ["results/data/omniglot/record.json"]
    first = snakemake(root, bin_dir, tmp_path, "--cores", "1", *target)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "reusing omniglot" in (tmp_path / "logs/prepare_data_omniglot.log").read_text()
    again = snakemake(root, bin_dir, tmp_path, "-n", *target)
    assert scheduled(again) == {} and "missing provenance" not in again.stdout + again.stderr


@pytest.mark.slow
def test_a_failing_step_prints_the_sections_it_reads_not_the_whole_config(root, bin_dir, tmp_path):
    target = "results/linear/reference.json"
    proc = snakemake(root, bin_dir, tmp_path, "--cores", "1", target, "--config", "device=cuda")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: device=cuda does not fail here")
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "config key 'device': 'cuda', but torch sees no CUDA device" in out and "Traceback" not in out
    command = out.split("maml-convergence linear-reference", 1)[1].split("\n", 1)[0]
    assert '"linear"' in command and '"fig5"' not in command and '"omniglot"' not in command


def _interrupt_sinusoid_grid(root, bin_dir, workdir, signum, slower):
    """Start the workflow up to the sinusoid grid, wait for its first checkpoint, then send ``signum``."""
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
    os.killpg(proc.pid, signum)
    proc.wait(timeout=120)
    assert not (workdir / "results/sinusoid/grid.csv").exists(), "the run finished before the interruption"
    assert ckpt.exists()
    return torch.load(ckpt, weights_only=False)["elapsed"]


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill-9"])
def test_an_interrupted_run_resumes_with_the_same_command_and_identical_results(root, bin_dir, tmp_path, quick_run,
                                                                                 signum):
    """Ctrl-C, or kill -9 of Snakemake and its jobs; the same command run again resumes from the
    checkpoint (kill -9 leaves Snakemake's locks behind: the workflow removes them as stale)."""
    slower = tmp_path / "slower.yaml"
    slower.write_text(yaml.safe_dump({"checkpoint_every": 0.0}))
    workdir = tmp_path / "run"
    elapsed = _interrupt_sinusoid_grid(root, bin_dir, workdir, signum, slower)
    if signum == signal.SIGKILL:
        assert list((workdir / ".snakemake/locks").glob("*.lock")), "kill -9 left no lock: nothing was tested"

    again = snakemake(root, bin_dir, workdir, str(slower), "--cores", "2", "--max-threads", "1", "--until",
                      "sinusoid_grid")
    assert again.returncode == 0, again.stderr[-4000:]
    assert "resuming from checkpoint" in (workdir / "logs/sinusoid_grid.log").read_text()
    assert not (workdir / "results/sinusoid/grid.ckpt").exists()
    rel = "results/sinusoid/grid.csv"
    assert (workdir / rel).read_text() == (quick_run / rel).read_text()
    prov = json.loads((workdir / "results/sinusoid/provenance.json").read_text())
    assert prov["resumed"] == 1 and prov["wall_seconds"] >= elapsed > 0  # the interrupted part counts too


@pytest.mark.slow
def test_the_report_has_every_figure_with_its_caption_and_the_claims(root, bin_dir, quick_run):
    proc = snakemake(root, bin_dir, quick_run, "--report", str(quick_run / "report.html"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    html = re.sub(r"(\\n|\s)+", " ", (quick_run / "report.html").read_text())
    for fig in figures.names():
        assert f"{fig}.png" in html
    claim_ids = [row["id"] for row in json.loads((quick_run / "figures" / "claims.json").read_text())["claims"]]
    for notebook in figures.by_notebook():  # each figure's caption (its notebook's first cell) names its claims
        named = set(re.findall(r"\b(?:C\d|A-|G\d|E\d)[\w-]*", captions.caption(notebook, root).body))
        assert named or notebook == "fig2", notebook  # Fig. 2 is the theory alone
        for cid in named:
            assert any(i == cid or i.startswith(f"{cid}-") for i in claim_ids), (notebook, cid)  # a claim there is
            assert cid in html, (notebook, cid)
    assert "60 iterations" in html  # captions give the settings of this run (config/quick.yaml's fig1)
    assert "CLAIMS.md" in html and "provenance.json" in html


# What a machine with no GPU and no accounting database needs on top of profiles/slurm (docs/gpu-and-cluster.md);
# 1 thread per chunk, as the quick run has: the rows are then the same bytes. Job states are read every second.
ONE_NODE = ["--default-resources", "slurm_partition=local", "mem_mb=2000", "runtime=30", "cpus_per_task=1",
            "--set-resources", "image_grid:gpu=0", "image_grid:mem_mb=3000", "image_grid:cpus_per_task=1",
            "--set-threads", "image_grid=1", "--slurm-status-command", "squeue", "--slurm-no-account",
            "--slurm-init-seconds-before-status-checks", "1", "--seconds-between-status-checks", "1",
            "--jobs", "2"]


@pytest.fixture
def one_node_cluster(root, tmp_path):
    """A SLURM cluster of this one machine (profiles/slurm/one-node-cluster.sh), stopped when the test ends."""
    script = root / "profiles" / "slurm" / "one-node-cluster.sh"
    installed = subprocess.run(["bash", str(script), "install"], capture_output=True, text=True)
    if installed.returncode:
        pytest.skip(f"no SLURM here and it cannot be installed: {installed.stderr.strip()[-300:]}")
    started = subprocess.run(["bash", str(script), "start", str(tmp_path / "cluster")], capture_output=True,
                             text=True, timeout=120)
    try:
        if started.returncode == 2:  # a cluster of its own is configured here: leave it alone
            pytest.skip(started.stderr.strip())
        assert started.returncode == 0, started.stdout + started.stderr
        yield
    finally:
        subprocess.run(["bash", str(script), "stop", str(tmp_path / "cluster")], capture_output=True)


@pytest.mark.slow
def test_the_slurm_profile_runs_the_omniglot_chunks_as_jobs_and_merges_the_rows_a_local_run_has(
        root, bin_dir, tmp_path, quick_run, one_node_cluster):
    target = "results/omniglot/grid.csv"
    proc = snakemake(root, bin_dir, tmp_path / "run", "--profile", str(root / "profiles" / "slurm"), *ONE_NODE,
                     target, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    out = proc.stdout + proc.stderr
    assert len(re.findall(r"has been submitted with SLURM jobid \d+ \(log: \S+/rule_image_grid/", out)) == 2
    assert (tmp_path / "run" / target).read_bytes() == (quick_run / target).read_bytes()


@pytest.mark.slow
def test_the_environments_snakemake_runs_a_step_without_activating_it(root, bin_dir, tmp_path):
    """.venv/bin/snakemake with no .venv on PATH: the step's maml-convergence comes from the same environment."""
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep)
                           if p and not (Path(p) / "maml-convergence").exists())
    proc = subprocess.run([str(bin_dir / "snakemake"), "-s", str(root / "Snakefile"), "--directory", str(tmp_path),
                           "--configfile", str(root / "config" / "quick.yaml"), "--cores", "1",
                           "results/fig2/curves.csv"], capture_output=True, text=True, env={**os.environ, "PATH": path})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "results" / "fig2" / "curves.csv").is_file()
