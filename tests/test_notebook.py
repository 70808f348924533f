"""The tutorial notebook runs end to end headless and shows what the tutorial shows."""

import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).parents[1] / "examples" / "clustering_and_annotation.ipynb"


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    work = tmp_path_factory.mktemp("tutorial")
    shutil.copy(NOTEBOOK, work / NOTEBOOK.name)
    nb = nbformat.read(work / NOTEBOOK.name, as_version=4)
    NotebookClient(nb, timeout=1500, kernel_name="python3", resources={"metadata": {"path": str(work)}}).execute()
    return nb, work


def _text(cell):
    out = []
    for o in cell.get("outputs", []):
        if o.get("output_type") == "stream":
            out.append(o["text"])
        elif "data" in o:
            out.append(o["data"].get("text/plain", ""))
            out.append(o["data"].get("text/html", ""))
    return "\n".join(out)


def _cell(nb, needle):
    hits = [c for c in nb.cells if c.cell_type == "code" and needle in c.source]
    assert hits, needle
    return hits


def test_every_step_ran_and_shows_its_result(executed):
    nb, work = executed
    code = [c for c in nb.cells if c.cell_type == "code"]
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors[0]
    images = sum(1 for c in code for o in c.get("outputs", []) if "image/png" in o.get("data", {}))
    # plot_embedding x4, multiple x3, silhouette, 2 heatmaps, 4 marker plots, proportion
    assert images >= 15
    sc3 = _text(_cell(nb, "expm.rna.sc3(")[0])
    assert "multiplier_facility not set, using default value of 3" in sc3 and "90" in sc3
    printed = _text(_cell(nb, "print(expm)")[-1])
    assert "cell.type" in printed and "subset lymphoid" in printed
    assert "cnmf.10" in _text(_cell(nb, "print(expm)")[1])  # after consensus_nmf_extract_k
    props = _text(_cell(nb, "['integrated']")[0])
    for label in ("CD4.naive", "CD4.memory", "CD8.T", "NK", "pbmc_5k", "pbmc_10k"):
        assert label in props
    replay = _text(_cell(nb, "em.replay(")[0])
    assert "cell types identical: True" in replay
    widget = _cell(nb, "annotator(")[0]["outputs"]
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in widget)
    assert (work / "expm" / "scrna" / "subsets" / "lymphoid.h5ad").is_file()
