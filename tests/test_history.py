"""The command history: records, h5ad round trip, replay, undo, atomic failure."""

import json

import numpy as np
import pandas as pd
import pytest
import scanpy as sc

import exprmat_widgets as em
from exprmat_widgets.history import fingerprint, restore, snapshot


def test_records_have_fingerprints_and_survive_h5ad(pbmc_graph, tmp_path):
    h = em.history(pbmc_graph)
    assert list(h["command"]) == ["knn", "umap", "leiden"]
    rec = h.iloc[2]
    assert rec["params"]["resolution"] == 1.0 and rec["params"]["flavor"] == "igraph"
    assert rec["input"]["n_obs"] == 700
    assert rec["output"]["obs:leiden"] == fingerprint(pbmc_graph.obs["leiden"])
    path = tmp_path / "a.h5ad"
    pbmc_graph.write_h5ad(path)
    back = sc.read_h5ad(path)
    h2 = em.history(back)
    assert list(h2["record"]) == list(h["record"])


def test_leiden_matches_scanpy_igraph(pbmc_graph):
    ref = pbmc_graph.copy()
    sc.tl.leiden(ref, resolution=1.0, random_state=0, flavor="igraph", n_iterations=2, key_added="ref")
    assert (ref.obs["ref"].astype(str) == pbmc_graph.obs["leiden"].astype(str)).all()
    assert len(pbmc_graph.uns["leiden_colors"]) == pbmc_graph.obs["leiden"].cat.categories.size


def test_replay_reproduces_and_detects_mismatch(pbmc):
    start = pbmc.copy()
    em.knn(pbmc, use_rep="X_pca", n_neighbors=10, random_state=0)
    em.umap(pbmc, random_state=1, min_dist=0.4, spread=0.9)
    em.leiden(pbmc, resolution=0.5, random_state=42)
    out = em.replay(start, pbmc)
    assert np.array_equal(out.obsm["X_umap"], pbmc.obsm["X_umap"])
    assert (out.obs["leiden"] == pbmc.obs["leiden"]).all()
    assert "leiden" not in start.obs  # start left unchanged
    # tamper with the recorded resolution: replay must stop at that step, naming it
    recs = [json.loads(r) for r in pbmc.uns["commands"]]
    recs[2]["params"]["resolution"] = 1.5
    with pytest.raises(em.ReplayError, match="step 2 \\(leiden\\)"):
        em.replay(start, recs)


def test_replay_refuses_unknown_command_and_params(pbmc):
    from exprmat_widgets.history import input_fingerprint

    inp = input_fingerprint(pbmc)
    base = {"input": inp, "output": {}, "version": "0.1.0"}
    bad = [{"command": "os.system", "params": {"cmd": "rm -rf /"}, **base}]
    with pytest.raises(em.ReplayError, match="unknown command"):
        em.replay(pbmc, bad)
    bad = [{"command": "leiden", "params": {"evil": 1}, **base}]
    with pytest.raises(em.ReplayError, match="unknown parameter"):
        em.replay(pbmc, bad)
    newer = [{"format": 3,
              "command": "leiden", "params": {}, **base}]
    with pytest.raises(em.ReplayError, match="history format 3"):
        em.replay(pbmc, newer)


def test_failed_command_changes_nothing(pbmc_graph):
    before = em.history(pbmc_graph)["record"].tolist()
    obs_before = pbmc_graph.obs.copy()
    with pytest.raises(em.ExprmatError, match="resolution"):
        em.leiden(pbmc_graph, resolution="high")
    with pytest.raises(em.MissingKeyError, match="not a category"):
        em.leiden(pbmc_graph, restrict_to=("leiden", ["999"]))
    with pytest.raises(em.MissingKeyError, match="embedding 'harmony' not found"):
        em.knn(pbmc_graph, use_rep="harmony")
    assert em.history(pbmc_graph)["record"].tolist() == before
    pd.testing.assert_frame_equal(pbmc_graph.obs, obs_before)


def test_nan_embedding_is_refused(pbmc):
    pbmc.obsm["X_pca"] = pbmc.obsm["X_pca"].copy()
    pbmc.obsm["X_pca"][3, 0] = np.nan
    graph = pbmc.obsp["connectivities"]
    with pytest.raises(em.ExprmatError, match="NaN"):
        em.knn(pbmc, use_rep="X_pca")
    assert pbmc.obsp["connectivities"] is graph and "commands" not in pbmc.uns


