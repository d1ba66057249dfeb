"""Load and validate the workflow configuration.

The schema is ``config/schema.yaml`` (JSON Schema, the format ``snakemake.utils.validate``
reads); on top of it we check what a schema cannot say (range order, non-empty grids)
and turn the first problem into one message that names the key.
"""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import yaml

from .grid import decade_grid

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "config" / "schema.yaml"
DEFAULT = ROOT / "config" / "config.yaml"


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the key."""


def deep_merge(base: dict, override: dict) -> dict:
    """Snakemake's rule for several --configfile: later files override, nested dicts merge."""
    out = copy.deepcopy(base)
    for k, v in override.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def load(*paths: str | Path) -> dict:
    """The default config with ``paths`` merged over it, validated."""
    cfg = _read(DEFAULT)
    for p in paths:
        cfg = deep_merge(cfg, _read(Path(p)))
    return validate(cfg)


def _read(path: Path) -> dict:
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {path} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys, not {type(data).__name__}")
    return data


def validate(cfg: dict) -> dict:
    schema = yaml.safe_load(SCHEMA.read_text())
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(cfg),
                    key=lambda e: (len(list(e.absolute_path)), list(map(str, e.absolute_path))))
    if errors:
        raise ConfigError(_describe(errors[0]))
    for section in ("linear", "sinusoid", "omniglot", "miniimagenet"):
        sec = cfg[section]
        for name in ("alpha_range", "beta_range"):
            lo, hi = sec[name]
            key = f"{section}.{name}"
            if lo > hi:
                raise ConfigError(f"config key '{key}': low end {lo} is above high end {hi}")
            if not decade_grid(lo, hi, sec["mantissas"]):
                raise ConfigError(f"config key '{key}': the grid is empty (no value m*10^k with m in "
                                  f"{section}.mantissas={sec['mantissas']} lies in [{lo}, {hi}])")
    for section in ("omniglot", "miniimagenet"):
        sec = cfg[section]
        if sec["k_shot"] + sec["k_query"] > (20 if section == "omniglot" else 600):
            raise ConfigError(f"config key '{section}.k_query': k_shot + k_query images per class exceed "
                              f"the {20 if section == 'omniglot' else 600} that {section} has")
    return cfg


def _describe(error: jsonschema.ValidationError) -> str:
    path = ".".join(str(p) for p in error.absolute_path)
    if error.validator == "additionalProperties":
        unknown = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        key = ".".join(filter(None, [path, str(unknown[0])]))
        return f"config key '{key}': unknown key (allowed here: {', '.join(sorted(error.schema['properties']))})"
    if error.validator == "required":
        missing = [k for k in error.validator_value if k not in error.instance]
        key = ".".join(filter(None, [path, missing[0]]))
        return f"config key '{key}': required but missing"
    return f"config key '{path or '<root>'}': {error.message}"


def grid_values(section: dict) -> tuple[list[float], list[float]]:
    return (decade_grid(*section["alpha_range"], section["mantissas"]),
            decade_grid(*section["beta_range"], section["mantissas"]))
