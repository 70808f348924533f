"""History formats 1 and 2: hostile records, bounded decoding, locks, foreign histories, undo budget."""

import base64
import json
import threading
import time
import zlib

import anndata as ad
import numpy as np
import pytest

import exprmat_widgets as em
from exprmat_widgets.cli import main
from exprmat_widgets.history import FORMAT, held_bytes, input_fingerprint, raw_records
from exprmat_widgets.history.registry import forget_checkpoints
from exprmat_widgets.selection import decode_selection, encode_selection


@pytest.fixture
def annotated(pbmc):
    start = pbmc.copy()
    em.label_cells(pbmc, key="lab", cells=pbmc.obs_names[:30], label="A")
    em.label_cells(pbmc, key="lab", cells=np.arange(pbmc.n_obs) >= 100, label="B")  # > 5000? no: names
    return start, pbmc


def _records(adata):
    return [json.loads(r) for r in raw_records(adata)]


def _big_mask_record(n_bits):
    """A packed mask of ``n_bits`` set bits, compressed chunk by chunk (a 'zip bomb' for
    large ``n_bits``: ~1 MB of base64 that inflates to n_bits / 8 bytes)."""
    z, chunk, parts = zlib.compressobj(9), b"\xff" * 2**20, []
    left = n_bits // 8
    while left > 0:
        parts.append(z.compress(chunk[: min(left, len(chunk))]))
        left -= len(chunk)
    parts.append(z.flush())
    return base64.b64encode(b"".join(parts)).decode()


# each case: how to damage the stored list of JSON strings, and what the message must say
HOSTILE = {
    "record is a JSON list": (lambda recs: ["[1, 2]"] + recs[1:], "not an object"),
    "record is a JSON string": (lambda recs: ['"knn"'] + recs[1:], "not an object"),
    "record is null": (lambda recs: ["null"] + recs[1:], "not an object"),
    "record is not JSON": (lambda recs: ["{not json"] + recs[1:], "not valid JSON"),
    "deeply nested JSON": (lambda recs: ["[" * 200_000 + "]" * 200_000] + recs[1:], "nested too deeply"),
    "huge integer": (lambda recs: [recs[0].replace('"n_obs":700', '"n_obs":' + "9" * 5000)] + recs[1:],
                     "not valid JSON"),
    "command is a list": (lambda recs: [_edit(recs[0], command=["label_cells"])] + recs[1:], "'command' is"),
    "command is 20 MB": (lambda recs: [_edit(recs[0], command="x" * 20_000_000)] + recs[1:], "'command' is"),
    "unknown command": (lambda recs: [_edit(recs[0], command="os.system")] + recs[1:], "unknown command"),
    "output is a list": (lambda recs: [_edit(recs[0], output=[1, 2])] + recs[1:], "'output' is"),
    "params is a list": (lambda recs: [_edit(recs[0], params=[1])] + recs[1:], "'params' is"),
    "no input": (lambda recs: [_edit(recs[0], input=None, drop="input")] + recs[1:], "lacks input"),
    "input of wrong types": (lambda recs: [_edit(recs[0], input={"n_obs": "700"})] + recs[1:], "'input' is"),
    "newer format": (lambda recs: [_edit(recs[0], format=FORMAT + 1)] + recs[1:], "history format"),
    "format not an int": (lambda recs: [_edit(recs[0], format="1")] + recs[1:], "'format' is"),
    "unknown parameter": (lambda recs: [_edit(recs[0], params_add={"evil": 1})] + recs[1:], "unknown parameter"),
    "parameter name not a Python name": (
        lambda recs: [_edit(recs[0], params_add={"x); import os #": 1})] + recs[1:], "not Python names"),
    "selection is a list": (lambda recs: [_edit(recs[0], params_set={"cells": [1, 2]})] + recs[1:],
                            "not a recorded selection"),
    "mask bomb": (lambda recs: [_edit(recs[0], params_set={"cells": {
        "encoding": "mask", "n_obs": 700, "packed": _big_mask_record(8 * 2**27)}})] + recs[1:], "too long"),
    "mask with more bits than cells": (lambda recs: [_edit(recs[0], params_set={"cells": {
        "encoding": "mask", "n_obs": 700, "packed": _big_mask_record(8 * 200)}})] + recs[1:],
        "does not hold exactly"),
    "names longer than the data": (lambda recs: [_edit(recs[0], params_set={"cells": {
        "encoding": "names", "names": ["a"] * 701}})] + recs[1:], "at most 700"),
    "record is a number in the list": (lambda recs: [7] + recs[1:], "not a JSON string"),
}


