"""A figure's caption: its notebook's first cell, from which the report's caption (rules/figures.smk) and the
tables of docs/figures.md (``maml-convergence update-docs``) are written.

The first cell is markdown: a ``# title`` line and the caption, ended by a line ``---`` (below it, notes for
whoever opens the notebook). A config key in code type (```fig1.beta```, ```seed```) stands for its value: the
notebook shows the key, and the report's caption and docs/figures.md write the value of the run in question. A
constant of a rule is quoted as the pages quote numbers, ``<!-- n: chance_p -->0.01<!-- /n -->`` (one of
``claims.numbers.CONSTANTS``; a test holds each to the code), and written as its value.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from . import config as config_mod
from .config import ROOT
from .figures import by_name, by_notebook, config_sections
from .provenance import atomic_write_text

# The caption: a notebook's first cell (the module docstring says how it is written).

CAPTION_END = "---"
_CODE = re.compile(r"`([^`\n]+)`")
_KEY = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)*")
# A number marked in prose (the captions and the pages, claims/numbers.py); it sits here, below the claims,
# because the Snakefile writes the report's captions without importing them.
MARK = re.compile(r"<!-- n: (?P<name>[\w:./-]+) -->(?P<value>.*?)<!-- /n -->", re.S)


@dataclass(frozen=True)
class Caption:
    title: str  # the first line, without its '# '
    body: str  # markdown paragraphs, separated by blank lines

    @property
    def label(self) -> str:
        """The title's part before its dash: 'Fig. 1'."""
        return self.title.split(" — ", 1)[0]


def caption(notebook: str, root: Path = ROOT) -> Caption:
    """The caption of ``notebook``'s figures, its first cell down to the line ``---``."""
    cells = json.loads((root / "notebooks" / f"{notebook}.ipynb").read_text())["cells"]
    if not cells or cells[0]["cell_type"] != "markdown":
        raise ValueError(f"notebooks/{notebook}.ipynb: its first cell must be its caption (markdown)")
    text = "".join(cells[0]["source"]).strip()
    text = text.split(f"\n{CAPTION_END}\n", 1)[0].strip()
    first, _, body = text.partition("\n")
    if not first.startswith("# "):
        raise ValueError(f"notebooks/{notebook}.ipynb: its first cell must open on a '# title' line")
    return Caption(first.removeprefix("# ").strip(), body.strip())


def _scalar(value) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def config_value(cfg: dict, key: str):
    """The value of ``key`` (dotted: ``linear.reference.alpha``) in ``cfg`` written out, or None where it names no
    number, string or list of them there."""
    value = cfg
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    if isinstance(value, list) and all(_scalar(v) for v in value):
        return ", ".join(str(v) for v in value)
    return str(value) if _scalar(value) else None


def with_values(text: str, cfg: dict, code: str = "`{}`") -> str:
    """``text`` with each config key in code type written as its value in ``cfg``, other code as ``code``, and
    each marked number as its value."""
    def one(match):
        inner = match.group(1)
        value = config_value(cfg, inner) if _KEY.fullmatch(inner) else None
        return code.format(inner) if value is None else value
    return _CODE.sub(one, MARK.sub(lambda m: m["value"], text))


def _sentence(title: str) -> str:
    """A title as the caption's first sentence: a full stop unless it ends in one of its own (a question)."""
    return title if title.endswith((".", "?", "!")) else f"{title}."


def report_caption(notebook: str, cfg: dict, root: Path = ROOT) -> str:
    """The report's caption (reStructuredText) of ``notebook``'s figures, with the values of ``cfg``."""
    c = caption(notebook, root)
    body = re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", with_values(c.body, cfg, "``{}``"))  # links: their text
    return f"**{_sentence(with_values(c.title, cfg, '``{}``'))}** {body}\n"


