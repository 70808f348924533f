"""SC3 consensus clustering: accuracy against the reference ``sc3s`` on real labels,
outputs, determinism and replay, internals, bad input."""

import contextlib
import io
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import scanpy as sc
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import pdist, squareform
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score
from threadpoolctl import threadpool_limits

import exprmat_widgets as em
from exprmat_widgets.tl import sc3_clustering as sc3mod
from exprmat_widgets.tl._kmeans import weighted_kmeans

SEEDS = range(10)


@pytest.fixture
def counts():
    """em.datasets.pbmc68k_counts(): 700 PBMC, X_pca, 10 cell types in obs['bulk_labels']."""
    return em.datasets.pbmc68k_counts()


def _mean_ari(base, ks, seeds, run):
    labels = base.obs["bulk_labels"]
    out = []
    for s in seeds:
        a = base.copy()
        with threadpool_limits(limits=1):  # same threads for both (sc3s crawls when oversubscribed)
            col = run(a, ks, s)
        out.append(adjusted_rand_score(labels, a.obs[col]))
    return float(np.mean(out)), out


def _ours(a, ks, s):
    with contextlib.redirect_stdout(io.StringIO()):
        em.sc3(a, basis="pca", n_clusters=ks, random_state=s)
    return "sc3.10"


def _reference(a, ks, s):
    import sc3s

    with sc3mod.quiet_sc3s():
        sc3s.tl.consensus(a, n_clusters=ks, random_state=s)
    return "sc3s_10"


@pytest.mark.reference
@pytest.mark.parametrize("ks", [[10], [5, 10, 20, 30]])
def test_accuracy_at_true_k_matches_or_beats_sc3s(counts, ks):
    """At the true number of cell types (10), the mean ARI over 10 seeds against the
    cell-type labels is at least that of sc3s on the same PCA and seeds."""
    ours, ours_all = _mean_ari(counts, ks, SEEDS, _ours)
    ref, ref_all = _mean_ari(counts, ks, SEEDS, _reference)
    print(f"n_clusters={ks}: ARI at k=10, mean of {len(SEEDS)} seeds: ours {ours:.3f} "
          f"(min {min(ours_all):.3f}), sc3s {ref:.3f} (min {min(ref_all):.3f})")
    assert ours >= ref, (ours_all, ref_all)
    assert ours >= 0.45
    # and more stable from seed to seed
    assert np.std(ours_all) <= np.std(ref_all)


def test_tutorial_call(pbmc, capsys):
    pbmc.obsm["harmony"] = pbmc.obsm["X_pca"][:, :35].astype(np.float32)
    em.sc3(
        pbmc, basis="harmony", key_added="sc3", n_clusters=[5, 10, 20, 30], d_range=None,
        n_runs=5, n_facility=None, multiplier_facility=None, batch_size=None, random_state=42,
    )
    out = capsys.readouterr().err
    assert "[i] multiplier_facility not set, using default value of 3" in out
    assert "[i] number of facilities calculated as 90" in out
    for k in (5, 10, 20, 30):
        col = pbmc.obs[f"sc3.{k}"]
        assert isinstance(col.dtype, pd.CategoricalDtype)
        assert list(col.cat.categories) == [str(i) for i in range(k)]
        sizes = col.value_counts(sort=False).to_numpy()
        assert (np.diff(sizes) <= 0).all()  # '0' is the largest cluster
        assert sizes.min() >= 5  # no clusters of a few unstable cells
        colors = pbmc.uns[f"sc3.{k}_colors"]
        assert len(colors) == k and len(set(colors)) == k
    # coarser clusterings roughly nest in finer ones (consensus of the same facilities)
    ct = pd.crosstab(pbmc.obs["sc3.10"], pbmc.obs["sc3.5"])
    assert (ct.max(axis=1) / ct.sum(axis=1)).mean() > 0.9
    p = pbmc.uns["sc3"]
    assert p["n_facility"] == 90 and p["d_range"] == [25] and p["params"]["basis"] == "harmony"
    rec = em.history(pbmc).iloc[-1]
    assert rec["command"] == "sc3" and rec["params"]["n_clusters"] == [5, 10, 20, 30]
    assert set(rec["output"]) == {"uns:sc3"} | {f"obs:sc3.{k}" for k in (5, 10, 20, 30)} | {
        f"uns:sc3.{k}_colors" for k in (5, 10, 20, 30)
    }


