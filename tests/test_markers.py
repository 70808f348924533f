"""Marker genes: equality with scanpy.tl.rank_genes_groups, filtering, selections,
bad input leaving data and history unchanged, exact replay."""

import json
import warnings

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
import scanpy as sc
from sklearn.cluster import KMeans

import exprmat_widgets as em

FIELDS = ("scores", "logfoldchanges", "pvals", "pvals_adj")
REF_PBMC = "CD14+ Monocyte"


def assert_same_as_scanpy(ours: dict, ref: dict, *, tol=1e-6):
    """Names in the same order, numbers within tol (absolute, or relative above 1), same pts."""
    assert ours["names"].dtype.names == ref["names"].dtype.names
    for g in ref["names"].dtype.names:
        assert list(ours["names"][g]) == list(ref["names"][g]), g
        for f in FIELDS:
            if f not in ref:
                continue
            a = np.asarray(ours[f][g], dtype=float)
            b = np.asarray(ref[f][g], dtype=float)
            assert ours[f].dtype[g] == ref[f].dtype[g]
            np.testing.assert_allclose(a, b, rtol=tol, atol=tol, equal_nan=True, err_msg=f"{f} {g}")
    for f in ("pts", "pts_rest"):
        assert (f in ours) == (f in ref), f
        if f in ref:
            pd.testing.assert_frame_equal(ours[f], ref[f][ours[f].columns], check_exact=False, atol=tol)
            assert list(ours[f].columns) == list(ref[f].columns)
    for k in ("groupby", "reference", "method", "use_raw", "corr_method"):
        assert ours["params"][k] == ref["params"][k], k


def run_both(adata, groupby, **kw):
    em.markers(adata, groupby, key_added="ours", **kw)
    use_raw = kw.pop("use_raw", False)
    kw.pop("gene_symbol", None)
    kw.setdefault("pts", True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sc.tl.rank_genes_groups(adata, groupby, key_added="ref", use_raw=use_raw, **kw)
    return adata.uns["ours"], adata.uns["ref"]


@pytest.fixture(scope="module")
def pbmc_mod():
    return sc.datasets.pbmc68k_reduced()


@pytest.fixture(scope="module")
def mouse_km(mouse10k):
    """10,000 real mouse cells, log-normalised, in 8 k-means groups of the PCA."""
    a = mouse10k.copy()
    km = KMeans(8, random_state=0, n_init=3).fit_predict(a.obsm["X_pca"])
    a.obs["km"] = pd.Categorical([f"k{i}" for i in km])
    a.var["gene"] = [f"sym-{g}" for g in a.var_names]
    return a


CASES = [
    {"method": "t-test", "reference": "rest"},
    {"method": "t-test", "reference": "NAMED"},
    {"method": "t-test_overestim_var", "reference": "rest"},
    {"method": "wilcoxon", "reference": "rest", "tie_correct": False},
    {"method": "wilcoxon", "reference": "rest", "tie_correct": True},
    {"method": "wilcoxon", "reference": "NAMED", "tie_correct": False},
    {"method": "wilcoxon", "reference": "NAMED", "tie_correct": True},
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(str(v) for v in c.values()))
def test_equal_to_scanpy_pbmc(pbmc_mod, case):
    a = pbmc_mod.copy()
    case = dict(case, reference=REF_PBMC if case["reference"] == "NAMED" else "rest")
    # raw holds log-normalised values (what markers expect); X holds scaled values with negatives
    ours, ref = run_both(a, "bulk_labels", use_raw=True, **case)
    assert_same_as_scanpy(ours, ref)
    if case.get("tie_correct") or case["method"] == "t-test":
        # X: dense scaled values with negatives (dense kernels, negative values rank below zeros)
        ours, ref = run_both(a, "bulk_labels", use_raw=False, **case)
        assert_same_as_scanpy(ours, ref)


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(str(v) for v in c.values()))
def test_equal_to_scanpy_mouse10k(mouse_km, case):
    a = mouse_km.copy()
    case = dict(case, reference="k3" if case["reference"] == "NAMED" else "rest")
    ours, ref = run_both(a, "km", **case)
    assert_same_as_scanpy(ours, ref)
    assert len(ours["names"]) == a.n_vars


