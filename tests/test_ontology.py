"""Cell Ontology labels, the CELLxGENE export and comparing annotations / histories, with the
real Cell Ontology shipped by cellxgene-ontology-guide (the `ontology` extra)."""

import json
import sys

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scanpy as sc

import exprmat_widgets as em
from exprmat_widgets.cli import main
from exprmat_widgets.errors import ExprmatError
from exprmat_widgets.tl import ontology as onto

MONOCYTE, B_CELL, HSC = "CL:0000576", "CL:0000236", "CL:0000037"


def _mask(adata, label):
    return (adata.obs["bulk_labels"] == label).to_numpy()


def _params(adata, step=-1):
    return json.loads(adata.uns["commands"][step])["params"]


@pytest.fixture
def hidden_ontology(monkeypatch):
    """The package hidden, as on an install without the extra."""
    monkeypatch.setitem(sys.modules, "cellxgene_ontology_guide", None)
    monkeypatch.setitem(sys.modules, "cellxgene_ontology_guide.ontology_parser", None)
    onto._parser.cache_clear()
    onto._index.cache_clear()
    yield
    onto._parser.cache_clear()
    onto._index.cache_clear()


# --------------------------------------------------------------------------- resolution / completion


def test_resolve_id_name_synonym_and_completion_ranks_exact_first():
    assert onto.available()
    assert onto.resolve_term("CL:0000576").label == "monocyte"
    assert onto.resolve_term("CL_0000576").id == MONOCYTE
    t = onto.resolve_term("Monocyte")
    assert (t.id, t.kind) == (MONOCYTE, "label")
    t = onto.resolve_term("nerve cell")  # a synonym of neuron
    assert (t.label, t.kind) == ("neuron", "synonym")
    assert onto.complete("monocyte")[0].id == MONOCYTE
    # the exact synonym first, before the labels that merely contain the text
    first = onto.complete("nerve cell")
    assert first[0].label == "neuron" and first[0].matched == "nerve cell"
    assert all("nerve cell" in (c.matched.lower()) for c in first)
    # prefix matches of names come before names containing the text elsewhere
    mono = onto.complete("mono", n=30)
    starts = [c.matched.lower().startswith("mono") for c in mono]
    assert starts[0] and starts == sorted(starts, reverse=True)
    assert len({c.id for c in mono}) == len(mono)
    assert onto.complete("CL:000057")[0].id.startswith("CL:000057")


@pytest.mark.parametrize(
    "text, words",
    [
        ("CL:9999999", ["not a term", "CL:9999999"]),
        ("CL:0000003", ["obsolete", "replaced by CL:0000000"]),
        ("native cell", ["obsolete", "replaced by CL:0000000"]),
        ("substantia nigra dopaminergic neuron", ["2 Cell Ontology terms", "CL:4042025", "CL:4072006", "pass the id"]),
        ("monocyteish thing", ["not a Cell Ontology term", "unmapped"]),
    ],
)
def test_bad_terms_name_problem_and_fix(text, words):
    with pytest.raises(ExprmatError) as e:
        onto.resolve_term(text)
    for w in words:
        assert w in str(e.value)


# --------------------------------------------------------------------------- the label commands


def test_label_commands_record_resolved_ids_and_replay(tmp_path):
    a = em.datasets.pbmc68k_counts()
    start = a.copy()
    em.label_cells(a, "cell_type", _mask(a, "CD14+ Monocyte"), "Mo", term="monocyte")
    em.label_cells(a, "cell_type", _mask(a, "CD19+ B"), "CL:0000236")  # an id: the label is its name
    em.label_cells(a, "cell_type", _mask(a, "CD34+"), "Prog")  # free text: unmapped
    em.rename_cluster(a, "cell_type", "Prog", "Progenitor", term="hematopoietic stem cell")
    em.annotate(a, "broad", "bulk_labels", {"monocyte": ["CD14+ Monocyte"], "Other": ["CD19+ B", "CD34+"]})
    obs = a.obs
    assert set(obs["cell_type"].cat.categories) == {"Mo", "B cell", "Progenitor"}
    assert em.term_mapping(a, "cell_type") == {"Mo": MONOCYTE, "B cell": B_CELL, "Progenitor": HSC}
    ids = obs["cell_type_ontology_term_id"]
    assert (ids[obs["cell_type"] == "Mo"] == MONOCYTE).all()
    assert ids[obs["cell_type"].isna()].isna().all()
    assert em.term_mapping(a, "broad") == {"monocyte": MONOCYTE}
    assert obs.loc[obs["broad"] == "Other", "broad_ontology_term_id"].isna().all()
    # the records hold the resolved ids (names resolved once, when recorded)
    assert [_params(a, i)["term"] for i in range(4)] == [MONOCYTE, B_CELL, "", HSC]
    assert _params(a, 1)["label"] == "B cell"
    assert _params(a)["terms"] == {"monocyte": MONOCYTE, "Other": ""}
    out = json.loads(a.uns["commands"][0])["output"]
    assert "obs:cell_type_ontology_term_id" in out
    # ids round-trip through h5ad, and replay reproduces every step (fingerprints compared)
    a.write_h5ad(tmp_path / "a.h5ad")
    b = ad.read_h5ad(tmp_path / "a.h5ad")
    assert em.term_mapping(b, "cell_type") == em.term_mapping(a, "cell_type")
    again = em.replay(start, b.uns["commands"])
    assert again.obs["cell_type_ontology_term_id"].astype(str).equals(ids.astype(str))