def _sse(x, labels):
    labels = np.asarray(labels)
    return sum(((x[labels == c] - x[labels == c].mean(0)) ** 2).sum() for c in np.unique(labels))


def test_compact_clusters_on_more_than_4096_cells(mouse10k):
    """On 10,000 real cells the consensus clusters are nearly as compact as k-means'
    own optimum on the same PCs (within-cluster sum of squares within 20%)."""
    a = mouse10k.copy()
    em.sc3(a, basis="pca", n_clusters=[8, 15], d_range=[10, 20], n_runs=3, random_state=0)
    x = a.obsm["X_pca"][:, :20]
    with threadpool_limits(limits=1):
        for k in (8, 15):
            col = a.obs[f"sc3.{k}"]
            assert col.cat.categories.size == k and col.value_counts().min() >= 5
            km = KMeans(k, n_init=4, random_state=0).fit(x)
            ratio = _sse(x, col.cat.codes) / km.inertia_
            assert ratio < 1.2, (k, ratio)
    assert a.uns["sc3"]["d_range"] == [10, 20]


def test_deterministic_replay_and_h5ad(pbmc, tmp_path):
    start = pbmc.copy()
    em.sc3(pbmc, basis="pca", n_clusters=[4, 9], d_range=[10, 30], n_runs=3, random_state=7)
    again = start.copy()
    em.sc3(again, basis="X_pca", n_clusters=[9, 4], d_range=[30, 10], n_runs=3, random_state=7)
    for k in (4, 9):
        assert (again.obs[f"sc3.{k}"] == pbmc.obs[f"sc3.{k}"]).all()
    other = start.copy()
    em.sc3(other, basis="pca", n_clusters=[4, 9], d_range=[10, 30], n_runs=3, random_state=8)
    assert not (other.obs["sc3.9"] == pbmc.obs["sc3.9"]).all()
    # replay from the recorded history, also after an h5ad round trip
    out = em.replay(start, pbmc)
    for k in (4, 9):
        assert (out.obs[f"sc3.{k}"] == pbmc.obs[f"sc3.{k}"]).all()
        assert list(out.uns[f"sc3.{k}_colors"]) == list(pbmc.uns[f"sc3.{k}_colors"])
    pbmc.write_h5ad(tmp_path / "a.h5ad")
    back = sc.read_h5ad(tmp_path / "a.h5ad")
    out2 = em.replay(start, back)
    assert (out2.obs["sc3.9"] == pbmc.obs["sc3.9"]).all()
    assert "sc3.4" not in start.obs
    # a tampered seed is caught by the output fingerprint
    recs = [json.loads(r) for r in pbmc.uns["commands"]]
    recs[-1]["params"]["random_state"] = 8
    with pytest.raises(em.ReplayError, match=r"sc3.*did not reproduce"):
        em.replay(start, recs)


_OTHER_PROCESS = """
import contextlib, io, sys
import scanpy as sc
import exprmat_widgets as em
a = sc.datasets.pbmc68k_reduced()
with contextlib.redirect_stdout(io.StringIO()):
    em.sc3(a, basis="pca", n_clusters=[4, 9], batch_size=100, random_state=3)
    em.sc3(a, basis="pca", key_added="full", n_clusters=[9], random_state=3)
sys.stdout.write(";".join(",".join(a.obs[c].astype(str)) for c in ("sc3.4", "sc3.9", "full.9")))
"""


