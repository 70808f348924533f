"""Long work from the panels: progress reported through tqdm to the panel's bar, Cancel at
the next safe point leaving data and history exactly as before, a second action refused
while one runs, and read-only controls answered while a gated command computes."""

import threading

import numpy as np
import pandas as pd
import pytest
import scanpy as sc

import exprmat_widgets as em
from exprmat_widgets import _progress as prog
from exprmat_widgets.history import fingerprint, get_records


def _whole(adata):
    """One fingerprint of everything a command could change, history included."""
    return fingerprint({
        "X": adata.X, "obs": adata.obs, "var": adata.var, "uns": dict(adata.uns),
        "obsm": dict(adata.obsm), "obsp": dict(adata.obsp), "layers": dict(adata.layers),
        "names": np.asarray(adata.obs_names, dtype=object),
    })


@pytest.fixture(scope="module")
def ready():
    """400 real PBMC of two samples: recorded preprocessing, an embedding and Leiden, and
    the layers cNMF reads (counts, linear 'norm', HVG flags)."""
    adata = em.datasets.pbmc_2samples()
    em.derive_layer(adata, "counts", source="X", transform="copy")
    em.normalize_total(adata, target_sum=1e4)
    em.log1p(adata)
    em.highly_variable_genes(adata, n_top_genes=300, key_added="vst.all.hvg")
    em.derive_layer(adata, "norm", source="X", transform="expm1")
    em.pca(adata, n_comps=10, mask_var="vst.all.hvg", random_state=0)
    em.knn(adata, use_rep="X_pca", n_neighbors=10, random_state=0)
    em.umap(adata, random_state=0)
    em.leiden(adata, resolution=0.5, random_state=0)
    return adata


def _cnmf(adata, **kw):
    args = {"ks": [3, 4], "n_iter": 6, "hvg": "vst.all.hvg", "max_nmf_iter": 200, "key_added": "cnmf",
            "progress": False}
    args.update(kw)
    return em.consensus_nmf(adata, **args)


class Cancels:
    """A listener that records every report and cancels once ``at`` steps are done."""

    def __init__(self, at=None):
        self.at, self.seen, self.token = at, [], prog.CancelToken()

    def __call__(self, desc, n, total):
        self.seen.append((desc, n, total))
        if self.at is not None and n >= self.at:
            self.token.cancel()


@pytest.mark.parametrize("ncpus", [1, 2])
def test_cancel_mid_cnmf_leaves_data_and_history_identical(ready, ncpus):
    adata = ready.copy()
    before, n_rec = _whole(adata), len(get_records(adata))
    lis = Cancels(at=3)
    with prog.scope(lis, lis.token), pytest.raises(prog.Cancelled, match="cNMF.*as they were"):
        _cnmf(adata, ncpus=ncpus)
    assert _whole(adata) == before and len(get_records(adata)) == n_rec
    assert "cnmf" not in adata.uns and "cnmf.stats" not in adata.uns
    total = lis.seen[-1][2]
    assert total == 2 * (6 + 1) and 3 <= lis.seen[-1][1] < total  # stopped early, not at the end


def test_cnmf_progress_reaches_the_end_and_prints_nothing(ready, capsys):
    adata = ready.copy()
    lis = Cancels()
    with prog.scope(lis, lis.token):
        _cnmf(adata)
    descs = {d for d, _, _ in lis.seen}
    assert descs == {"cNMF"}
    assert lis.seen[-1][1] == lis.seen[-1][2] == 2 * (6 + 1)
    steps = [n for _, n, _ in lis.seen]
    assert steps == sorted(steps) and steps[0] == 0
    out = capsys.readouterr()
    assert "cNMF" not in out.out + out.err  # the panel's bar, not printed text
    assert get_records(adata)[-1]["command"] == "consensus_nmf" and "cnmf" in adata.uns


def test_cancel_mid_sc3_and_before_knn_umap(ready):
    adata = ready.copy()
    before, n_rec = _whole(adata), len(get_records(adata))
    lis = Cancels(at=2)
    with prog.scope(lis, lis.token), pytest.raises(prog.Cancelled, match="sc3"):
        em.sc3(adata, basis="X_pca", n_clusters=[3, 5], n_runs=5, random_state=1)
    assert _whole(adata) == before and not any(c.startswith("sc3") for c in adata.obs.columns)
    assert lis.seen[-1][2] == 5 + 2 and lis.seen[-1][1] < 5 + 2
    # a token cancelled up front: kNN and UMAP stop before (or roll back after) scanpy's call
    for run in (lambda: em.knn(adata, use_rep="X_pca", n_neighbors=5),
                lambda: em.umap(adata, min_dist=0.1)):
        tok = prog.CancelToken()
        tok.cancel()
        with prog.scope(None, tok), pytest.raises(prog.Cancelled):
            run()
        assert _whole(adata) == before and len(get_records(adata)) == n_rec
    # the same routines run to the end report their single step
    lis = Cancels()
    with prog.scope(lis, lis.token):
        em.sc3(adata, basis="X_pca", n_clusters=[3], n_runs=2, random_state=1)
        em.knn(adata, use_rep="X_pca", n_neighbors=5)
    assert ("sc3", 3, 3) in lis.seen and ("kNN", 1, 1) in lis.seen
    assert [r["command"] for r in get_records(adata)][-2:] == ["sc3", "knn"]


