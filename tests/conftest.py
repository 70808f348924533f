"""Shared fixtures: real data shipped with the package."""

import numpy as np
import pytest
import scanpy as sc

import exprmat_widgets as em


@pytest.fixture
def pbmc():
    """scanpy's pbmc68k_reduced (700 cells, X_pca, bulk_labels), a fresh copy per test."""
    return sc.datasets.pbmc68k_reduced()


@pytest.fixture
def pbmc_graph(pbmc):
    """pbmc68k_reduced with a kNN graph, UMAP and Leiden clusters made by our routines."""
    em.knn(pbmc, use_rep="X_pca", n_neighbors=15, random_state=0)
    em.umap(pbmc, random_state=0)
    em.leiden(pbmc, resolution=1.0, random_state=0)
    return pbmc


@pytest.fixture(scope="session")
def mouse10k():
    """10,000 real mouse cells (raw counts); session-scoped, copy before changing."""
    adata = em.datasets.mouse_10k()
    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)
    sc.pp.pca(adata, n_comps=20, random_state=0)
    return adata


def assert_same_obs(a, b, keys):
    for k in keys:
        assert list(a.obs[k].astype(str)) == list(b.obs[k].astype(str)), k


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# The slowest files first (seconds on 2 workers, in `scripts/test.sh`'s --durations):
# `--dist loadfile` hands files to the two workers in collection order, so a long file
# collected last would run alone at the end while the other worker idles.
_SLOW_FIRST = (
    "test_replay_session.py",  # ~210-370 s: a fresh-process replay with pynndescent
    "test_first_knn.py",  # ~200 s: a cold numba cache on purpose
    "test_tutorial_loop_browser.py",
    "test_ux_items_b_browser.py",
    "test_notebook.py",
    "test_ux_items_a_browser.py",
    "test_scatter_browser.py",
    "test_programs_browser.py",
)


def pytest_collection_modifyitems(session, config, items):
    rank = {name: i for i, name in enumerate(_SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: file order kept otherwise