def test_existing_label_keeps_term_and_merge_keeps_it():
    a = em.datasets.pbmc68k_counts()
    em.label_cells(a, "ct", _mask(a, "CD14+ Monocyte"), "Mo", term=MONOCYTE)
    em.label_cells(a, "ct", _mask(a, "Dendritic"), "Mo")  # the label already stands for monocyte
    assert em.term_mapping(a, "ct") == {"Mo": MONOCYTE}
    assert (a.obs.loc[_mask(a, "Dendritic"), "ct_ontology_term_id"] == MONOCYTE).all()
    em.label_cells(a, "ct", _mask(a, "CD19+ B"), "B", term=B_CELL)
    em.merge_clusters(a, "ct", ["Mo", "B"], new_name="Mo")
    assert em.term_mapping(a, "ct") == {"Mo": MONOCYTE}
    assert (a.obs["ct_ontology_term_id"].dropna() == MONOCYTE).all()


def test_subclusters_keep_the_term_their_parents_share_and_replay(pbmc_graph):
    a = pbmc_graph
    start = a.copy()
    em.annotate(a, "ct", "bulk_labels", {"Mo": ["CD14+ Monocyte"], "B": ["CD19+ B"], "Prog": ["CD34+"]},
                terms={"Mo": MONOCYTE, "B": B_CELL, "Prog": ""})
    fp = a.obs["ct_ontology_term_id"].copy()
    em.subcluster(a, _mask(a, "CD14+ Monocyte"), resolution=1.5, key="ct")
    new = [c for c in a.obs["ct"].cat.categories if c.startswith("Mo,")]
    assert len(new) >= 2
    mapping = em.term_mapping(a, "ct")
    assert all(mapping[c] == MONOCYTE for c in new) and mapping["B"] == B_CELL and "Prog" not in mapping
    ids = a.obs["ct_ontology_term_id"]
    assert (ids[a.obs["ct"].isin(new)] == MONOCYTE).all()
    # a sub-cluster drawn from two labels with different ids gets none; into a new column
    both = _mask(a, "CD19+ B") | _mask(a, "CD34+")
    em.subcluster(a, both, resolution=0.2, key="ct", key_added="ct_fine")
    fine = em.term_mapping(a, "ct_fine")
    mixed = [c for c in a.obs["ct_fine"].cat.categories if c.startswith("B-Prog,")]
    assert mixed and all(c not in fine or fine[c] == B_CELL for c in mixed)
    assert any(c not in fine for c in mixed)  # at least one group mixes B and Prog cells
    assert all(fine[c] == MONOCYTE for c in new)
    json_out = json.loads(a.uns["commands"][-1])["output"]
    assert "obs:ct_fine_ontology_term_id" in json_out
    # undo gives the parent's ids back; replay reproduces both steps
    again = em.replay(start, a.uns["commands"])
    assert again.obs["ct_fine_ontology_term_id"].astype(str).equals(a.obs["ct_fine_ontology_term_id"].astype(str))
    em.undo(a)
    assert "ct_fine_ontology_term_id" not in a.obs.columns
    em.undo(a)
    assert a.obs["ct_ontology_term_id"].astype(str).equals(fp.astype(str))
    # clustering a labelled column afresh drops its stale ids
    em.leiden(a, resolution=0.5, key_added="ct", random_state=0)
    assert "ct_ontology_term_id" not in a.obs.columns


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda a, m: em.label_cells(a, "ct", m, "X", term="CL:9999999"), ["not a term"]),
        (lambda a, m: em.label_cells(a, "ct", m, "X", term="CL:0000003"), ["obsolete", "CL:0000000"]),
        (lambda a, m: em.label_cells(a, "ct", m, "X", term="substantia nigra dopaminergic neuron"),
         ["pass the id"]),
        (lambda a, m: em.label_cells(a, "ct", m, "Mo", term=B_CELL), ["already stands for", "rename_cluster"]),
        (lambda a, m: em.annotate(a, "ct2", "bulk_labels", {"A": ["CD34+"]}, terms={"B": B_CELL}),
         ["not keys of mapping"]),
        (lambda a, m: em.rename_cluster(a, "ct", "Mo", "Mono", term="no such cell"), ["not a Cell Ontology"]),
    ],
)
def test_bad_label_input_changes_nothing(call, words):
    a = em.datasets.pbmc68k_counts()
    em.label_cells(a, "ct", _mask(a, "CD14+ Monocyte"), "Mo", term=MONOCYTE)
    before_obs, before_hist = a.obs.copy(), list(a.uns["commands"])
    with pytest.raises(ExprmatError) as e:
        call(a, _mask(a, "CD19+ B"))
    for w in words:
        assert w in str(e.value)
    pd.testing.assert_frame_equal(a.obs, before_obs)
    assert list(a.uns["commands"]) == before_hist


