"""maml-convergence: the guideline tool, the paper-scale grid, the docs' tables, and every workflow step.

    maml-convergence suggest --model mymodels:model --tasks mymodels:sample_tasks
    maml-convergence sinusoid-grid --out results/sinusoid/grid.csv --provenance results/sinusoid/provenance.json

Every command validates the configuration first, writes its outputs atomically
(nothing half-written is left looking complete) and records provenance beside them.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from . import __version__
from . import config as config_mod
from . import data, guideline
from . import steps, user_commands  # noqa: F401  (their commands register themselves in COMMANDS)
from .step import COMMANDS, ReproductionDiffers
from .tasks import ProtocolError

# What a user runs; the other commands are the workflow's steps (each also runs alone).
USER_COMMANDS = ("suggest", "grid", "paper-grid", "verdict-table", "update-docs", "reproduction", "project-image-grids")

# The help of options several commands share, where the command does not give its own.
SHARED_HELP = {
    "--out": "the file this command writes its result to", "--provenance": "its provenance record (JSON)",
    "--out-json": "the result as JSON", "--out-md": "the result as a markdown table",
    "--dataset": "the image dataset", "--order": "MAML order", "--problem": "the paper's problem",
    "--claims": "the claims.json to read", "--sinusoid-grid": "the Fig. 4a grid table (sinusoid-grid's --out)",
    "--linear-reference": "the linear-regression reference (linear-reference's --out)",
    "--snapshots": "the parameter snapshots fig5-train wrote", "--chunks": "the chunk tables to merge",
    "--chunk-provenance": "the chunks' provenance records", "--figure": "the figure whose source data this is",
    "--out-dir": "the figure's source-data folder (figures/data/<figure>)",
}


class _Parser(argparse.ArgumentParser):
    """A command line mistake is one line naming the option, and exit 2 (the usage is in --help)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: {message}\n")


def _add_common(s: argparse.ArgumentParser, common: dict) -> None:
    """The options every command has (its configuration) and those it asks for (outputs, resume file, data)."""
    g = s.add_mutually_exclusive_group()
    g.add_argument("--configfile", nargs="*", default=[], help="YAML files merged over config/config.yaml, in order")
    g.add_argument("--config-json", help="the sections of the configuration this step reads, as JSON "
                                         "(what the Snakemake rules pass)")
    if common["out"]:
        s.add_argument("--out", required=True, help=SHARED_HELP["--out"])
    if common["provenance"]:
        s.add_argument("--provenance", required=True, help=SHARED_HELP["--provenance"])
    if common["checkpoint"]:
        s.add_argument("--checkpoint", help="resume file, kept while the run is incomplete")
    if common["data"]:  # a step that reads a prepared image dataset
        s.add_argument("--data", help="the prepared dataset (default: under the config's data.root)")
        s.add_argument("--dataset-record", help="the record prepare-data wrote; the dataset must still match it")


def _run(func):
    """The command's function as its module holds it when it runs, so that a stand-in a test puts there runs."""
    return lambda args: getattr(sys.modules[func.__module__], func.__name__)(args)


def build_parser() -> argparse.ArgumentParser:
    workflow_steps = [n for n in COMMANDS if n not in USER_COMMANDS]
    p = _Parser(prog="maml-convergence", description=__doc__.split("\n\n")[0],
                formatter_class=argparse.RawDescriptionHelpFormatter,
                epilog="the workflow's steps (Snakemake runs them; each also runs alone, "
                       "`maml-convergence STEP --help`):\n  " + "\n  ".join(
                           f"{n:<22} {COMMANDS[n][1]}" for n in workflow_steps))
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", title="commands")
    order = lambda kv: USER_COMMANDS.index(kv[0]) if kv[0] in USER_COMMANDS else len(USER_COMMANDS)  # noqa: E731
    for name, (func, help, arguments, common, defaults) in sorted(COMMANDS.items(), key=order):
        listed = {"help": help} if name in USER_COMMANDS else {}  # the steps are listed below, in the epilog
        s = sub.add_parser(name, description=help, **listed)
        _add_common(s, common)
        for flags, options in arguments:
            s.add_argument(*flags, **{"help": SHARED_HELP.get(flags[0]), **options})
        s.set_defaults(func=_run(func), experiment=name, **defaults)
    return p


def _terminate(signum, frame):
    raise KeyboardInterrupt  # Snakemake and cluster schedulers stop jobs with SIGTERM


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        args.func(args)
    except (config_mod.ConfigError, data.DataError, ProtocolError) as e:
        print(f"maml-convergence: {e}", file=sys.stderr)
        return 2
    except guideline.NoRecommendation as e:
        print(f"maml-convergence: no recommendation: {e}", file=sys.stderr)
        return 1
    except ReproductionDiffers as e:
        print(f"maml-convergence: {e}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, RuntimeError) as e:
        # An interrupt that lands inside one of torch's TorchScript kernels (a Hessian-vector product's
        # backward, say) comes out as a RuntimeError: it is still an interruption.
        if isinstance(e, RuntimeError) and "KeyboardInterrupt" not in str(e):
            raise
        # the resume file (--checkpoint), or paper-grid's folder of them (--scratch), if it holds one
        kept = [p for p in (getattr(args, "checkpoint", None), getattr(args, "scratch", None))
                if p and (Path(p).is_file() or any(Path(p).glob("*.ckpt")))]
        print("maml-convergence: interrupted; " + (f"rerun the same command to resume from {kept[0]}" if kept
              else "nothing was kept to resume from" + (" (give --checkpoint FILE to keep it)"
                                                        if hasattr(args, "checkpoint") else "")), file=sys.stderr)
        return 130
    return 0