def _edit(text, drop=None, params_add=None, params_set=None, **fields):
    r = json.loads(text)
    for k, v in fields.items():
        if v is not None:
            r[k] = v
    if drop:
        r.pop(drop)
    if params_add:
        r["params"].update(params_add)
    if params_set:
        r["params"].update(params_set)
    return json.dumps(r)


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_history_gives_replay_error_naming_the_step(annotated, case):
    start, adata = annotated
    damage, expected = HOSTILE[case]
    recs = [str(r) for r in raw_records(adata)]
    hostile = damage(recs)
    t0 = time.perf_counter()
    with pytest.raises(em.ReplayError) as info:
        em.replay(start, hostile)
    message = str(info.value)
    assert expected in message
    assert "step 0" in message and info.value.step == 0
    assert len(message) < 1200  # hostile content is never echoed whole
    assert time.perf_counter() - t0 < 60  # bounded: no gigabyte decompression (not a timing assertion of speed)
    if expected not in ("too long", "does not hold exactly", "at most 700"):  # script keeps selections as recorded
        with pytest.raises(em.ReplayError):
            em.history_to_script(hostile)


@pytest.mark.parametrize("case", ["record is a JSON list", "deeply nested JSON", "unknown parameter",
                                  "command is a list", "no input"])
def test_cli_never_prints_a_traceback(annotated, case, tmp_path, capsys):
    start, adata = annotated
    damage, _ = HOSTILE[case]
    bad = adata.copy()
    bad.uns["commands"] = damage([str(r) for r in raw_records(adata)])
    start.write_h5ad(tmp_path / "start.h5ad")
    bad.write_h5ad(tmp_path / "bad.h5ad")
    for argv in (["replay", str(tmp_path / "start.h5ad"), str(tmp_path / "bad.h5ad")],
                 ["history", str(tmp_path / "bad.h5ad")],
                 ["history", str(tmp_path / "bad.h5ad"), "--script"]):
        code = main(argv)
        err = capsys.readouterr().err
        if case == "unknown parameter" and "--script" not in argv and argv[0] == "history":
            assert code == 0  # a well-formed record is listed; only running or exporting it is refused
            continue
        assert code == 2, (argv, err)
        assert "Traceback" not in err and "step 0" in err


def test_uns_commands_not_a_list(pbmc):
    bad = pbmc.copy()
    bad.uns["commands"] = 7
    with pytest.raises(em.ReplayError, match="is a int, not a list"):
        em.replay(pbmc, bad)
    with pytest.raises(em.ReplayError, match="del adata.uns"):
        em.history(bad)


def test_long_version_string_is_not_parsed(annotated):
    """Replay reads the format, not the package version: a newer (or odd) version replays."""
    start, adata = annotated
    recs = _records(adata)
    for r in recs:
        r["version"] = "9" * 5000
    out = em.replay(start, [json.dumps(r) for r in recs])
    assert (out.obs["lab"].astype(str) == adata.obs["lab"].astype(str)).all()


def test_format_0_records_still_replay(annotated):
    start, adata = annotated
    recs = _records(adata)
    for r in recs:
        r.pop("format")
        r.pop("after")
    out = em.replay(start, [json.dumps(r) for r in recs])
    assert em.history(out)["format"].tolist() == [1, 1]


def test_records_carry_format_and_after(annotated):
    _, adata = annotated
    rec = _records(adata)[-1]
    assert rec["format"] == FORMAT == 2 and rec["after"] == input_fingerprint(adata)
    assert set(rec) == {"format", "command", "params", "version", "time", "input", "output", "after"}