def test_options_equal_to_scanpy(mouse_km):
    a = mouse_km.copy()
    a.layers["lognorm"] = a.X.copy()
    a.var["hv"] = np.arange(a.n_vars) % 3 != 0
    ours, ref = run_both(
        a, "km", method="wilcoxon", groups=["k5", "k1"], n_genes=25, rankby_abs=True,
        corr_method="bonferroni", layer="lognorm", mask_var="hv",
    )
    assert ours["names"].dtype.names == ("k5", "k1") and len(ours["names"]) == 25
    assert_same_as_scanpy(ours, ref)
    ours, ref = run_both(a, "km", method="t-test", groups=["k2"], reference="k0", n_genes=10)
    assert_same_as_scanpy(ours, ref)
    assert list(ours["pts"].columns) == ["k2", "k0"]
    ours, ref = run_both(a, "km", method="wilcoxon", groups=["k7", "k0", "k2"], reference="k0", tie_correct=True)
    assert_same_as_scanpy(ours, ref)
    assert ours["names"].dtype.names == ("k7", "k2")


@pytest.mark.parametrize("reference", ["rest", "k6"])
def test_float64_and_dense_input_equal_to_scanpy(mouse_km, reference):
    """float32 sparse data take the packed-key path; float64 sparse and dense data the others."""
    a = mouse_km[:1500].copy()
    a.X = a.X.astype(np.float64)
    ours, ref = run_both(a, "km", method="wilcoxon", tie_correct=True, reference=reference)
    assert_same_as_scanpy(ours, ref)
    a.X = a.X.toarray()
    ours, ref = run_both(a, "km", method="wilcoxon", tie_correct=True, reference=reference)
    assert_same_as_scanpy(ours, ref)


def test_tutorial_call(mouse_km):
    a = mouse_km.copy()
    a.obs["cell.type"] = a.obs["km"].map(lambda k: f"type {k}").astype("category")
    em.markers(
        a, groupby="cell.type", mask_var=None, groups="all", reference="rest", n_genes=None, rankby_abs=False,
        pts=True, key_added="markers", method="t-test", corr_method="benjamini-hochberg", tie_correct=False,
        gene_symbol="gene", layer="X",
    )
    res = a.uns["markers"]
    assert res["params"] == {
        "groupby": "cell.type", "reference": "rest", "method": "t-test", "use_raw": False, "layer": None,
        "corr_method": "benjamini-hochberg", "tie_correct": False, "gene_symbol": "gene",
    }
    assert set(res) == {"params", "names", "scores", "logfoldchanges", "pvals", "pvals_adj", "pts", "pts_rest"}
    out = em.filter_markers(a, n_genes=3, groupby="cell.type", max_logfoldchange=None, key="markers",
                            gene_symbols="gene", **TUTORIAL)
    assert len(out) > 0 and out.groupby("group", observed=True).size().max() <= 3
    assert (out["symbol"] == "sym-" + out["names"]).all()


def test_layer_X_means_X_and_log_base(mouse_km):
    a = mouse_km.copy()
    em.markers(a, "km", layer="X", key_added="m1", method="t-test")
    em.markers(a, "km", layer=None, key_added="m2", method="t-test")
    assert a.uns["m1"]["params"]["layer"] is None
    for f in ("names", "scores", "logfoldchanges"):
        assert np.array_equal(a.uns["m1"][f], a.uns["m2"][f])
    b = mouse_km.copy()
    b.uns["log1p"] = {"base": 2}
    ours, ref = run_both(b, "km", method="t-test")
    assert_same_as_scanpy(ours, ref)


def test_logreg_delegates_to_scanpy(pbmc_mod):
    a = pbmc_mod.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        em.markers(a, "bulk_labels", method="logreg", use_raw=True, key_added="ours")
        sc.tl.rank_genes_groups(a, "bulk_labels", method="logreg", use_raw=True, key_added="ref")
    for g in a.uns["ref"]["names"].dtype.names:
        assert list(a.uns["ours"]["names"][g]) == list(a.uns["ref"]["names"][g])
        np.testing.assert_allclose(a.uns["ours"]["scores"][g], a.uns["ref"]["scores"][g], atol=1e-6)
    assert "pts" in a.uns["ours"]