def write_report_captions(folder: str | Path, cfg: dict, root: Path = ROOT) -> dict[str, Path]:
    """Each notebook's report caption written to ``folder``/<notebook>.rst with the values of ``cfg`` (for a
    figure computed with the shipped settings whatever the run's, those: ``config.paper_settings``) (a file left
    alone where it holds the caption already; written atomically, as jobs on several nodes read the workflow at
    once); the absolute paths, by notebook."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for notebook, drawn in by_notebook().items():
        settings = config_mod.paper_settings(cfg) if by_name(drawn[0]).shipped_settings else cfg
        path, text = folder / f"{notebook}.rst", report_caption(notebook, settings, root)
        if not path.exists() or path.read_text() != text:
            atomic_write_text(path, text)
        paths[notebook] = path.resolve()
    return paths


# docs/figures.md: its two tables of figures, written from the table and the captions (update-docs).

TABLES = {"figure-code": "## Figure → code", "figure-captions": "## What each figure shows"}


def _begin(table: str) -> str:
    return f"<!-- generated: {table} (maml-convergence update-docs) -->"


_END = "<!-- /generated -->"


def drawn_config(figure: str, root: Path = ROOT) -> dict:
    """The config the committed source data of ``figure`` was computed with: the whole config of its steps' run,
    under the sections each step read (a step may have read other values than its run's, as the paper-scale
    grid's chunks do); without source data, the default config."""
    path = root / "figures" / "data" / figure / "provenance.json"
    if not path.exists():
        return config_mod.load()
    steps = list(json.loads(path.read_text())["steps"].values())
    cfg = next((step["workflow_config"] for step in steps if "workflow_config" in step), config_mod.load())
    for step in steps:
        cfg = {**cfg, **step.get("config", {})}
    return cfg


def _cell(text: str) -> str:
    return text.replace("|", r"\|").replace("\n\n", "<br><br>").replace("\n", " ")


def _link(path: str) -> str:
    return f"[{path}](../{path})"


def figure_code_table(root: Path = ROOT) -> str:
    """A row per notebook: the rule files and commands behind its figures, their experiments functions and
    config sections, and the notebook. A command its rule file does not run adds the rule files that do."""
    rule_text = {p.stem: p.read_text() for p in sorted((root / "rules").glob("*.smk"))}
    lines = ["| figure | rule file | command (`maml-convergence …`) | `experiments` function | config section "
             "| notebook |", "|---|---|---|---|---|---|"]
    for notebook, drawn in by_notebook().items():
        f = by_name(drawn[0])
        runs = {c for c in f.commands if f"maml-convergence {c} " in rule_text.get(f.rules, "")}
        files = [f.rules] + [r for c in f.commands if c not in runs for r in rule_text
                             if f"maml-convergence {c} " in rule_text[r]]
        row = [caption(notebook, root).label, ", ".join(_link(f"rules/{r}.smk") for r in dict.fromkeys(files)),
               ", ".join(f"`{c}`" for c in f.commands), ", ".join(f"`{n}`" for n in f.functions),
               ", ".join(f"`{s}`" for s in config_sections(f)), _link(f"notebooks/{notebook}.ipynb")]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def figure_caption_table(root: Path = ROOT) -> str:
    """A row per notebook: its figures as the workflow last drew them and its caption, with the values of the
    config their source data was computed with."""
    lines = ["| figure | what it shows | notebook |", "|---|---|---|"]
    for notebook, drawn in by_notebook().items():
        c = caption(notebook, root)
        images = "<br>".join(f'<img src="../figures/{n}.png" width="300" alt="{n}"><br>`figures/{n}`' for n in drawn)
        cfg = drawn_config(drawn[0], root)
        text = f"**{_sentence(with_values(c.title, cfg))}** {with_values(c.body, cfg)}"
        lines.append(f"| {images} | {_cell(text)} | {_link(f'notebooks/{notebook}.ipynb')} |")
    return "\n".join(lines)


def with_figure_tables(text: str, root: Path = ROOT) -> str:
    """``text`` (docs/figures.md) with each generated table between its markers written afresh."""
    for table, make in (("figure-code", figure_code_table), ("figure-captions", figure_caption_table)):
        begin = _begin(table)
        if text.count(begin) != 1 or text.count(_END) < 1:
            raise ValueError(f"no single '{begin}' ... '{_END}' block")
        head, rest = text.split(begin, 1)
        text = f"{head}{begin}\n{make(root)}\n{_END}{rest.split(_END, 1)[1]}"
    return text


def has_figure_tables(text: str) -> bool:
    return all(_begin(t) in text for t in TABLES)