@pytest.mark.parametrize("seed", range(6))
def test_random_selections_survive_encode_decode_and_h5ad(seed, tmp_path):
    rng = np.random.default_rng(seed)
    n = int(rng.choice([1, 9, 4999, 5001, 12_345]))
    adata = ad.AnnData(np.zeros((n, 1), np.float32))
    adata.obs_names = [f"c{i}-{rng.integers(1e9)}" for i in range(n)]
    adata.obs_names_make_unique()
    p = rng.choice([0.0, 0.001, 0.3, 0.9, 1.0])
    mask = rng.random(n) < p
    rec = encode_selection(adata, mask)
    assert rec["n_selected"] == mask.sum()
    adata.uns["sel"] = json.dumps(rec)
    adata.write_h5ad(tmp_path / "s.h5ad")
    back = ad.read_h5ad(tmp_path / "s.h5ad")
    assert (decode_selection(back, json.loads(back.uns["sel"])) == mask).all()


def test_duplicate_obs_names_are_refused_at_the_first_command(pbmc):
    names = list(pbmc.obs_names)
    names[5] = names[4]
    with ad.settings.override(check_uniqueness=False) if hasattr(ad, "settings") else _nullctx():
        pbmc.obs_names = names
    with pytest.raises(em.ExprmatError, match="obs_names_make_unique"):
        em.label_cells(pbmc, key="lab", cells=np.arange(10), label="A")
    assert "commands" not in pbmc.uns and "lab" not in pbmc.obs
    pbmc.obs_names_make_unique()
    em.label_cells(pbmc, key="lab", cells=np.arange(10), label="A")


class _nullctx:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def test_history_of_other_data_is_detected(annotated):
    """anndata.concat(..., uns_merge='first') keeps one input's history: refused before recording."""
    _, adata = annotated
    other = adata.copy()
    other.obs_names = [f"{n}-2" for n in other.obs_names]
    both = ad.concat([adata, other], uns_merge="first")
    assert len(raw_records(both)) == 2
    before = list(raw_records(both))
    with pytest.raises(em.ExprmatError, match="does not belong to these data"):
        em.label_cells(both, key="lab2", cells=np.arange(5), label="X")
    assert list(raw_records(both)) == before and "lab2" not in both.obs
    by_hand = adata[adata.obs["lab"] == "A"].copy()
    with pytest.raises(em.ExprmatError, match="subset_cells"):
        em.label_cells(by_hand, key="lab2", cells=np.arange(5), label="X")


def test_a_cell_command_waits_for_a_background_command(pbmc):
    """A command from another thread (a notebook cell during a panel action) never interleaves."""
    from exprmat_widgets.history import command_lock

    start = pbmc.copy()
    em.label_cells(pbmc, key="lab", cells=np.arange(50), label="A")
    order = []
    lock = command_lock(pbmc)
    lock.acquire()  # stands for a long background exclusion holding the command
    t = threading.Thread(target=lambda: (em.label_cells(pbmc, key="lab", cells=np.arange(50, 60), label="B"),
                                         order.append("cell")))
    t.start()
    time.sleep(0.3)
    assert order == [] and len(raw_records(pbmc)) == 1  # the cell's command is waiting
    em.exclude(pbmc, annotation="lab", remove=["A"])
    order.append("background")
    lock.release()
    t.join(30)
    assert order == ["background", "cell"]
    assert em.history(pbmc)["command"].tolist() == ["label_cells", "exclude", "label_cells"]
    em.replay(start, pbmc)  # the serialised history replays