def test_scanpy_readers_and_h5ad(pbmc_mod, tmp_path):
    a = pbmc_mod.copy()
    a.var["gene"] = [g.lower() for g in a.var_names]
    em.markers(a, "bulk_labels", method="wilcoxon", use_raw=True, gene_symbol="gene")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sc.tl.rank_genes_groups(a, "bulk_labels", method="wilcoxon", use_raw=True, pts=True, key_added="ref")
    df = sc.get.rank_genes_groups_df(a, None, key="markers", gene_symbols="gene")
    df_ref = sc.get.rank_genes_groups_df(a, None, key="ref", gene_symbols="gene")
    pd.testing.assert_frame_equal(df, df_ref)
    assert a.uns["markers"]["params"]["gene_symbol"] == "gene"
    dp = sc.pl.rank_genes_groups_dotplot(a, key="markers", n_genes=2, show=False, return_fig=True)
    assert dp is not None
    path = tmp_path / "m.h5ad"
    a.write_h5ad(path)
    back = sc.read_h5ad(path)
    pd.testing.assert_frame_equal(
        sc.get.rank_genes_groups_df(back, None, key="markers"), sc.get.rank_genes_groups_df(a, None, key="markers")
    )
    f1 = em.filter_markers(back, n_genes=3, min_logfoldchange=1)
    f2 = em.filter_markers(a, n_genes=3, min_logfoldchange=1)
    pd.testing.assert_frame_equal(f1, f2)


def test_sparse_layouts_and_gene_chunks_agree(mouse_km):
    """CSR (sorted or not), CSC and chunked packed-key ranking give the same rank sums."""
    import scipy.sparse as sp

    from exprmat_widgets.tl import _wilcoxon as W

    a = mouse_km[:2000]
    x = sp.csr_matrix(a.X)
    codes = a.obs["km"].cat.codes.to_numpy().astype(np.int64)
    codes[::7] = -1  # some cells ranked but in no group
    codes[::11] = -2  # some cells left out
    base = W.rank_sums(x, codes, 8)
    unsorted = x.copy()
    for i in range(unsorted.shape[0]):  # reverse the column order inside each row
        lo, hi = unsorted.indptr[i], unsorted.indptr[i + 1]
        unsorted.indices[lo:hi] = unsorted.indices[lo:hi][::-1].copy()
        unsorted.data[lo:hi] = unsorted.data[lo:hi][::-1].copy()
    unsorted.has_sorted_indices = False
    for other in (unsorted, x.tocsc()):
        got = W.rank_sums(other, codes, 8)
        assert np.array_equal(got[0], base[0]) and np.array_equal(got[1], base[1])
    rs, ties, _ = W._packed(x, codes, 8, n_total=base[2], max_entries=1000)  # many gene chunks
    assert np.array_equal(rs.T, base[0]) and np.array_equal(ties, base[1])
    slow = W.rank_sums(x.astype(np.float64), codes, 8)  # per-gene argsort path
    assert np.array_equal(slow[0], base[0]) and np.array_equal(slow[1], base[1])
    ref_codes = np.where(codes >= 0, codes, -2)
    r1 = W.rank_sums_vs_reference(x, ref_codes, 8, 3)
    r2 = W.rank_sums_vs_reference(x.tocsc().astype(np.float64), ref_codes, 8, 3)
    r3 = W.rank_sums_vs_reference(x.toarray(), ref_codes, 8, 3)
    for r in (r2, r3):
        np.testing.assert_array_equal(np.delete(r[0], 3, 0), np.delete(r1[0], 3, 0))
        np.testing.assert_array_equal(np.delete(r[1], 3, 0), np.delete(r1[1], 3, 0))


