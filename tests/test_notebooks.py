"""Every figure notebook opens on a fresh clone: it runs on the committed source data (figures/data/), with
no workflow run, and shows its figure; each committed figure names the commit of the source data it was
drawn from, and that commit is a clean one."""

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from PIL import Image

from conftest import figures_predate_the_workflow
from maml_convergence import captions, figures

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
FIGURES = figures.names()  # the table of figures


@pytest.fixture(autouse=True)
def _committed_figures_are_current(root):
    reason = figures_predate_the_workflow(root)
    if reason:
        pytest.skip(reason)


def test_every_figure_has_source_data_and_every_notebook_a_figure(root):
    assert sorted(p.name for p in (root / "figures" / "data").iterdir() if (p / "provenance.json").exists()) == \
        sorted(FIGURES)
    assert {n.removesuffix(".ipynb") for n in NOTEBOOKS} == set(figures.by_notebook())
    assert {p.stem for p in (root / "rules" / "report").glob("*.rst")} == {"claims", "provenance"}  # the others:
    # each notebook's first cell is the caption of its figures, the report's written from it (next test)
    size = sum(p.stat().st_size for p in (root / "figures" / "data").rglob("*") if p.is_file())
    assert size < 20e6, f"figures/data holds {size / 1e6:.1f} MB"


@pytest.mark.parametrize("notebook", list(figures.by_notebook()))
def test_each_notebook_opens_on_its_caption_and_the_report_caption_written_from_it_is_valid_rst(notebook, root):
    from docutils.core import publish_parts

    from maml_convergence import config

    caption = captions.caption(notebook, root)
    assert caption.title and caption.body, notebook
    nb = nbformat.read(root / "notebooks" / f"{notebook}.ipynb", as_version=4)
    assert nb.cells[0].cell_type == "markdown" and f"\n{captions.CAPTION_END}\n" in nb.cells[0].source
    for cfg in (config.load(), config.load(root / "config" / "reduced.yaml")):
        rst = captions.report_caption(notebook, cfg, root)
        assert "`" not in rst.replace("``", ""), rst  # markdown code made rst literals
        publish_parts(rst, writer_name="html", settings_overrides={"halt_level": 2, "report_level": 2})


def test_the_report_quotes_the_settings_a_figure_was_computed_with(root, tmp_path):
    """The paper-scale grid's chunks are computed with the shipped config whatever the run's: its report caption
    quotes those settings under config/reduced.yaml too, while the reduced grid's caption quotes the run's."""
    from maml_convergence import config

    reduced, shipped = config.load(root / "config" / "reduced.yaml"), config.load()
    reduced["paper_grid"] = {**reduced["paper_grid"], "chunks": 16, "folder": "elsewhere/chunks"}  # the run's own
    assert reduced["omniglot"]["iterations"] != shipped["omniglot"]["iterations"]
    written = captions.write_report_captions(tmp_path, reduced, root)
    paper = written["fig4b_paper"].read_text()
    assert f"tasks per meta-batch, {shipped['omniglot']['iterations']} iterations" in paper
    assert "computed in 16 fixed chunks" in paper and "elsewhere/chunks" in paper
    assert captions.report_caption("fig4bc", reduced, root) == written["fig4bc"].read_text()


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_the_notebook_runs_on_the_committed_source_data_and_shows_its_figure(name, root):
    nb = nbformat.read(root / "notebooks" / name, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(root / "notebooks")}}).execute()
    shown = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.get("outputs", [])
             if "image/png" in out.get("data", {})]
    assert shown, f"{name} ran but showed no figure"


@pytest.mark.slow
def test_fig4bc_opened_by_hand_draws_fig4c_as_its_first_cell_says(root):
    nb = nbformat.read(root / "notebooks" / "fig4bc.ipynb", as_version=4)
    assert '"fig4c"' in nb.cells[0].source and "notebook_io" in nb.cells[0].source  # the instruction
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert 'notebook_io(globals().get("snakemake"), "fig4b")' in first.source
    first.source = first.source.replace('"fig4b")', '"fig4c")')
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(root / "notebooks")}}).execute()
    shown = [out for cell in nb.cells if cell.cell_type == "code"
             for out in cell.get("outputs", []) if "image/png" in out.get("data", {})]
    assert shown, "fig4bc ran for fig4c but showed no figure"


@pytest.mark.parametrize("figure", FIGURES)
def test_the_committed_figure_names_the_clean_commit_of_its_source_data(figure, root):
    meta = json.loads((root / "figures" / "data" / figure / "provenance.json").read_text())
    commits = {meta["git_commit"]} | {step["git_commit"] for step in meta["steps"].values()}
    assert not any(c.endswith("-dirty") or c == "unknown" for c in commits), commits
    drawn_from = f"maml-convergence {meta['git_commit']} {figure}"
    assert Image.open(root / "figures" / f"{figure}.png").text.get("Source") == drawn_from
    assert f"({drawn_from})".encode() in (root / "figures" / f"{figure}.pdf").read_bytes()