def test_undo_memory_budget_lets_old_checkpoints_go_and_start_rebuilds(pbmc, caplog):
    start = pbmc.copy()
    em.label_cells(pbmc, key="lab", cells=np.arange(350), label="A")
    old = em.settings.undo_max_bytes
    try:
        em.settings.undo_max_bytes = None
        em.exclude_cells(pbmc, cells=np.arange(10))
        one = held_bytes(pbmc)  # the replaced X, obsm and obsp
        assert one >= pbmc.X.nbytes
        em.settings.undo_max_bytes = int(1.5 * one)  # room for one exclusion's arrays, not two
        em.exclude_cells(pbmc, cells=np.arange(10))
        assert 0 < held_bytes(pbmc) <= 1.5 * one
        after_two = pbmc.obs_names.copy()
        em.undo(pbmc)  # the last checkpoint is kept
        assert pbmc.n_obs == 690
        with pytest.raises(em.ExprmatError, match="undo_max_bytes"):
            em.undo(pbmc)  # its checkpoint was let go: the message names the budget
        em.undo(pbmc, start=start)  # rebuilt by replay from the start
        assert pbmc.n_obs == 700 and em.history(pbmc)["command"].tolist() == ["label_cells"]
        assert len(after_two) == 680
    finally:
        em.settings.undo_max_bytes = old
    with pytest.raises(em.ExprmatError, match="undo_max_bytes must be"):
        em.settings.undo_max_bytes = -1


def test_annotator_start_copy_counts_in_the_budget_and_goes_to_a_file(pbmc_graph, caplog):
    """The start copy and the checkpoints together stay within the undo budget: over it, the
    start copy is written to a temporary h5ad first; Verify and undo still work from it."""
    import logging

    a = pbmc_graph
    before = held_bytes(a)  # the fixture's commands' checkpoints
    ann = em.Annotator(a, background=False)
    assert ann.start_copy.in_memory and held_bytes(a) == before  # shallow: it shares every array
    forget_checkpoints(a)
    old = em.settings.undo_max_bytes
    try:
        em.settings.undo_max_bytes = None
        em.exclude_cells(a, cells=np.arange(10))
        one = held_bytes(a)  # the old X etc., held by the checkpoint and the start copy (once)
        assert one >= pbmc_graph.X.nbytes and ann.start_copy.in_memory
        em.undo(a)
        em.settings.undo_max_bytes = int(1.5 * one)  # room for one exclusion's arrays, not two
        with caplog.at_level(logging.INFO, logger="exprmat_widgets"):
            em.exclude_cells(a, cells=np.arange(10))
            assert ann.start_copy.in_memory  # within the budget: nothing written
            em.exclude_cells(a, cells=np.arange(10, 20))
        # the start's X, then the first exclusion's, no longer used: the start copy went first
        assert not ann.start_copy.in_memory and ann.start_copy.path.exists()
        assert "start copy" in caplog.text and str(ann.start_copy.path) in caplog.text
        assert held_bytes(a) <= 1.5 * one
        assert ann.start.n_obs == 700
        ann.history.on_verify()  # replays the annotator's commands on the start read back
        assert "verify-ok" in ann.history.verify_status.value, ann.history.verify_status.value
        em.undo(a)  # a checkpoint
        assert a.n_obs == 690
        ann.history.undo_button.click()  # no checkpoint left: rebuilt from the start file
        assert ann.status_kind == "ok", ann.status_text
        assert a.n_obs == 700 and em.history(a)["command"].tolist()[-1] == "leiden"
    finally:
        em.settings.undo_max_bytes = old


def test_undo_with_a_start_that_already_has_history(pbmc):
    """The Annotator's start copy holds the commands made before it opened: undo replays
    only the rest onto it."""
    em.label_cells(pbmc, key="lab", cells=np.arange(20), label="A")
    start = pbmc.copy()
    em.label_cells(pbmc, key="lab", cells=np.arange(20, 40), label="B")
    em.label_cells(pbmc, key="lab", cells=np.arange(40, 60), label="C")
    expected = pbmc.obs["lab"].copy()
    em.label_cells(pbmc, key="lab", cells=np.arange(60, 80), label="D")
    from exprmat_widgets.history.registry import forget_checkpoints

    forget_checkpoints(pbmc)  # as if read from disk
    with pytest.raises(em.ExprmatError, match="no checkpoint for it in this Python session"):
        em.undo(pbmc)
    em.undo(pbmc, start=start)
    assert em.history(pbmc)["command"].tolist() == ["label_cells"] * 3
    assert (pbmc.obs["lab"].astype(str) == expected.astype(str)).all()