def test_same_clusters_in_another_process_with_other_thread_settings(pbmc):
    """Mini-batch (batch_size=100) and plain (one batch) facilities: a fresh process with
    2 BLAS / OpenMP / numba threads gives the clusters of this one (1 thread)."""
    env = dict(os.environ, OMP_NUM_THREADS="2", OPENBLAS_NUM_THREADS="2", NUMBA_NUM_THREADS="2")
    out = subprocess.run([sys.executable, "-c", _OTHER_PROCESS], env=env, capture_output=True,
                         text=True, timeout=600, check=True).stdout
    with threadpool_limits(limits=1), contextlib.redirect_stdout(io.StringIO()):
        em.sc3(pbmc, basis="pca", n_clusters=[4, 9], batch_size=100, random_state=3)
        em.sc3(pbmc, basis="pca", key_added="full", n_clusters=[9], random_state=3)
    here = [",".join(pbmc.obs[c].astype(str)) for c in ("sc3.4", "sc3.9", "full.9")]
    assert out.split(";") == here
    assert pbmc.obs["sc3.9"].cat.categories.size == 9


def test_facility_settings_and_messages(pbmc, capsys):
    em.sc3(pbmc, basis="pca", n_clusters=[3, 6], n_facility=40, multiplier_facility=2, random_state=1)
    out = capsys.readouterr().err
    assert "[i] n_facility set to 40, ignoring multiplier_facility" in out
    assert pbmc.uns["sc3"]["n_facility"] == 40
    em.sc3(pbmc, basis="pca", n_clusters=[4], multiplier_facility=2.5, random_state=1)
    assert "number of facilities calculated as 10" in capsys.readouterr().err
    small = pbmc[:40].copy()
    small.uns.pop("commands", None)  # a hand-made subset starts a history of its own
    em.sc3(small, basis="pca", n_clusters=[5, 30], random_state=0)
    assert "capped at the number of cells - 1 = 39" in capsys.readouterr().err
    assert small.obs["sc3.30"].cat.categories.size <= 30


def test_fewer_distinct_groups_than_k(capsys):
    """Three distinct points repeated: at most three clusters, and it says so."""
    rng = np.random.default_rng(0)
    pts = np.array([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0], [0.0, 10.0, 5.0]])
    which = rng.integers(0, 3, 300)
    a = sc.AnnData(np.zeros((300, 2), dtype=np.float32), obsm={"X_pca": pts[which]})
    em.sc3(a, basis="pca", n_clusters=[2, 5], d_range=[3], random_state=0)
    assert adjusted_rand_score(which, a.obs["sc3.5"]) == 1.0
    assert a.obs["sc3.2"].cat.categories.size == 2
    assert "the runs agree on only 3 distinct groups" in capsys.readouterr().err


# ----------------------------------------------------------------------------- internals


def test_average_linkage_matches_scipy_and_weights_match_duplicates(rng):
    x = rng.normal(size=(60, 4))
    d = squareform(pdist(x))
    for k in (2, 5, 11):
        ours = sc3mod._cut(sc3mod._average_linkage(d, np.ones(60)), 60, k)
        ref = fcluster(linkage(pdist(x), "average"), k, "maxclust")
        assert adjusted_rand_score(ours, ref) == 1.0
    # an item of weight w is the same as w identical cells
    w = rng.integers(1, 4, 60)
    rep = np.repeat(np.arange(60), w)
    ours = sc3mod._cut(sc3mod._average_linkage(d, w), 60, 6)
    ref = fcluster(linkage(pdist(x[rep] + 0.0), "average"), 6, "maxclust")
    assert adjusted_rand_score(ours[rep], ref) == 1.0


def test_patterns_and_weighted_kmeans(rng):
    codes = rng.integers(0, 3, size=(500, 4))
    pattern, pats, counts = sc3mod._patterns(codes)
    assert np.array_equal(pats[pattern], codes)
    assert counts.sum() == 500 and len(pats) == len(np.unique(codes, axis=0))
    # weighted k-means equals k-means on the points repeated by their weights
    x = np.concatenate([rng.normal(c, 0.3, size=(15, 2)) for c in ((0, 0), (5, 0), (0, 5))])
    w = rng.integers(1, 5, len(x)).astype(float)
    lab = weighted_kmeans(x, w, 3, seed=0)
    truth = np.repeat(np.arange(3), 15)
    assert adjusted_rand_score(truth, lab) == 1.0
    assert np.array_equal(lab, weighted_kmeans(x, w, 3, seed=0))


