"""A wrong configuration stops with one message that names the key."""

import copy
import math
import subprocess
import sys

import pytest
import yaml

from maml_convergence import config


@pytest.fixture(scope="module")
def cfg():
    return config.load()


@pytest.mark.parametrize("change,key", [
    (lambda c: c["sinusoid"].update(learning_rate=0.1), "sinusoid.learning_rate"),
    (lambda c: c.update(extra=1), "extra"),
    (lambda c: c["linear"].update(beta_range=[-0.1, 9.0]), "linear.beta_range.0"),
    (lambda c: c["linear"]["reference"].update(beta=-0.7), "linear.reference.beta"),
    (lambda c: c["sinusoid"].update(alpha_range=[0.91, 0.95]), "sinusoid.alpha_range"),
    (lambda c: c["sinusoid"].update(beta_range=[9.0, 0.1]), "sinusoid.beta_range"),
    (lambda c: c["sinusoid"].update(mantissas=[]), "sinusoid.mantissas"),
    (lambda c: c["sinusoid"].update(iterations=0), "sinusoid.iterations"),
    (lambda c: c["sinusoid"].update(order="third"), "sinusoid.order"),
    (lambda c: c["divergence"].pop("blowup_factor"), "divergence.blowup_factor"),
    (lambda c: c["fig2"].update(eigenvalues="1,2"), "fig2.eigenvalues"),
    (lambda c: c["omniglot"].update(k_query=20), "omniglot.k_query"),
    (lambda c: c["miniimagenet"].update(beta_range=[3.0, 0.3]), "miniimagenet.beta_range"),
    (lambda c: c["omniglot"].update(chunks=0), "omniglot.chunks"),
    (lambda c: c["data"].update(mirror=3), "data.mirror"),
])
def test_bad_values_name_their_key(cfg, change, key):
    bad = copy.deepcopy(cfg)
    change(bad)
    with pytest.raises(config.ConfigError) as err:
        config.validate(bad)
    message = str(err.value)
    assert f"'{key}'" in message and "\n" not in message


@pytest.mark.parametrize("change,key", [
    (lambda c: c["divergence"].update(blowup_factor=math.nan), "divergence.blowup_factor"),
    (lambda c: c.update(checkpoint_every=math.nan), "checkpoint_every"),
    (lambda c: c["sinusoid"].update(alpha_range=[math.nan, 0.9]), "sinusoid.alpha_range.0"),
    (lambda c: c["linear"].update(beta_range=[5e-3, math.inf]), "linear.beta_range.1"),
    (lambda c: c["omniglot"].update(alpha_range=[-math.inf, 9.0]), "omniglot.alpha_range.0"),
    (lambda c: c["fig1"].update(beta=math.nan), "fig1.beta"),
    (lambda c: c["sinusoid"]["reference"].update(alpha=math.nan), "sinusoid.reference.alpha"),
    (lambda c: c["fig2"].update(eigenvalues=[1.0, math.inf]), "fig2.eigenvalues.1"),
])
def test_nan_and_inf_are_refused_with_their_key(cfg, change, key):
    """NaN passes every schema comparison; without its own check it reached the runs."""
    bad = copy.deepcopy(cfg)
    change(bad)
    with pytest.raises(config.ConfigError, match=f"config key '{key}': (nan|inf|-inf) is not a finite number"):
        config.validate(bad)