def test_backed_data_exclusion_says_what_to_do(pbmc_graph, tmp_path):
    pbmc_graph.write_h5ad(tmp_path / "a.h5ad")
    backed = ad.read_h5ad(tmp_path / "a.h5ad", backed="r")
    n = len(raw_records(backed))
    for call in (lambda: em.exclude(backed, annotation="leiden", remove=["0"]),
                 lambda: em.exclude_cells(backed, cells=np.arange(5)),
                 lambda: em.subset_cells(backed, keys=["leiden"], values=[["0"]])):
        with pytest.raises(em.ExprmatError, match="to_memory"):
            call()
    assert len(raw_records(backed)) == n and backed.n_obs == 700
    em.markers(backed, groupby="leiden", method="wilcoxon")  # reads X from the file once
    in_memory = ad.read_h5ad(tmp_path / "a.h5ad")
    em.markers(in_memory, groupby="leiden", method="wilcoxon")
    for field in ("names", "scores", "pvals_adj"):
        assert (backed.uns["markers"][field] == in_memory.uns["markers"][field]).all()
    mem = backed.to_memory()
    em.exclude(mem, annotation="leiden", remove=["0"])
    assert mem.n_obs < 700


# ------------------------------------------------------------------ format 2: tables hashed as bytes
def _markers_history(pbmc, fmt=None):
    from exprmat_widgets.history import fingerprint_format

    a = pbmc.copy()
    a.uns.pop("commands", None)
    if fmt is None:
        em.markers(a, groupby="bulk_labels", method="t-test", pts=True, key_added="mk")
        return a
    with fingerprint_format(fmt):  # what a release writing format `fmt` recorded
        em.markers(a, groupby="bulk_labels", method="t-test", pts=True, key_added="mk")
    return a


def test_format_2_hashes_numeric_tables_by_their_bytes(pbmc):
    from exprmat_widgets.history import fingerprint, fingerprint_format

    new, old = _markers_history(pbmc), _markers_history(pbmc, fmt=1)
    r_new, r_old = _records(new)[-1], _records(old)[-1]
    assert (r_new["format"], r_old["format"]) == (2, 1)
    assert r_new["output"]["uns:mk"] != r_old["output"]["uns:mk"]  # two schemes, told apart
    pts = new.uns["mk"]["pts"]
    with fingerprint_format(1):
        as_text = fingerprint(pts)
    assert fingerprint(pts) != as_text
    # a value changed in the last bit changes the format-2 fingerprint
    bumped = pts.copy()
    bumped.iloc[0, 0] = np.nextafter(bumped.iloc[0, 0], 2.0)
    assert fingerprint(bumped) != fingerprint(pts)


@pytest.mark.parametrize("fmt", [1, 2])
def test_a_history_replays_in_its_own_format_after_an_h5ad_round_trip(pbmc, tmp_path, fmt):
    start = pbmc.copy()
    start.uns.pop("commands", None)
    done = _markers_history(pbmc, fmt=fmt)
    em.label_cells(done, key="lab", cells=done.obs_names[:10], label="A")  # a format-2 step after it
    done.write_h5ad(tmp_path / "done.h5ad")
    back = ad.read_h5ad(tmp_path / "done.h5ad")
    out = em.replay(start, back)
    assert [r["format"] for r in _records(out)] == [fmt, 2]
    assert [r["output"] for r in _records(out)] == [r["output"] for r in _records(back)]
    # the file's own table, read back, still has the recorded fingerprint
    from exprmat_widgets.history import fingerprint, fingerprint_format

    with fingerprint_format(fmt):
        assert fingerprint(back.uns["mk"]) == _records(back)[0]["output"]["uns:mk"]


def test_diff_histories_says_when_two_formats_cannot_be_compared(pbmc):
    d = em.diff_histories(_markers_history(pbmc, fmt=1), _markers_history(pbmc))
    assert d["status"].tolist() == ["format"]
    assert em.diff_histories(_markers_history(pbmc), _markers_history(pbmc)).empty