def test_wilcoxon_does_not_depend_on_the_thread_count(mouse_km):
    """Bit-identical rank sums, group sums and markers at 1, 2 and 3 threads (gene stripes
    split differently), against the rest and a reference, with and without tie correction."""
    import scipy.sparse as sp

    from exprmat_widgets.tl import _wilcoxon as W

    a = mouse_km[:3000].copy()
    a.X = sp.csr_matrix(a.X, dtype=np.float32)
    codes = a.obs["km"].cat.codes.to_numpy().astype(np.int64)
    codes[::9] = -1
    old = em.settings.n_threads
    try:
        runs = {}
        for th in (1, 2, 3):
            em.settings.n_threads = th
            rest = W.rank_sums(a.X, codes, 8, with_stats=True)
            ref = W.rank_sums_vs_reference(a.X, codes, 8, 2, with_stats=True)
            rs_small, _, _ = W._packed(a.X, codes, 8, n_total=rest[2], max_entries=500, threads=th)
            b = a.copy()
            for kw in ({}, {"tie_correct": True}, {"reference": "k2"}):
                em.markers(b, "km", method="wilcoxon", key_added="m" + str(len(kw)) + str(kw.get("tie_correct", "")),
                           **kw)
            runs[th] = (rest, ref, rs_small, b)
        # the fused group sums are those of the separate pass, bit for bit
        for got, want in zip(runs[1][0][3], W.group_stats(a.X, codes, 8)):
            assert np.array_equal(got, want)
        assert np.array_equal(runs[1][2].T, runs[1][0][0])  # small batches: same sums
        for th in (2, 3):
            flat = [*runs[th][0][:2], *runs[th][0][3], *runs[th][1][:2], *runs[th][1][2]]
            flat1 = [*runs[1][0][:2], *runs[1][0][3], *runs[1][1][:2], *runs[1][1][2]]
            for i, (got, want) in enumerate(zip(flat, flat1)):
                assert np.array_equal(got, want), (th, i)
            for key in runs[1][3].uns:
                if not key.startswith("m"):
                    continue
                for f in ("scores", "pvals", "logfoldchanges", "names"):
                    x1, x2 = runs[1][3].uns[key][f], runs[th][3].uns[key][f]
                    for g in x1.dtype.names:
                        assert np.array_equal(np.asarray(x1[g]), np.asarray(x2[g])), (th, key, f, g)
    finally:
        em.settings.n_threads = old


def test_wilcoxon_temporaries_stay_few_at_many_groups():
    """At 80 groups x 15,792 genes the groups x genes tables dominate the memory: traced
    peak of a Wilcoxon call (result included) within 10 such tables (16 before the result
    tables were filled group by group and the p-values, corrections and fold changes were
    made in place), and the result equals the reference computation."""
    import tracemalloc

    import anndata
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    n, n_genes, k = 3000, 15792, 80
    x = sp.random(n, n_genes, density=0.05, format="csr", random_state=rng, dtype=np.float32)
    x.data = np.log1p(x.data * 10).astype(np.float32)
    a = anndata.AnnData(x)
    a.obs["g"] = pd.Categorical([f"c{i}" for i in rng.integers(0, k, n)])
    em.markers(a, "g", method="wilcoxon", key_added="m")
    table = k * n_genes * 8
    tracemalloc.start()
    try:
        em.markers(a, "g", method="wilcoxon", key_added="m")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 * table, peak / table
    small = anndata.AnnData(x[:, :2000].copy(), obs=a.obs[["g"]].copy())
    assert_same_as_scanpy(*run_both(small, "g", method="wilcoxon"))


def test_n_threads_setting_is_checked():
    old = em.settings.n_threads
    with pytest.raises(em.ExprmatError, match="n_threads must be an integer >= 1 or None"):
        em.settings.n_threads = 0
    assert em.settings.n_threads == old


# --------------------------------------------------------------------------- filter_markers


TUTORIAL = {"min_logfoldchange": 1, "max_p_adjust": 0.05, "min_pct": 0.25, "max_pct_reference": 0.75}