def test_without_the_extra_labels_work_and_ids_say_how_to_install(hidden_ontology):
    assert not onto.available()
    assert onto.complete("mono") == []
    a = em.datasets.pbmc68k_counts()
    em.label_cells(a, "ct", _mask(a, "CD14+ Monocyte"), "monocyte")
    assert "ct_ontology_term_id" not in a.obs.columns  # unmapped without the ontology
    with pytest.raises(ExprmatError, match=r"exprmat_widgets\[ontology\]"):
        em.label_cells(a, "ct", _mask(a, "CD19+ B"), "B", term="B cell")
    assert set(a.obs["ct"].dropna().unique()) == {"monocyte"}


def test_replay_of_recorded_ids_needs_no_ontology(monkeypatch):
    a = em.datasets.pbmc68k_counts()
    start = a.copy()
    em.label_cells(a, "ct", _mask(a, "CD14+ Monocyte"), "Mo", term="monocyte")
    monkeypatch.setitem(sys.modules, "cellxgene_ontology_guide", None)
    monkeypatch.setitem(sys.modules, "cellxgene_ontology_guide.ontology_parser", None)
    onto._parser.cache_clear()
    try:
        b = em.replay(start, a.uns["commands"])
    finally:
        onto._parser.cache_clear()
    assert em.term_mapping(b, "ct") == {"Mo": MONOCYTE}


# --------------------------------------------------------------------------- CELLxGENE export


def test_export_cellxgene_ids_exist_in_cl_and_missing_listed(tmp_path, capsys):
    a = em.datasets.pbmc68k_counts()
    for lab, term in [("CD14+ Monocyte", MONOCYTE), ("CD19+ B", "B cell"), ("CD56+ NK", "natural killer cell")]:
        em.label_cells(a, "cell_type", _mask(a, lab), lab, term=term)
    em.label_cells(a, "cell_type", _mask(a, "CD34+"), "CD34+")
    rep = em.export_cellxgene(a, "cell_type", tmp_path / "cxg.h5ad")
    b = sc.read_h5ad(tmp_path / "cxg.h5ad")
    ids = b.obs["cell_type_ontology_term_id"]
    parser = onto._parser()
    assert {str(i) for i in ids.dropna().unique()} == {MONOCYTE, B_CELL, "CL:0000623"}
    assert all(parser.is_valid_term_id(str(i), "CL") and not parser.is_term_deprecated(str(i))
               for i in ids.dropna().unique())
    assert (ids[_mask(b, "CD14+ Monocyte")] == MONOCYTE).all()
    assert "cell_type" not in b.obs.columns and "author_cell_type" in b.obs.columns  # reserved by the schema
    assert rep.unmapped == ["CD34+"]
    text = str(rep)
    for need in ["assay_ontology_term_id", "tissue_ontology_term_id", "organism_ontology_term_id", "Ensembl"]:
        assert need in text
    assert "uns['title']" in rep.missing and "obs['donor_id']" in rep.missing
    n_without = int(a.obs["cell_type"].isna().sum()) + 13  # unlabelled cells and the 13 CD34+ cells
    assert f"obs['cell_type_ontology_term_id'] for {n_without} cells" in rep.missing
    a.write_h5ad(tmp_path / "a.h5ad")
    assert main(["export-cellxgene", str(tmp_path / "a.h5ad"), "--labels", "cell_type", "-o",
                 str(tmp_path / "cli.h5ad"), "--unmapped", "unknown"]) == 0
    assert "still needs" in capsys.readouterr().out
    c = sc.read_h5ad(tmp_path / "cli.h5ad")
    assert (c.obs.loc[_mask(c, "CD34+"), "cell_type_ontology_term_id"] == "unknown").all()
    assert main(["export-cellxgene", str(tmp_path / "a.h5ad"), "--labels", "nope", "-o",
                 str(tmp_path / "x.h5ad")]) == 2