def test_cli_refuses_nan_from_a_yaml_file_before_writing_anything(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("divergence: {blowup_factor: .nan}\nsinusoid: {iterations: 2, mantissas: [1]}\n")
    proc = subprocess.run([sys.executable, "-m", "maml_convergence", "sinusoid-grid", "--configfile", str(bad),
                           "--out", str(tmp_path / "grid.csv"), "--provenance", str(tmp_path / "p.json")],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == "maml-convergence: config key 'divergence.blowup_factor': nan is not a finite number"
    assert not (tmp_path / "grid.csv").exists()


def test_command_line_strings_are_read_as_the_schema_wants(cfg):
    """snakemake --config claims='{near_edge_factor: 2.0}' hands over {'near_edge_factor': '2.0'}."""
    given = copy.deepcopy(cfg)
    given["claims"] = {"near_edge_factor": "2.0"}
    given["sinusoid"].update(mantissas=["1", "3"], iterations="20", compile="false")
    given["data"].update(mirror="null", root="data")
    given["device"] = "cpu"
    out = config.validate(config.coerce_command_line(given))
    assert out["claims"] == {"near_edge_factor": 2.0}
    sinusoid = out["sinusoid"]
    assert (sinusoid["mantissas"], sinusoid["iterations"], sinusoid["compile"]) == ([1, 3], 20, False)
    assert out["data"] == {"mirror": None, "root": "data"} and out["device"] == "cpu"
    given["claims"] = {"near_edge_factor": ".nan"}
    with pytest.raises(config.ConfigError, match="'claims.near_edge_factor': nan"):
        config.validate(config.coerce_command_line(given))
    given["claims"] = {"near_edge_factor": "two"}
    with pytest.raises(config.ConfigError, match="'claims.near_edge_factor': 'two' is not of type 'number'"):
        config.validate(config.coerce_command_line(given))


def test_a_step_validates_only_the_sections_it_reads(cfg):
    step = config.step_config(cfg, "sinusoid-grid")
    assert set(step) == {"sinusoid", "backend", "seed", "device", "divergence", "checkpoint_every"}
    assert config.validate(copy.deepcopy(step), sections=config.step_sections("sinusoid-grid")) == step
    step.pop("divergence")
    with pytest.raises(config.ConfigError, match="'divergence': required by this step but missing"):
        config.validate(step, sections=config.step_sections("sinusoid-grid"))
    assert set(config.step_config(cfg, "image-grid", "omniglot")) == {"omniglot", "data", "backend", "seed", "device",
                                                                       "divergence", "checkpoint_every"}
    assert config.step_config(cfg, "claims") == {"claims": cfg["claims"]}


def test_reading_a_config_loads_no_engine():
    """config is the bottom layer: the Snakefile validates without importing torch."""
    code = "import sys, maml_convergence.config as c; c.load(); assert 'torch' not in sys.modules, 'torch imported'"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).returncode == 0


def test_paper_scale_is_read_off_the_default_config(cfg):
    scale = config.paper_scale()
    assert scale["sinusoid"] == {"alphas": 37, "betas": 27, "iterations": 500, "seeds": 5}
    assert scale["omniglot"] == {"alphas": len(config.grid_values(cfg["omniglot"])[0]),
                                 "betas": len(config.grid_values(cfg["omniglot"])[1]), "iterations": 100}
    assert scale["fig1"] == {"seeds": len(cfg["fig1"]["seeds"]), "iterations": cfg["fig1"]["iterations"]}


def test_quick_config_is_valid_and_smaller(root):
    quick = config.load(root / "config" / "quick.yaml")
    full = config.load()
    assert len(config.grid_values(quick["sinusoid"])[0]) < len(config.grid_values(full["sinusoid"])[0])
    assert quick["sinusoid"]["tasks"] < full["sinusoid"]["tasks"]


def test_default_config_has_the_papers_settings(cfg):
    s = cfg["sinusoid"]
    assert (s["iterations"], s["tasks"], s["k_support"], s["inner_steps"], s["optimizer"]) == (500, 100, 10, 1, "sgd")
    assert [len(v) for v in config.grid_values(s)] == [37, 27]  # the paper's 36 alphas and alpha = 0
    assert [len(v) for v in config.grid_values(cfg["linear"])] == [37, 32]
    assert config.grid_values(s)[0][:2] == [0.0, 1e-4]
    assert len(cfg["sinusoid"]["seeds"]) >= 5 and len(cfg["linear"]["seeds"]) >= 5
    assert cfg["linear"]["reference"] == {"alpha": 0.05, "beta": 0.7}


def test_cli_reports_one_line_and_exit_code_2(tmp_path, bin_dir):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"sinusoid": {"alpha_range": [0.1, -2.0]}}))
    proc = subprocess.run([sys.executable, "-m", "maml_convergence", "fig2-curves", "--configfile", str(bad),
                           "--out", str(tmp_path / "c.csv"), "--provenance", str(tmp_path / "p.json")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "'sinusoid.alpha_range.1'" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "c.csv").exists()


def test_malformed_yaml_is_reported(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("sinusoid: [unclosed\n")
    with pytest.raises(config.ConfigError, match="not valid YAML"):
        config.load(bad)


def test_reduced_config_is_valid_and_only_shrinks_the_image_grids(cfg, root):
    reduced = config.load(root / "config" / "reduced.yaml")
    assert {k for k in cfg if reduced[k] != cfg[k]} == {"omniglot", "miniimagenet"}
    for name in ("omniglot", "miniimagenet"):
        assert reduced[name]["alpha_range"] == cfg[name]["alpha_range"]  # the paper's ranges, coarser
        assert reduced[name]["iterations"] < cfg[name]["iterations"]