def test_filter_markers_tutorial_thresholds(pbmc_mod):
    a = pbmc_mod.copy()
    a.var["gene"] = [g.lower() for g in a.var_names]
    em.markers(a, "bulk_labels", method="t-test", use_raw=True, gene_symbol="gene")
    out = em.filter_markers(a, groupby="bulk_labels", n_genes=3, gene_symbols="gene", **TUTORIAL)
    assert list(out.columns) == [
        "group", "names", "scores", "logfoldchanges", "pvals", "pvals_adj", "pct_nz_group", "pct_nz_reference",
        "symbol",
    ]
    assert (out["logfoldchanges"] > 1).all() and (out["pvals_adj"] < 0.05).all()
    assert (out["pct_nz_group"] > 0.25).all() and (out["pct_nz_reference"] < 0.75).all()
    assert (out["symbol"] == out["names"].str.lower()).all()
    # the same as filtering scanpy's own table by hand
    full = sc.get.rank_genes_groups_df(a, None, key="markers")
    exp = full[
        (full.logfoldchanges > 1) & (full.pvals_adj < 0.05) & (full.pct_nz_group > 0.25)
        & (full.pct_nz_reference < 0.75)
    ]
    exp = exp.groupby("group", observed=True, sort=False).head(3)
    assert list(zip(out.group.astype(str), out.names)) == list(zip(exp.group.astype(str), exp.names))
    # order: groups as in the result, scores decreasing within a group, at most 3 each
    groups = list(a.uns["markers"]["names"].dtype.names)
    codes = out["group"].cat.codes.to_numpy()
    assert (np.diff(codes) >= 0).all() and list(out["group"].cat.categories) == groups
    for _, d in out.groupby("group", observed=True):
        assert len(d) <= 3 and (np.diff(d["scores"].to_numpy()) <= 0).all()
    # the recorded gene_symbol is the default, the bounds are strict
    assert "symbol" in em.filter_markers(a, n_genes=1).columns
    none = em.filter_markers(a, min_pct=1.0)
    assert len(none) == 0
    top = em.filter_markers(a, max_logfoldchange=0)
    assert (top["logfoldchanges"] < 0).all() and len(top) > 0
    with pytest.raises(em.ExprmatError, match="not 'louvain'"):
        em.filter_markers(a, groupby="louvain")
    with pytest.raises(em.MissingKeyError, match="run em.markers"):
        em.filter_markers(a, key="nothing")


def test_filter_markers_named_reference(pbmc_mod):
    a = pbmc_mod.copy()
    em.markers(a, "bulk_labels", method="wilcoxon", use_raw=True, reference=REF_PBMC, groups=["Dendritic"])
    out = em.filter_markers(a, n_genes=5)
    pts = a.uns["markers"]["pts"]
    assert set(out["group"]) == {"Dendritic"}
    np.testing.assert_allclose(out["pct_nz_reference"], pts.loc[out["names"], REF_PBMC].to_numpy())


def test_filter_markers_on_a_logreg_result_keeps_the_scores(pbmc_mod):
    """scanpy's logreg result has scores only: the fold-change, p-value and pct filters
    cannot apply and are not applied (they dropped every gene); the filters a result has
    values for still apply."""
    a = pbmc_mod.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sc.tl.rank_genes_groups(a, "bulk_labels", method="logreg", use_raw=True)
        em.markers(a, "bulk_labels", method="logreg", use_raw=True, pts=True, key_added="ours")
    assert em.unavailable_filters(a, "rank_genes_groups") == [
        "min_logfoldchange", "max_logfoldchange", "max_p_adjust", "min_pct", "max_pct_reference"]
    out = em.filter_markers(a, key="rank_genes_groups", n_genes=3, **TUTORIAL)
    groups = list(a.uns["rank_genes_groups"]["names"].dtype.names)
    assert len(out) == 3 * len(groups)
    for g in groups:
        assert list(out.loc[out["group"] == g, "names"]) == list(a.uns["rank_genes_groups"]["names"][g][:3])
    assert out["logfoldchanges"].isna().all()
    # with pts the fraction filters still apply; fold change and p-value do not
    assert em.unavailable_filters(a, "ours") == ["min_logfoldchange", "max_logfoldchange", "max_p_adjust"]
    ours = em.filter_markers(a, key="ours", min_pct=0.5, **{k: v for k, v in TUTORIAL.items() if k != "min_pct"})
    assert len(ours) > 0 and (ours["pct_nz_group"] > 0.5).all()
    # a t-test result has every value: nothing is skipped
    em.markers(a, "bulk_labels", method="t-test", use_raw=True, key_added="tt")
    assert em.unavailable_filters(a, "tt") == []


# --------------------------------------------------------------------------- selection