# --------------------------------------------------------------------------- comparing annotations


def test_compare_bulk_labels_against_leiden(pbmc_graph):
    a = pbmc_graph
    cmp = em.compare_annotations(a, "bulk_labels", "leiden")
    t = cmp.table
    assert t.to_numpy().sum() == a.n_obs == cmp.n_cells
    assert list(t.index) == list(a.obs["bulk_labels"].cat.categories)
    from sklearn.metrics import adjusted_rand_score

    assert cmp.ari == pytest.approx(adjusted_rand_score(a.obs["bulk_labels"], a.obs["leiden"]))
    assert 0.1 < cmp.ari < 1
    row = cmp.per_label_a.loc["CD19+ B"]
    n_b = int(_mask(a, "CD19+ B").sum())
    top = a.obs.loc[_mask(a, "CD19+ B"), "leiden"].value_counts()
    assert row["n_cells"] == n_b and row["best_match"] == str(top.index[0])
    assert row["agreement"] == pytest.approx(top.iloc[0] / n_b)
    m = cmp.cells("CD19+ B", row["best_match"])
    assert m.sum() == top.iloc[0] and (a.obs.loc[m, "bulk_labels"] == "CD19+ B").all()
    with pytest.raises(ExprmatError, match="not a cell of the table"):
        cmp.cells("CD19+ B", "no-such")
    # the same annotation: ARI 1, full agreement
    same = em.compare_annotations(a, "leiden", "leiden")
    assert same.ari == pytest.approx(1.0) and (same.per_label_a["agreement"] == 1).all()


def test_compare_two_files_matched_by_names_and_different_cells_refused(pbmc_graph, tmp_path):
    a = pbmc_graph
    b = a[::-1].copy()  # the other annotator's file, cells in another order
    b.obs["leiden"] = b.obs["leiden"].cat.rename_categories(lambda c: f"c{c}")
    cmp = em.compare_annotations(a, "bulk_labels", "leiden", other=b)
    ref = em.compare_annotations(a, "bulk_labels", "leiden")
    assert cmp.ari == pytest.approx(ref.ari)
    assert (cmp.table.to_numpy() == ref.table.to_numpy()).all()
    with pytest.raises(ExprmatError, match="cover different cells") as e:
        em.compare_annotations(a, "bulk_labels", "leiden", other=b[:600].copy())
    assert "100 only in the first" in str(e.value) and "isin" in str(e.value)


def test_diff_histories_of_two_annotators():
    start = em.datasets.pbmc68k_counts()
    x, y = start.copy(), start.copy()
    for d in (x, y):
        em.label_cells(d, "ct", _mask(d, "CD14+ Monocyte"), "Mo", term=MONOCYTE)
    em.label_cells(x, "ct", _mask(x, "CD19+ B"), "B")
    em.label_cells(y, "ct", _mask(y, "CD19+ B"), "B cells")
    em.label_cells(y, "ct", _mask(y, "CD34+"), "Prog")
    d = em.diff_histories(x, y)
    assert d.attrs["common_steps"] == 1
    assert list(d["status"]) == ["params", "only b"]
    assert d.loc[0, "differs"] == "label" and d.loc[0, "step"] == 1
    assert em.diff_histories(x, x.copy()).empty
    other = em.datasets.pbmc68k_counts()[:500].copy()
    em.label_cells(other, "ct", np.ones(500, bool), "all")
    with pytest.raises(ExprmatError, match="start from different data"):
        em.diff_histories(x, other)


