"""The workflow configuration: load, validate, and say which part of it each step reads.

The schema is ``config/schema.yaml`` (JSON Schema, the format ``snakemake.utils.validate``
reads); on top of it we check what a schema cannot say (finite numbers, range order,
non-empty grids) and turn the first problem into one message that names the key.

This module sits just above the table of problems (``problems``, whose names are its sections) and imports
nothing else of the package (and no torch), so the Snakefile validates a config without loading the engine.
"""

from __future__ import annotations

import copy
import math
from functools import lru_cache
from pathlib import Path

import yaml

from .problems import FEW_SHOT, LINEAR, NAMES, OMNIGLOT, PROBLEMS, SINUSOID

ROOT = Path(__file__).resolve().parents[2]  # the checkout (git, figures/) where the package runs from one
# The defaults ship inside the package: in a checkout defaults/ holds links to config/, which a wheel
# (pip install .) carries as copies, so an installed package finds them wherever it runs.
SCHEMA = Path(__file__).parent / "defaults" / "schema.yaml"
DEFAULT = Path(__file__).parent / "defaults" / "config.yaml"

# The config sections each step of the workflow reads, and nothing more: a rule passes only
# these to its command (its Snakemake params), so editing one section reruns only the steps
# that read it. The claims step reads its inputs' own provenance for everything else.
RUN_SECTIONS = ("seed", "device", "divergence", "checkpoint_every")  # every step that trains reads these
STEP_SECTIONS = {
    "fig2-curves": ("fig2",),
    "linear-reference": (LINEAR, *RUN_SECTIONS),
    "linear-grid": (LINEAR, "backend", *RUN_SECTIONS),
    "linear-audit": (LINEAR, "audit", *RUN_SECTIONS),
    "sinusoid-grid": (SINUSOID, "backend", *RUN_SECTIONS),
    "sinusoid-reference": (SINUSOID, *RUN_SECTIONS),
    "fig1-runs": ("fig1", SINUSOID, *RUN_SECTIONS),
    "fig5-train": ("fig5", SINUSOID, *RUN_SECTIONS),
    "fig5-analysis": ("fig5", SINUSOID, *RUN_SECTIONS),
    "prepare-data": ("data",),
    "image-grid": (*FEW_SHOT, "data", "backend", *RUN_SECTIONS),
    "image-merge": (*FEW_SHOT, "data", *RUN_SECTIONS),
    "paper-grid": ("paper_grid", OMNIGLOT, "data", "backend", *RUN_SECTIONS),
    "paper-grid-merge": ("paper_grid", OMNIGLOT, "backend", *RUN_SECTIONS),
    "sinusoid-local-bound": (SINUSOID, "sharpness", *RUN_SECTIONS),
    "fig6-runs": ("fig6", SINUSOID, "sharpness", *RUN_SECTIONS),
    "fig7-sharpness": (SINUSOID, "sharpness", "backend", *RUN_SECTIONS),  # backend: to check the grid it reads
    "suggest": ("guideline", *NAMES, "data", *RUN_SECTIONS),
    "guideline-check": (*NAMES, "data", *RUN_SECTIONS),
    "suggest-exact": ("guideline_exact", LINEAR, *RUN_SECTIONS),
    "claims": ("claims",),
    "reproduction": ("reproduction",),
    "grid": (*NAMES, "data", "backend", *RUN_SECTIONS),
    "project-image-grids": (*FEW_SHOT, "max_projected_hours", "backend", *RUN_SECTIONS),
}
IMAGE_STEPS = ("image-grid", "image-merge")  # these read only the section of their --dataset
PROBLEM_STEPS = ("suggest", "guideline-check", "grid")  # these read only the sections of their --problem


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


@lru_cache(maxsize=1)
def schema() -> dict:
    return yaml.safe_load(SCHEMA.read_text())