def test_facility_kmeans_as_good_as_sklearn(mouse10k):
    """Our facility k-means (mini-batch on 10,000 real cells; Lloyd on 700) reaches a
    within-facility sum of squares (mean of 8 seeds) within 2% of sklearn's, deterministically."""
    from sklearn.cluster import MiniBatchKMeans

    from exprmat_widgets.tl._kmeans import facility_kmeans

    def cost(x, centres, labels):
        return float(((x - centres[labels]) ** 2).sum())

    x = np.ascontiguousarray(mouse10k.obsm["X_pca"], dtype=np.float64)
    small = np.ascontiguousarray(em.datasets.pbmc68k_counts().obsm["X_pca"][:, :25], dtype=np.float64)
    with threadpool_limits(limits=1):
        for data, batch, ref in (
            (x, 1024, lambda s: MiniBatchKMeans(60, batch_size=1024, n_init=1, random_state=s)),
            (small, 1024, lambda s: KMeans(60, n_init=1, random_state=s)),
        ):
            ours = [cost(data, *facility_kmeans(data, 60, s, batch)) for s in range(8)]
            theirs = []
            for s in range(8):
                km = ref(s).fit(data)
                theirs.append(cost(data, km.cluster_centers_, km.labels_))
            assert np.mean(ours) <= 1.02 * np.mean(theirs), (ours, theirs)
        c1, l1 = facility_kmeans(x, 60, 5, 1024)
        c2, l2 = facility_kmeans(x, 60, 5, 1024)
    assert np.array_equal(l1, l2) and np.array_equal(c1, c2)
    assert np.bincount(l1, minlength=60).min() > 0


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"basis": "harmony"}, em.MissingKeyError, "embedding 'harmony' not found"),
        ({"n_clusters": 1}, em.ExprmatError, "n_clusters must be >= 2"),
        ({"n_clusters": [5, 700]}, em.ExprmatError, "n_clusters must be <= 699"),
        ({"n_clusters": []}, em.ExprmatError, "n_clusters is empty"),
        ({"n_clusters": "ten"}, em.ExprmatError, "n_clusters must be an integer or a list"),
        ({"n_clusters": [2.5]}, em.ExprmatError, "must be an integer"),
        ({"d_range": [10, 60]}, em.ExprmatError, "d_range must be <= 50"),
        ({"n_runs": 0}, em.ExprmatError, "n_runs must be >= 1"),
        ({"n_facility": 8}, em.ExprmatError, "n_facility must be >= 10"),
        ({"n_facility": 700}, em.ExprmatError, "n_facility must be <= 699"),
        ({"multiplier_facility": 0.5}, em.ExprmatError, "multiplier_facility must be a number >= 1"),
        ({"batch_size": 5}, em.ExprmatError, "batch_size must be >= 10"),
        ({"random_state": None}, em.ExprmatError, "random_state must be an integer"),
        ({"random_state": -1}, em.ExprmatError, "random_state must be >= 0"),
        ({"key_added": ""}, em.ExprmatError, "key_added must be a non-empty string"),
        ({"bogus": 1}, em.ExprmatError, "unexpected keyword"),
    ],
)
def test_bad_input_changes_nothing(pbmc, kwargs, error, match):
    pbmc.obs["sc3.10"] = pd.Categorical(["x"] * pbmc.n_obs)  # an older result must survive
    before_obs = pbmc.obs.copy()
    before_uns = set(pbmc.uns)
    params = {"basis": "pca", "n_clusters": [5, 10], "random_state": 0} | kwargs
    with pytest.raises(error, match=match):
        em.sc3(pbmc, **params)
    pd.testing.assert_frame_equal(pbmc.obs, before_obs)
    assert set(pbmc.uns) == before_uns
    assert "commands" not in pbmc.uns


def test_nan_embedding_refused(pbmc):
    x = pbmc.obsm["X_pca"].copy()
    x[5, 2] = np.nan
    pbmc.obsm["X_pca"] = x
    with pytest.raises(em.ExprmatError, match="NaN"):
        em.sc3(pbmc, basis="pca", n_clusters=[5])
    assert "sc3.5" not in pbmc.obs and "sc3" not in pbmc.uns
