"""A mixed session of recorded commands on 5,000 real cells (kNN through pynndescent),
saved to .h5ad, replayed from the starting data in a fresh Python process, and compared
exactly; undo compared with a replay of the shorter history."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import exprmat_widgets as em

REPO = Path(__file__).resolve().parents[1]
UNDO_K = 4


def assert_same(a, b, where="value"):
    """Exact, recursive comparison of AnnData contents (arrays, frames, dicts)."""
    if isinstance(a, dict) or hasattr(a, "keys") and not isinstance(a, (pd.DataFrame, pd.Series)):
        assert set(a.keys()) == set(b.keys()), f"{where}: keys {sorted(a.keys())} != {sorted(b.keys())}"
        for k in a:
            assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b, check_exact=True, obj=where)
    elif isinstance(a, pd.Series):
        pd.testing.assert_series_equal(a, b, check_exact=True, obj=where)
    elif sp.issparse(a):
        assert sp.issparse(b) and a.shape == b.shape and a.dtype == b.dtype, where
        assert (a != b).nnz == 0, where
    elif isinstance(a, np.ndarray) and a.dtype.names:
        assert a.dtype == b.dtype and a.shape == b.shape, where
        for f in a.dtype.names:
            assert_same(np.asarray(a[f]), np.asarray(b[f]), f"{where}.{f}")
    elif isinstance(a, np.ndarray):
        b = np.asarray(b)
        assert a.shape == b.shape and a.dtype == b.dtype, f"{where}: {a.shape}/{a.dtype} vs {b.shape}/{b.dtype}"
        if a.dtype.kind == "f":
            assert np.array_equal(a, b, equal_nan=True), where
        else:
            assert np.array_equal(a, b), where
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b), where
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def assert_same_data(x, y, skip_uns=("commands",)):
    assert list(x.obs_names) == list(y.obs_names)
    assert list(x.obs.columns) == list(y.obs.columns)
    for k in x.obs.columns:
        assert_same(x.obs[k], y.obs[k], f"obs[{k!r}]")
    for slot in ("obsm", "obsp", "layers"):
        assert_same(dict(getattr(x, slot)), dict(getattr(y, slot)), slot)
    assert_same({k: v for k, v in x.uns.items() if k not in skip_uns},
                {k: v for k, v in y.uns.items() if k not in skip_uns}, "uns")


def run_session(adata):
    """>= 15 mixed commands; returns the number of commands run."""
    em.knn(adata, use_rep="X_pca", n_neighbors=15, random_state=0)
    em.umap(adata, random_state=0, maxiter=40, min_dist=0.4, spread=0.9)
    em.leiden(adata, resolution=1.0, random_state=0)
    cats = list(adata.obs["leiden"].cat.categories)
    assert len(cats) >= 6
    em.subcluster(adata, adata.obs["leiden"].isin([cats[0]]).to_numpy(), resolution=0.4, random_state=1)
    em.merge_clusters(adata, "leiden", [cats[1], cats[2]])
    em.rename_cluster(adata, "leiden", cats[1], "merged")
    xy = adata.obsm["X_umap"]
    c = np.median(xy, axis=0)
    poly = [[c[0] - 1.5, c[1] - 1.5], [c[0] + 1.5, c[1] - 1.5], [c[0] + 1.5, c[1] + 1.5], [c[0] - 1.5, c[1] + 1.5]]
    em.label_cells(adata, "leiden", None, "lasso", polygon=poly, basis="umap")
    em.label_cells(adata, "manual", list(adata.obs_names[::50]), "picked")
    sizes = adata.obs["leiden"].value_counts()
    em.exclude(adata, annotation="leiden", remove=[sizes.index[-1]])
    em.exclude_cells(adata, adata.obs_names[::97])
    labels = [str(x) for x in adata.obs["leiden"].cat.categories]
    em.annotate(adata, annotation="cell.type", cluster="leiden",
                mapping={"A": labels[: len(labels) // 3], "B": labels[len(labels) // 3: -1]})
    em.markers(adata, groupby="cell.type", method="t-test", key_added="markers")
    n = 12
    em.knn(adata, use_rep="X_pca", n_neighbors=10, random_state=1)
    em.leiden(adata, resolution=0.3, random_state=2, key_added="leiden2")
    em.subset_cells(adata, keys=["cell.type"], values=[["A", "B"]])
    em.markers(adata, groupby="leiden2", method="wilcoxon", key_added="markers2", n_genes=50)
    n += 4
    em.merge_clusters(adata, "leiden2", [str(x) for x in adata.obs["leiden2"].cat.categories[:2]], new_name="L")
    em.label_cells(adata, "cell.type", adata.obs_names[:200], "first200")
    n += 2
    return n


REPLAY_SCRIPT = textwrap.dedent(
    """
    import sys
    import anndata as ad
    import exprmat_widgets as em

    start_path, session_path, out_path, prefix_path, n_prefix = sys.argv[1:6]
    n_prefix = int(n_prefix)
    start = ad.read_h5ad(start_path)
    session = ad.read_h5ad(session_path)
    adata = start.copy()

    def on_step(step, record, ok):
        if not ok:
            raise SystemExit(f"step {step} did not reproduce")
        if step == n_prefix - 1:  # the state a replay of the first n_prefix commands ends in
            adata.write_h5ad(prefix_path)

    em.replay(adata, session, copy=False, on_step=on_step)
    adata.write_h5ad(out_path)
    print("replayed", len(em.history(adata)))
    """
)


@pytest.fixture(scope="module")
def session(mouse10k, tmp_path_factory):
    d = tmp_path_factory.mktemp("session")
    start = mouse10k[::2].copy()  # 5,000 real cells
    assert start.n_obs > 4096  # kNN goes through pynndescent
    start.write_h5ad(d / "start.h5ad")
    adata = start.copy()
    n = run_session(adata)
    adata.write_h5ad(d / "session.h5ad")
    script = d / "replay.py"
    script.write_text(REPLAY_SCRIPT)
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(
        [sys.executable, str(script), str(d / "start.h5ad"), str(d / "session.h5ad"),
         str(d / "replayed.h5ad"), str(d / "prefix.h5ad"), str(n - UNDO_K)],
        check=False, capture_output=True, text=True, timeout=900, env=env, cwd=d,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return {"dir": d, "adata": adata, "n": n, "start": start, "stdout": proc.stdout}


def test_session_is_long_and_mixed(session):
    h = em.history(session["adata"])
    assert len(h) == session["n"] >= 15
    assert {"knn", "umap", "leiden", "subcluster", "exclude", "exclude_cells", "merge_clusters",
            "rename_cluster", "label_cells", "annotate", "subset_cells"} <= set(h["command"])
    assert (h["command"] == "markers").sum() == 2
    sel = h[h["command"] == "label_cells"].iloc[0]["params"]
    assert sel["polygon"] and sel["basis"] == "umap" and sel["cells"] is None
    assert f"replayed {session['n']}" in session["stdout"]


def test_fresh_process_replay_is_exact(session):
    d = session["dir"]
    saved = ad.read_h5ad(d / "session.h5ad")
    replayed = ad.read_h5ad(d / "replayed.h5ad")
    assert replayed.n_obs < session["start"].n_obs
    assert_same_data(saved, replayed)
    # outputs recorded by the fresh process equal the session's fingerprints step by step
    a = [json.loads(r)["output"] for r in saved.uns["commands"]]
    b = [json.loads(r)["output"] for r in replayed.uns["commands"]]
    assert a == b
    # and the in-memory session equals what it wrote
    for k in ("leiden", "leiden2", "cell.type", "manual"):
        assert session["adata"].obs[k].equals(replayed.obs[k])
    assert np.array_equal(session["adata"].obsm["X_umap"], replayed.obsm["X_umap"])
    for key in ("markers", "markers2"):
        assert_same(dict(saved.uns[key]), dict(replayed.uns[key]), key)
        assert_same(dict(session["adata"].uns[key]), dict(replayed.uns[key]), key)
    table = em.filter_markers(replayed, key="markers", n_genes=10)
    assert len(table) > 0
    pd.testing.assert_frame_equal(em.filter_markers(saved, key="markers", n_genes=10), table, check_exact=True)


def test_undo_equals_replay_of_the_shorter_history(session):
    adata = session["adata"]
    n = session["n"]
    undone = [em.undo(adata)["command"] for _ in range(UNDO_K)]
    assert len(undone) == UNDO_K and len(em.history(adata)) == n - UNDO_K
    prefix = ad.read_h5ad(session["dir"] / "prefix.h5ad")
    # compare through the same h5ad round trip
    path = session["dir"] / "undone.h5ad"
    adata.write_h5ad(path)
    undone_back = ad.read_h5ad(path)
    assert_same_data(undone_back, prefix)
    assert [json.loads(r)["output"] for r in undone_back.uns["commands"]] == [
        json.loads(r)["output"] for r in prefix.uns["commands"]
    ]