def validate(cfg: dict, sections=None) -> dict:
    """``cfg`` checked against the schema; with ``sections``, only those (each must be present)."""
    full = schema()
    if sections is not None:
        for key in sections:
            if key not in cfg:
                raise ConfigError(f"config key '{key}': required by this step but missing")
        full = {**full, "required": [k for k in full["required"] if k in sections]}
    _check_finite(cfg)
    import jsonschema  # here, not at the top: importing it takes 2 s, and only validation needs it

    errors = sorted(jsonschema.Draft202012Validator(full).iter_errors(cfg),
                    key=lambda e: (len(list(e.absolute_path)), list(map(str, e.absolute_path))))
    if errors:
        raise ConfigError(_describe(errors[0]))
    for section in NAMES:
        if section not in cfg:
            continue
        sec = cfg[section]
        for name in ("alpha_range", "beta_range"):
            lo, hi = sec[name]
            key = f"{section}.{name}"
            if lo > hi:
                raise ConfigError(f"config key '{key}': low end {lo} is above high end {hi}")
            if not decade_grid(lo, hi, sec["mantissas"]):
                raise ConfigError(f"config key '{key}': the grid is empty (no value m*10^k with m in "
                                  f"{section}.mantissas={sec['mantissas']} lies in [{lo}, {hi}])")
    if "fig6" in cfg and SINUSOID in cfg:
        alphas = grid_values(cfg[SINUSOID])[0]
        for i, alpha in enumerate(cfg["fig6"]["alphas"]):
            if not any(math.isclose(alpha, a, rel_tol=1e-9) for a in alphas):
                raise ConfigError(f"config key 'fig6.alphas.{i}': {alpha} is not an alpha of the sinusoid grid "
                                  f"({', '.join(f'{a:g}' for a in alphas)})")
    for section, images in ((p.name, p.images_per_class) for p in PROBLEMS if p.images_per_class):
        if section in cfg and cfg[section]["k_shot"] + cfg[section]["k_query"] > images:
            raise ConfigError(f"config key '{section}.k_query': k_shot + k_query images per class exceed "
                              f"the {images} that {section} has")
    return cfg


def _check_finite(tree, path: str = "") -> None:
    """NaN passes every schema comparison (NaN > 1 and NaN <= 1 are both false), so refuse it first."""
    if isinstance(tree, dict):
        for k, v in tree.items():
            _check_finite(v, f"{path}.{k}" if path else str(k))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            _check_finite(v, f"{path}.{i}")
    elif isinstance(tree, float) and not math.isfinite(tree):
        raise ConfigError(f"config key '{path}': {tree} is not a finite number")


def _describe(error) -> str:
    """One line for a jsonschema ValidationError, naming the key."""
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


def coerce_command_line(cfg: dict) -> dict:
    """Snakemake's ``--config key='{a: 2.0}'`` reads nested values as strings ('2.0'): read each
    string again as YAML where the schema wants a number, boolean or null there."""
    return _coerce(cfg, schema(), schema())


def _coerce(value, node: dict, root: dict):
    while "$ref" in node:
        node = _resolve_ref(root, node["$ref"])
    if isinstance(value, dict):
        props = node.get("properties", {})
        return {k: _coerce(v, props[k], root) if k in props else v for k, v in value.items()}
    if isinstance(value, list):
        items = node.get("items")
        return [_coerce(v, items, root) for v in value] if isinstance(items, dict) else value
    if not isinstance(value, str):
        return value
    types = node.get("type", [])
    types = [types] if isinstance(types, str) else types
    if "enum" in node or "string" in types and "null" not in types:
        return value
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        return value
    if parsed is None and "null" in types:
        return None
    if "string" in types:
        return value
    wanted = {"number": (int, float), "integer": (int,), "boolean": (bool,)}
    ok = any(isinstance(parsed, wanted[t]) and not (t != "boolean" and isinstance(parsed, bool))
             for t in types if t in wanted)
    return parsed if ok else value


def _resolve_ref(root: dict, ref: str) -> dict:
    node = root
    for part in ref.lstrip("#/").split("/"):
        node = node[part]
    return node