def _plain_umap(adata, graph=False, **kw):
    """scanpy's own UMAP on a copy, no hook: the reference embedding (and, with ``graph``,
    the connectivities it leaves)."""
    ref = adata.copy()
    sc.tl.umap(ref, **kw)
    return (ref.obsm["X_umap"], ref.obsp["connectivities"]) if graph else ref.obsm["X_umap"]


def test_umap_epochs_report_and_give_the_same_bits(ready):
    import umap.layouts

    original = umap.layouts.tqdm
    adata = ready.copy()
    lis = Cancels()
    with prog.scope(lis, lis.token):
        em.umap(adata, maxiter=40, random_state=3)
    epochs = [(n, t) for d, n, t in lis.seen if d == "UMAP epochs"]
    assert epochs[-1] == (40, 40) and [n for n, _ in epochs] == sorted(n for n, _ in epochs)
    assert len({n for n, _ in epochs}) > 20  # one report per epoch, not one for the call
    hooked = adata.obsm["X_umap"]
    plain, plain_graph = _plain_umap(ready, graph=True, maxiter=40, random_state=3)
    code = ready.copy()
    graph = code.obsp["connectivities"].copy()
    em.umap(code, maxiter=40, random_state=3)  # from code: no scope, umap's own bar
    # scanpy's call zeroes weak edges of the graph in place; em.umap leaves the same graph
    # (a later Leiden clusters what scanpy's would), and the records name it as written
    assert fingerprint(plain_graph) != fingerprint(graph)
    assert fingerprint(code.obsp["connectivities"]) == fingerprint(plain_graph)
    assert fingerprint(adata.obsp["connectivities"]) == fingerprint(plain_graph)
    assert "obsp:connectivities" in get_records(code)[-1]["output"]
    assert hooked.dtype == plain.dtype and hooked.tobytes() == plain.tobytes()
    assert code.obsm["X_umap"].tobytes() == plain.tobytes()
    assert umap.layouts.tqdm is original


def test_cancel_mid_umap_epochs_leaves_data_and_history_identical(ready):
    import umap.layouts

    original = umap.layouts.tqdm
    adata = ready.copy()
    adata.obsm["X_umap_old"] = adata.obsm["X_umap"].copy()
    before, n_rec = _whole(adata), len(get_records(adata))
    lis = Cancels(at=7)
    with prog.scope(lis, lis.token), pytest.raises(prog.Cancelled, match="UMAP epochs.*as they were"):
        em.umap(adata, maxiter=60, min_dist=0.2)
    assert lis.seen[-1][0] == "UMAP epochs" and 7 <= lis.seen[-1][1] < 60 == lis.seen[-1][2]
    assert _whole(adata) == before and len(get_records(adata)) == n_rec
    assert umap.layouts.tqdm is original


def test_umap_hook_is_put_back_on_error_and_spares_other_threads(ready):
    """A plain UMAP in another thread, while a recorded one is held mid-epochs, gets umap's
    own bar (nothing reaches the recorded one's listener) and the same bits as alone; an
    error from inside the epochs puts ``umap.layouts`` back."""
    import umap.layouts

    original = umap.layouts.tqdm
    adata = ready.copy()
    held, go, seen = threading.Event(), threading.Event(), []

    def listener(desc, n, total):
        seen.append((threading.get_ident(), desc, n))
        if n == 5:
            held.set()
            assert go.wait(60)

    errors = []

    def recorded():
        try:
            with prog.scope(listener):
                em.umap(adata, maxiter=30, random_state=1)
        except Exception as e:  # noqa: BLE001 (reported by the assertion below)
            errors.append(e)

    t = threading.Thread(target=recorded)
    t.start()
    assert held.wait(120)
    assert umap.layouts.tqdm is not original  # the dispatcher is in while the epochs run
    other = ready.copy()
    sc.tl.umap(other, maxiter=25, random_state=2)  # this thread, same moment
    go.set()
    t.join(120)
    assert not errors and {tid for tid, _, _ in seen} == {t.ident}
    assert other.obsm["X_umap"].tobytes() == _plain_umap(ready, maxiter=25, random_state=2).tobytes()
    assert adata.obsm["X_umap"].tobytes() == _plain_umap(ready, maxiter=30, random_state=1).tobytes()
    assert umap.layouts.tqdm is original

    broke = []

    def failing(desc, n, total):
        if n == 3 and not broke:  # once: the bar's close reports n=3 again
            broke.append(n)
            raise RuntimeError("listener broke")

    with prog.scope(failing), pytest.raises(RuntimeError, match="listener broke"):
        em.umap(ready.copy(), maxiter=30)
    assert umap.layouts.tqdm is original


