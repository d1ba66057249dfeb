"""One run of a command: the configuration it reads, its device, its clock, its resume file and its
provenance (``Step``), so that a command says only what it computes and what it writes. Also the registry
the command line is built from (``command``, ``arg``), the number types its options are checked with, and
the files one step hands to another.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import torch

from . import checkpoint, data, provenance
from . import config as config_mod

# The Snakefile puts the whole merged config here; a step records it in its provenance (it
# runs with only the sections it reads, passed on its command line).
WORKFLOW_CONFIG_ENV = "MAML_CONVERGENCE_WORKFLOW_CONFIG"

# Every subcommand, registered by @command above its function with the arguments it takes beyond the
# common ones (the configuration; --out, --provenance, --checkpoint, the dataset as it asks).
COMMANDS: dict[str, tuple] = {}


class ReproductionDiffers(RuntimeError):
    """A run's verdicts differ from the committed reference's (the message names the claims)."""


def _number(kind, least: float, strict: bool):
    """An argparse type: a finite ``kind`` at least (or, ``strict``, above) ``least``; anything else is refused
    at parse time with one line naming the option."""
    bound = f"{'>' if strict else '>='} {least:g}"

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a{'n integer' if kind is int else ' number'} "
                                             f"{bound}") from None
        if not math.isfinite(value) or value < least or (strict and value == least):
            raise argparse.ArgumentTypeError(f"{text} is not a number {bound}")
        return value

    parse.__name__ = kind.__name__  # what argparse names in its messages
    return parse


POSITIVE_INT, COUNT = _number(int, 1, False), _number(int, 0, False)
POSITIVE, NONNEGATIVE = _number(float, 0, True), _number(float, 0, False)


def arg(*flags, **options) -> tuple:
    """One argument of a command, as ``argparse``'s ``add_argument`` takes it."""
    return flags, options


def command(name: str, help: str, out: bool = True, provenance: bool = False, checkpoint: bool = False,
            data: bool = False, arguments: list[tuple] = (), defaults: dict | None = None):
    """Register the function below as the subcommand ``name``."""
    def register(func):
        common = {"out": out, "provenance": provenance, "checkpoint": checkpoint, "data": data}
        COMMANDS[name] = (func, help, list(arguments), common, defaults or {})
        return func
    return register


class Step:
    """A command's run. ``cfg``: the sections of the configuration it reads, validated (``None``: read them
    from the command line; ``{}``: a command that reads none); ``device``: where it computes (``None``: the
    config's). ``name`` is what its provenance calls it, ``run_info`` what a resumable computation reports of
    itself (a grid's ``GridResult.run_info``: the time of earlier, interrupted parts, the convolution chosen)."""

    def __init__(self, args, *, device: str | None = None, cfg: dict | None = None):
        self.args, self.name, self.run_info = args, args.experiment, {}
        if cfg is None:
            self.cfg = read_config(args)
        else:
            self.cfg, args.workflow_config = cfg, cfg
        self.device = device or provenance.resolve_device(self.cfg["device"])
        self.checkpoint = Path(args.checkpoint) if getattr(args, "checkpoint", None) else None
        self.started = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started

    def clock(self) -> None:
        """The step's time counts from here: what it read before is not part of its computation."""
        self.started = time.perf_counter()

    def record(self, wall_seconds: float | None = None, device: str | None = None, **extra) -> dict:
        """The provenance: the config read, the whole config of the run, and what the run reported of itself
        (for a run that resumed after an interruption, how often and the time of all its parts)."""
        info = dict(self.run_info)
        wall = (self.seconds if wall_seconds is None else wall_seconds) + info.pop("earlier_seconds", 0.0)
        return provenance.record(self.name, self.cfg, device or self.device, wall,
                                 workflow_config=self.args.workflow_config, **info, **extra)

    def write_table(self, frame, wall_seconds: float | None = None, **extra) -> dict:
        """The table at ``--out``, then its provenance at ``--provenance`` (returned); the resume file goes
        after both."""
        provenance.atomic_write_text(self.args.out, frame.to_csv(index=False))
        record = self.record(wall_seconds, **extra)
        provenance.write_json(self.args.provenance, record)
        self.done()
        return record

    def write_json(self, result: dict, **extra) -> None:
        """One JSON file at ``--out`` holding the result and, under ``provenance``, its provenance."""
        result["provenance"] = self.record(**extra)
        provenance.write_json(self.args.out, result)
        self.done()

    def done(self) -> None:
        checkpoint.discard(self.checkpoint)

    def image_data(self) -> str:
        return image_data(self.args, self.cfg)