def step_sections(step: str, dataset: str | None = None) -> tuple[str, ...]:
    """The config sections ``step`` reads (an image step: only its dataset's; a problem step: only its
    problem's, and the data's for an image problem)."""
    sections = STEP_SECTIONS[step]
    if step in IMAGE_STEPS:
        sections = tuple(s for s in sections if s not in FEW_SHOT) + (dataset,)
    if step in PROBLEM_STEPS:
        drop = NAMES + (() if dataset in FEW_SHOT else ("data",))
        sections = tuple(s for s in sections if s not in drop) + (dataset,)
    return sections


def step_config(cfg: dict, step: str, dataset: str | None = None) -> dict:
    """The part of ``cfg`` that ``step`` reads (of the ``guideline`` section, only its problem's entry)."""
    out = {k: cfg[k] for k in step_sections(step, dataset)}
    if "guideline" in out and step in PROBLEM_STEPS:
        out["guideline"] = {dataset: cfg["guideline"][dataset]} if dataset in cfg["guideline"] else {}
    return out


def paper_settings(cfg: dict) -> dict:
    """What the paper-scale Fig. 4b is computed with whatever ``cfg`` says: the shipped settings (the paper's),
    with ``cfg``'s ``paper_grid`` section (where its chunks are kept, how many)."""
    return {**load(), "paper_grid": cfg["paper_grid"]}


def resolve_path(path: str | None) -> Path | None:
    """A data path from the config: relative paths are relative to the repository root, wherever
    the command or the workflow runs from."""
    if path is None:
        return None
    path = Path(path)
    return path if path.is_absolute() else ROOT / path


def decade_grid(lo: float, hi: float, mantissas=tuple(range(1, 10))) -> list[float]:
    """Values m * 10**k (m in ``mantissas``) inside [lo, hi]: the paper's {1..9} x 10^k grids."""
    if not (lo > 0 and hi >= lo and math.isfinite(hi)):
        raise ValueError(f"need 0 < lo <= hi < inf, got [{lo}, {hi}]")
    values = []
    for k in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 2):
        for m in mantissas:
            v = float(f"{m}e{k}")  # decimal literal: 3e-2, not 3 * 0.01
            if lo * (1 - 1e-9) <= v <= hi * (1 + 1e-9):
                values.append(v)
    return sorted(set(values))


def grid_values(section: dict) -> tuple[list[float], list[float]]:
    """The grid's alphas and betas: alpha = 0 (joint training, the paper's baseline) and the
    {1..9} x 10^k values inside the alpha range, and those inside the beta range."""
    return ([0.0] + decade_grid(*section["alpha_range"], section["mantissas"]),
            decade_grid(*section["beta_range"], section["mantissas"]))


@lru_cache(maxsize=1)
def paper_scale() -> dict:
    """The paper's scale, read off config/config.yaml (which holds the paper's settings): what a
    verdict compares its own grid, iterations, seeds and audit with."""
    cfg = load()
    scale = {k: {"alphas": len(a), "betas": len(b), "iterations": cfg[k]["iterations"]}
             for k in NAMES for a, b in [grid_values(cfg[k])]}
    for k in (LINEAR, SINUSOID):
        scale[k]["seeds"] = len(cfg[k]["seeds"])
    scale["fig1"] = {"seeds": len(cfg["fig1"]["seeds"]), "iterations": cfg["fig1"]["iterations"]}
    scale["fig5"] = {"iterations": cfg["fig5"]["iterations"], "tasks": cfg["sinusoid"]["tasks"]}
    scale["audit"] = {k: cfg["audit"][k] for k in ("rounds", "points")}
    scale["guideline_exact"] = {"iterations": cfg["guideline_exact"]["iterations"],
                                "streams": cfg["guideline_exact"]["streams"],
                                "runs": len(cfg["linear"]["seeds"]) * len(cfg["linear"]["orders"])
                                * len(cfg["guideline_exact"]["inner_steps"])}
    return scale