def test_code_calls_are_unchanged_without_a_scope(ready):
    """From code nothing is cancelled and the checkpoints are free."""
    prog.checkpoint("nothing")
    with prog.writing("nothing"), prog.locked():
        pass
    b = prog.bar(3, "x", enabled=False)
    b.update(3)
    b.close()


@pytest.fixture
def annotator(ready):
    return em.Annotator(ready.copy(), key="leiden", basis="umap", background=True)


def _slow_cnmf(ann):
    an = ann.analysis
    an.cnmf_ks.value = "3,4,5"
    an.cnmf_iter.value = 40
    an.cnmf_hvg.value = "vst.all.hvg"


def _wait_for(cond, timeout=120.0):
    ev = threading.Event()
    for _ in range(int(timeout / 0.05)):
        if cond():
            return True
        ev.wait(0.05)
    return cond()


def test_panel_cancel_refuse_and_live_reads(annotator):
    ann, an = annotator, annotator.analysis
    adata = ann.adata
    before, n_rec = _whole(adata), len(get_records(adata))
    _slow_cnmf(ann)
    an.cnmf_button.click()
    assert ann.busy and ann.running == "consensus_nmf"
    assert _wait_for(lambda: ann.progress.fraction > 0), ann.status_text
    assert ann.progress.widget.layout.display != "none" and "cNMF" in ann.progress.text
    assert all(b.disabled for b in ann.action_buttons) and not ann.progress.cancel_button.disabled
    # another action is refused, naming the running one and the way out
    an.leiden_button.click()
    assert ann.status_kind == "error" and "consensus_nmf is still running" in ann.status_text
    assert "Cancel" in ann.status_text
    # a read-only control is answered now, not after the run
    assert ann._live is not None
    ran = []
    assert ann.when_idle("probe", lambda: ran.append(adata.obs["leiden"].nunique())) is True
    assert ran and ann.busy
    ann.clusters.select(["0"])
    ann.progress.cancel_button.click()
    ann.wait(120)
    assert not ann.busy and ann.cancelled
    assert ann.status_kind == "warn" and "consensus_nmf cancelled" in ann.status_text
    assert "as they were before" in ann.status_text
    assert "cancelled" in ann.progress.text and ann.progress.fraction < 1
    assert len(get_records(adata)) == n_rec and _whole(adata) == before
    assert not any(b.disabled for b in ann.action_buttons)


def test_panel_progress_reaches_100_percent(annotator):
    ann, an = annotator, annotator.analysis
    an.cnmf_ks.value = "3"
    an.cnmf_iter.value = 4
    an.cnmf_hvg.value = "vst.all.hvg"
    an.cnmf_button.click()
    ann.wait(120)
    assert ann.last_error is None and not ann.cancelled, ann.status_text
    assert ann.progress.fraction == 1.0 and "done in" in ann.progress.text
    assert ann.progress.cancel_button.layout.display == "none"
    assert isinstance(ann.adata.uns["cnmf.stats"], pd.DataFrame)
    assert ann.cancel() is False  # nothing runs


def test_queued_reads_of_an_ungated_action_run_after_it(annotator):
    """A command that writes as it goes (Leiden) keeps the old rule: reads wait for it."""
    ann = annotator
    go, started = threading.Event(), threading.Event()

    def slow():
        started.set()
        assert go.wait(30)
        return em.leiden(ann.adata, resolution=0.3, key_added="leiden.03", random_state=0)

    assert ann.act("leiden", slow)
    assert started.wait(30)
    ran = []
    assert ann.when_idle("probe", lambda: ran.append(1)) is False and not ran
    go.set()
    ann.wait(60)
    assert ran == [1] and "leiden.03" in ann.adata.obs


def test_analysis_panel_actions_stay_gated(annotator):
    """The panel's wrapper (live status messages) keeps the long routines gated, so their
    progress bar, Cancel and the answering reads work when started from the Analysis tab."""
    an = annotator.analysis
    for name in ("knn", "umap", "sc3", "consensus_nmf"):
        assert getattr(an._live(getattr(em, name)), "__exprmat_gated__", False), name
    assert not getattr(an._live(em.leiden), "__exprmat_gated__", False)


def test_first_knn_wait_is_said_in_the_status_line_while_it_runs(annotator, monkeypatch):
    """The first kNN of a kernel says in the panel's status line, while it runs, that it
    compiles (or loads) numba code; the line then reports the finished command."""
    from exprmat_widgets.tl import _first_knn

    monkeypatch.setattr(_first_knn, "_done", set())  # as in a fresh kernel
    ann = annotator
    seen = []
    ann.status.observe(lambda ch: seen.append((ch["new"], ann.busy)), names="value")
    ann.analysis.knn_button.click()
    ann.wait(600)
    during = [v for v, busy in seen if busy and "numba code" in v]
    assert during, seen
    assert ann.status_kind == "ok" and "knn" in ann.status_text