def read_config(args) -> dict:
    """The configuration this step reads (``STEP_SECTIONS``), validated. ``args.workflow_config``
    is set to the whole configuration it belongs to, for the provenance."""
    step, dataset = args.command, getattr(args, "dataset", None) or getattr(args, "problem", None)
    if args.config_json:
        try:
            given = json.loads(args.config_json)
        except json.JSONDecodeError as e:
            raise config_mod.ConfigError(f"--config-json is not valid JSON: {e}") from None
        cfg = config_mod.validate(given, sections=config_mod.step_sections(step, dataset))
        whole = os.environ.get(WORKFLOW_CONFIG_ENV)
        args.workflow_config = json.loads(whole) if whole else given
    else:
        cfg = args.workflow_config = config_mod.load(*args.configfile)
    return config_mod.step_config(cfg, step, dataset)


def mirror(cfg) -> Path | None:
    """The configured mirror folder (relative paths: to the repository), or None for the canonical sources."""
    folder = config_mod.resolve_path(cfg["data"]["mirror"])
    if folder is None:
        return None
    if not folder.is_dir():
        print(f"[data] the mirror folder {folder} (data.mirror) does not exist: downloading from the canonical "
              f"source instead")
        return None
    print(f"[data] reading the local mirror {folder}")
    return folder


def image_data(args, cfg) -> str:
    """The prepared dataset an image step reads: ``--data``, or the one the config names, checked
    against the record the workflow's data step made of it (``--dataset-record``)."""
    dataset = getattr(args, "dataset", None) or args.problem
    root = config_mod.resolve_path(cfg["data"]["root"])
    path = args.data or str(data.prepared_path(root, dataset))
    if not args.data and not args.dataset_record and not Path(path).exists():  # by hand: prepare it first
        data.ensure_prepared(dataset, root, mirror(cfg))
    if args.dataset_record:
        data.check_prepared(path, json.loads(Path(args.dataset_record).read_text()))
    return path


def save_torch(path: str, obj) -> None:
    """A torch file for another step to read: written whole or not at all."""
    with provenance.atomic_write(path) as tmp:
        torch.save(obj, tmp)


def load_torch(path: str):
    """A torch file another step wrote, or one line naming it when it is missing or unreadable."""
    try:
        return torch.load(path, weights_only=False)
    except Exception as e:  # noqa: BLE001 - missing, cut short or not a torch file at all
        raise config_mod.ConfigError(f"{path}: cannot be read ({type(e).__name__}); run the step that writes "
                                     "it again") from None


def read_claims(path) -> dict:
    """A claims.json, or one line naming it when it is missing or not one."""
    try:
        result = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise config_mod.ConfigError(f"{path}: no such file; the workflow's claims step writes it "
                                     "(snakemake --cores all)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise config_mod.ConfigError(f"{path}: not a claims file (not JSON: {e})") from None
    if not isinstance(result, dict) or not isinstance(result.get("claims"), list):
        raise config_mod.ConfigError(f"{path}: not a claims file (no list of claims)")
    return result


def given(*values):
    """The first value that was given (not None): an option, then a setting, then the default."""
    return next(v for v in values if v is not None)