def test_selection_markers_equal_group_vs_rest(mouse_km):
    a = mouse_km.copy()
    cells = a.obs_names[a.obs["km"] == "k2"]
    em.selection_markers(a, cells=list(cells), method="wilcoxon", tie_correct=True, gene_symbol="gene")
    em.markers(a, "km", groups=["k2"], method="wilcoxon", tie_correct=True, key_added="grp")
    sel, grp = a.uns["markers.selection"], a.uns["grp"]
    assert sel["names"].dtype.names == ("selection",)
    for f in ("names",) + FIELDS:
        assert np.array_equal(np.asarray(sel[f]["selection"]), np.asarray(grp[f]["k2"]))
    assert np.array_equal(sel["pts"]["selection"].to_numpy(), grp["pts"]["k2"].to_numpy())
    assert np.array_equal(sel["pts_rest"]["selection"].to_numpy(), grp["pts_rest"]["k2"].to_numpy())
    assert sel["selection"].sum() == len(cells)
    rec = em.history(a)["params"].iloc[-2]
    assert rec["cells"]["n_selected"] == len(cells)
    out = em.filter_markers(a, key="markers.selection", n_genes=4)
    assert list(out["symbol"]) == [f"sym-{g}" for g in out["names"]]


def test_selection_markers_polygon(pbmc_mod):
    a = pbmc_mod.copy()
    um = a.obsm["X_umap"]
    box = [[um[:, 0].min() - 1, um[:, 1].min() - 1], [np.median(um[:, 0]), um[:, 1].min() - 1],
           [np.median(um[:, 0]), um[:, 1].max() + 1], [um[:, 0].min() - 1, um[:, 1].max() + 1]]
    em.selection_markers(a, polygon=box, basis="umap", method="t-test", use_raw=True, key_added="poly")
    inside = um[:, 0] < np.median(um[:, 0])
    em.selection_markers(a, cells=inside, method="t-test", use_raw=True, key_added="mask")
    assert np.array_equal(a.uns["poly"]["selection"], inside)
    for f in ("names",) + FIELDS:
        assert np.array_equal(a.uns["poly"][f], a.uns["mask"][f])


# --------------------------------------------------------------------------- bad input


def _state(a):
    return (list(a.uns.get("commands", [])), dict(a.uns), a.obs.copy(), a.X)


def test_bad_input_changes_nothing(pbmc_mod):
    a = pbmc_mod.copy()
    a.obs["one"] = pd.Categorical(["lonely"] + ["crowd"] * (a.n_obs - 1))
    em.markers(a, "bulk_labels", use_raw=True)
    cmds, uns, obs, x = _state(a)
    first = a.uns["markers"]
    bad = [
        ({"groupby": "nope"}, em.MissingKeyError, "obs column 'nope' not found"),
        ({"groupby": "bulk_labels", "groups": ["Martians"]}, em.MissingKeyError, "not a category"),
        ({"groupby": "bulk_labels", "reference": "Martians"}, em.MissingKeyError, "reference 'Martians'"),
        ({"groupby": "bulk_labels", "method": "magic"}, em.ExprmatError, "method must be one of"),
        ({"groupby": "bulk_labels", "corr_method": "none"}, em.ExprmatError, "corr_method must be one of"),
        ({"groupby": "bulk_labels", "layer": "lognorm"}, em.MissingKeyError, "layer 'lognorm' not found"),
        ({"groupby": "bulk_labels", "gene_symbol": "gene"}, em.MissingKeyError, "gene_symbol column 'gene'"),
        ({"groupby": "one"}, em.ExprmatError, "fewer than 2 cells"),
        ({"groupby": "n_counts"}, em.ExprmatError, "numeric"),
        ({"groupby": "bulk_labels", "n_genes": 0}, em.ExprmatError, "n_genes"),
        ({"groupby": "bulk_labels", "use_raw": True, "layer": "X2"}, em.MissingKeyError, "layer 'X2'"),
    ]
    for kw, err, msg in bad:
        with pytest.raises(err, match=msg):
            em.markers(a, key_added="markers", **{"use_raw": True, **kw})
    with pytest.raises(em.ExprmatError, match="at least 2 cells"):
        em.selection_markers(a, cells=[a.obs_names[0]])
    with pytest.raises(em.ExprmatError, match="cells=<selection> or polygon"):
        em.selection_markers(a)
    with pytest.raises(em.ExprmatError, match="finite"):
        em.selection_markers(a, polygon=[[0, 0], [1, np.nan], [1, 1]], basis="umap")
    with pytest.raises(em.MissingKeyError, match="embedding 'tsne' not found"):
        em.selection_markers(a, polygon=[[0, 0], [1, 0], [1, 1]], basis="tsne")
    X = a.X.copy()
    X[0, 0] = np.nan
    a.X = X
    with pytest.raises(em.ExprmatError, match="NaN"):
        em.markers(a, "bulk_labels", key_added="markers")
    a.X = x
    assert list(a.uns["commands"]) == cmds
    assert a.uns["markers"] is first and set(a.uns.keys()) == set(uns.keys())
    pd.testing.assert_frame_equal(a.obs, obs)