def test_snapshot_restore_is_exact_after_failure_mid_write(pbmc_graph):
    snap = snapshot(pbmc_graph)
    pbmc_graph.obs["new"] = 1.0
    pbmc_graph.obs["leiden"] = pbmc_graph.obs["leiden"].cat.rename_categories(lambda c: f"c{c}")
    pbmc_graph.obsm["X_new"] = np.zeros((700, 2))
    pbmc_graph.uns["x"] = 1
    pbmc_graph._inplace_subset_obs(np.arange(100))
    restore(pbmc_graph, snap)
    assert pbmc_graph.n_obs == 700 and "new" not in pbmc_graph.obs and "X_new" not in pbmc_graph.obsm
    assert "x" not in pbmc_graph.uns and pbmc_graph.obs["leiden"].cat.categories[0] == "0"
    assert pbmc_graph.obsm["X_umap"].shape == (700, 2) and pbmc_graph.X.shape[0] == 700


def test_undo_in_memory_and_from_start(pbmc, tmp_path):
    start = pbmc.copy()
    em.knn(pbmc, use_rep="X_pca", random_state=0)
    em.leiden(pbmc, resolution=1.0, key_added="a")
    labels_a = pbmc.obs["a"].copy()
    em.leiden(pbmc, resolution=0.3, key_added="a")
    em.undo(pbmc)
    assert (pbmc.obs["a"] == labels_a).all() and len(em.history(pbmc)) == 2
    em.undo(pbmc)
    assert "a" not in pbmc.obs and len(em.history(pbmc)) == 1
    # after a disk round trip there is no checkpoint: undo replays from the start
    em.leiden(pbmc, resolution=1.0, key_added="a")
    em.leiden(pbmc, resolution=0.3, key_added="b")
    pbmc.write_h5ad(tmp_path / "x.h5ad")
    back = sc.read_h5ad(tmp_path / "x.h5ad")
    with pytest.raises(em.ExprmatError, match="start"):
        em.undo(back)
    em.undo(back, start=start)
    assert "b" not in back.obs and (back.obs["a"] == labels_a).all()
    assert list(em.history(back)["command"]) == ["knn", "leiden"]


def test_history_to_script_runs(pbmc, tmp_path):
    start_path = tmp_path / "start.h5ad"
    pbmc.write_h5ad(start_path)
    em.knn(pbmc, use_rep="X_pca", random_state=0)
    em.leiden(pbmc, resolution=0.7, restrict_to=None)
    script = em.history_to_script(pbmc, start_path="missing.h5ad", out_path="missing_out.h5ad")
    assert "# step 1: leiden" in script and "resolution=0.7," in script
    (tmp_path / "replay.py").write_text(script)
    import subprocess
    import sys

    # run as a reviewer would: the start and output files given on the command line
    done = subprocess.run([sys.executable, str(tmp_path / "replay.py"), str(start_path), str(tmp_path / "o.h5ad")],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "2 step(s)" in done.stdout
    out = sc.read_h5ad(tmp_path / "o.h5ad")
    assert (out.obs["leiden"] == pbmc.obs["leiden"]).all()


def test_leiden_restrict_to_rewrites_the_key(pbmc_graph):
    """Sub-clustering with the default key writes obs['leiden'] itself (scanpy would add 'leiden_R')."""
    before = pbmc_graph.obs["leiden"].copy()
    em.leiden(pbmc_graph, resolution=1.0, restrict_to=("leiden", ["0"]), random_state=0)
    after = pbmc_graph.obs["leiden"]
    assert "leiden_R" not in pbmc_graph.obs
    assert any(str(c).startswith("0,") for c in after.cat.categories)
    kept = (before != "0").to_numpy()
    assert (after[kept].astype(str) == before[kept].astype(str)).all()
    assert len(pbmc_graph.uns["leiden_colors"]) == len(after.cat.categories)


def test_sparse_fingerprint_ignores_storage_details():
    import scipy.sparse as sp

    m = sp.random(50, 40, density=0.2, format="csr", random_state=0, dtype=np.float32)
    shuffled = m.copy()
    for i in range(m.shape[0]):  # reverse the column order inside each row
        a, b = m.indptr[i], m.indptr[i + 1]
        shuffled.indices[a:b] = m.indices[a:b][::-1]
        shuffled.data[a:b] = m.data[a:b][::-1]
    shuffled.has_sorted_indices = False
    wide = sp.csr_array((m.data, m.indices.astype(np.int64), m.indptr.astype(np.int64)), shape=m.shape)
    assert fingerprint(m) == fingerprint(shuffled) == fingerprint(wide)
    other = m.copy()
    other.data[0] += 1
    assert fingerprint(other) != fingerprint(m)
