"""A wrong configuration stops with one message that names the key."""

import copy
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


def test_quick_config_is_valid_and_smaller(root):
    quick = config.load(root / "config" / "quick.yaml")
    full = config.load()
    assert len(config.grid_values(quick["sinusoid"])[0]) < len(config.grid_values(full["sinusoid"])[0])
    assert quick["sinusoid"]["tasks"] < full["sinusoid"]["tasks"]


def test_default_config_has_the_papers_settings(cfg):
    s = cfg["sinusoid"]
    assert (s["iterations"], s["tasks"], s["k_support"], s["inner_steps"], s["optimizer"]) == (500, 100, 10, 1, "sgd")
    assert [len(v) for v in config.grid_values(s)] == [36, 27]
    assert [len(v) for v in config.grid_values(cfg["linear"])] == [36, 32]
    assert cfg["linear"]["reference"] == {"alpha": 0.05, "beta": 0.7}


def test_cli_reports_one_line_and_exit_code_2(tmp_path, bin_dir):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"sinusoid": {"alpha_range": [0.1, -2.0]}}))
    proc = subprocess.run([sys.executable, "-m", "maml_convergence", "fig2", "--configfile", str(bad),
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