# --------------------------------------------------------------------------- the panels (no browser)


def _annotator(adata):
    import exprmat_widgets.widgets  # noqa: F401

    return em.Annotator(adata, key="leiden", basis="umap", label_key="cell_type", background=False)


def test_label_box_completes_cl_names_and_records_the_picked_id(pbmc_graph):
    ann = _annotator(pbmc_graph)
    cp = ann.clusters
    cp.label_text.value = "monoc"
    opts = list(cp.term_suggestions.options)
    assert opts and opts[0][1] == MONOCYTE and "monocyte" in opts[0][0]
    assert cp.term_suggestions.layout.display is None  # shown
    cp.term_suggestions.value = MONOCYTE  # pick it
    assert cp.label_text.value == "monocyte" and MONOCYTE in cp.term_info.value
    cp.label_text.value = "Mo"  # shortened: the picked term stays
    assert "picked" in cp.term_info.value
    cp.select(["0"])
    cp.label_button.click()
    assert ann.status_kind == "ok", ann.status_text
    assert em.term_mapping(pbmc_graph, "cell_type") == {"Mo": MONOCYTE}
    assert _params(pbmc_graph)["term"] == MONOCYTE and _params(pbmc_graph)["label"] == "Mo"
    # the box is emptied for the next selection: no text, suggestions or picked term
    assert cp.label_text.value == "" and cp.label_box.picked is None
    assert list(cp.term_suggestions.options) == [] and cp.term_suggestions.layout.display == "none"
    assert "picked" not in cp.term_info.value
    # the label box now names the label's term from the data
    cp.label_text.value = ""
    cp.label_text.value = "Mo"
    assert MONOCYTE in cp.term_info.value and "the term of this label" in cp.term_info.value
    cp.label_text.value = "Prog"
    assert "unmapped" in cp.term_info.value
    cp.label_text.value = "CL:0000003"  # an obsolete id: said before labelling
    assert "obsolete" in cp.term_info.value and "em-term-error" in cp.term_info.value


def test_label_box_without_the_extra_says_how_to_get_completion(pbmc_graph, hidden_ontology):
    ann = _annotator(pbmc_graph)
    cp = ann.clusters
    assert "exprmat_widgets[ontology]" in cp.term_info.value
    cp.label_text.value = "monocyte"
    assert list(cp.term_suggestions.options) == [] and cp.term_suggestions.layout.display == "none"
    cp.select(["0"])
    cp.label_button.click()
    assert ann.status_kind == "ok", ann.status_text
    assert "cell_type_ontology_term_id" not in pbmc_graph.obs.columns


def test_compare_view_click_selects_the_cells(pbmc_graph):
    ann = _annotator(pbmc_graph)
    cv = ann.compare
    cv.key_a.value, cv.key_b.value = "bulk_labels", "leiden"
    cv.button.click()
    assert ann.status_kind == "ok" and "ARI" in cv.summary.value
    ref = em.compare_annotations(pbmc_graph, "bulk_labels", "leiden")
    assert cv.result.ari == pytest.approx(ref.ari)
    la, lb = "CD19+ B", ref.per_label_a.loc["CD19+ B", "best_match"]
    btn = cv.cells[(la, lb)]
    assert btn.description == f"{int(ref.table.loc[la, lb]):,}"
    btn.click()
    want = ((pbmc_graph.obs["bulk_labels"] == la) & (pbmc_graph.obs["leiden"] == lb)).to_numpy()
    assert (ann.scatter.selection_mask == want).all()
    assert ann.clusters.selection_kind == "lasso"  # the cluster buttons act on those cells
    # a label changes the table: it is redrawn
    ann.clusters.label_key_box.value = "ct"
    ann.clusters.label_text.value = "B"
    ann.clusters.label_button.click()
    cv.key_b.value = "ct"
    cv.button.click()
    assert list(cv.result.table.columns) == ["B"]
    em.label_cells(pbmc_graph, "ct", ~want, "rest")
    ann.refresh({"obs:ct"})
    assert set(cv.result.table.columns) == {"B", "rest"}