def test_finite_check_by_sum():
    """The one-sum check finds NaN and infinities, and does not mistake an overflowing
    float64 sum of finite values for them."""
    from exprmat_widgets.tl.marker_genes import _all_finite

    for dtype in (np.float32, np.float64):
        ok = np.linspace(-3, 3, 1000).astype(dtype)
        assert _all_finite(ok)
        for bad in (np.nan, np.inf, -np.inf):
            x = ok.copy()
            x[517] = bad
            assert not _all_finite(x), (dtype, bad)
        x = ok.copy()
        x[[3, 9]] = [np.inf, -np.inf]  # their sum is NaN, still caught
        assert not _all_finite(x)
    assert _all_finite(np.full(4, 1e308))  # the sum overflows, the values are finite
    assert not _all_finite(np.array([1e308, 1e308, np.inf]))


def test_group_with_one_cell_can_be_left_out(pbmc_mod):
    a = pbmc_mod.copy()
    labels = a.obs["bulk_labels"].astype(str).to_numpy().copy()
    labels[0] = "lonely"
    a.obs["lab"] = pd.Categorical(labels)
    groups = [g for g in a.obs["lab"].cat.categories if g != "lonely"]
    ours, ref = run_both(a, "lab", groups=groups, method="wilcoxon", use_raw=True)
    assert_same_as_scanpy(ours, ref)


# --------------------------------------------------------------------------- replay


def test_record_replays_exactly(mouse_km, tmp_path):
    start = mouse_km.copy()
    a = start.copy()
    em.markers(a, "km", method="wilcoxon", tie_correct=True, gene_symbol="gene", n_genes=50)
    em.markers(a, "km", method="t-test", reference="k1", key_added="tt")
    em.selection_markers(a, cells=a.obs["km"].isin(["k0", "k4"]).to_numpy(), method="t-test_overestim_var")
    rec = json.loads(a.uns["commands"][0])
    assert rec["params"]["gene_symbol"] == "gene" and rec["params"]["method"] == "wilcoxon"
    path = tmp_path / "a.h5ad"
    a.write_h5ad(path)
    back = sc.read_h5ad(path)
    out = em.replay(start, back)  # checks every step's output fingerprint
    for key in ("markers", "tt", "markers.selection"):
        for f in ("names",) + FIELDS:
            assert np.array_equal(out.uns[key][f], a.uns[key][f]), (key, f)
        pd.testing.assert_frame_equal(out.uns[key]["pts"], a.uns[key]["pts"])
    script = em.history_to_script(a)
    assert "em.markers(adata, groupby='km'" in script and "em.selection_markers(adata" in script


def test_wilcoxon_on_a_csr_wrongly_flagged_sorted_equals_the_sorted_one():
    """Real files often store unsorted rows; a CSR flagged as sorted although it is not must
    give the sorted matrix's result (the striped kernel would write out of bounds)."""
    import anndata as ad
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    dense = rng.poisson(0.4, size=(300, 60)).astype(np.float32)
    good = sp.csr_matrix(dense)
    order = np.concatenate([rng.permutation(np.arange(a, b)) for a, b in zip(good.indptr[:-1], good.indptr[1:])])
    bad = sp.csr_matrix((good.data[order], good.indices[order], good.indptr.copy()), shape=good.shape)
    assert not bad.has_sorted_indices
    bad.has_sorted_indices = True  # the lie
    groups = pd.Categorical(rng.integers(0, 4, 300).astype(str))
    results = []
    for x in (good, bad):
        a = ad.AnnData(X=x, obs=pd.DataFrame({"g": groups}, index=[f"c{i}" for i in range(300)]))
        em.markers(a, groupby="g", method="wilcoxon", key_added="m")
        results.append(a.uns["m"])
    for f in ("names", "scores", "pvals"):
        for g in results[0][f].dtype.names:
            assert np.array_equal(results[0][f][g], results[1][f][g])
