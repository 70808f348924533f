"""The exprmat-widgets command line: success and every error path."""

import json
import shutil
import subprocess

import anndata as ad
import pandas as pd
import pytest

import exprmat_widgets as em
from exprmat_widgets.cli import main
from exprmat_widgets.history import FORMAT


@pytest.fixture
def files(pbmc, tmp_path):
    start = tmp_path / "start.h5ad"
    pbmc.write_h5ad(start)
    em.knn(pbmc, use_rep="X_pca", n_neighbors=10, random_state=0)
    em.leiden(pbmc, resolution=0.6, random_state=1)
    annotated = tmp_path / "annotated.h5ad"
    pbmc.write_h5ad(annotated)
    return start, annotated, pbmc


def test_replay_ok_writes_output(files, tmp_path, capsys):
    start, annotated, pbmc = files
    out = tmp_path / "out.h5ad"
    assert main(["replay", str(start), str(annotated), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "step   0 knn" in text and "step   1 leiden" in text and text.count(" ok ") == 2
    back = ad.read_h5ad(out)
    assert (back.obs["leiden"] == pbmc.obs["leiden"]).all()


def test_replay_reads_only_the_history_of_the_annotated_file(files, tmp_path, capsys, monkeypatch):
    """The annotated file's X is not read (it may be gigabytes): only the start is read as an
    AnnData, and the replay runs on it in place."""
    start, annotated, pbmc = files
    read = []
    real = ad.read_h5ad
    monkeypatch.setattr(ad, "read_h5ad", lambda p, *a, **k: read.append(str(p)) or real(p, *a, **k))
    from exprmat_widgets.history import _compat as hc

    def no_copy(a):
        raise AssertionError("the CLI replay copied the start")

    monkeypatch.setattr(hc, "shallow_copy", no_copy)
    assert main(["replay", str(start), str(annotated)]) == 0
    assert read == [str(start)]
    assert "2 steps reproduced" in capsys.readouterr().out


def test_replay_mismatch_names_step(files, tmp_path, capsys):
    start, annotated, pbmc = files
    recs = [json.loads(r) for r in pbmc.uns["commands"]]
    recs[1]["output"]["obs:leiden"] = "0" * 24
    pbmc.uns["commands"] = [json.dumps(r) for r in recs]
    bad = tmp_path / "bad.h5ad"
    pbmc.write_h5ad(bad)
    assert main(["replay", str(start), str(bad)]) == 1
    cap = capsys.readouterr()
    assert "MISMATCH" in cap.out and "step 1 (leiden)" in cap.err


def test_missing_file_and_no_history_and_newer_version(files, tmp_path, capsys):
    start, annotated, pbmc = files
    assert main(["replay", str(tmp_path / "nope.h5ad"), str(annotated)]) == 2
    assert "file not found" in capsys.readouterr().err
    junk = tmp_path / "junk.h5ad"
    junk.write_text("not hdf5")
    assert main(["history", str(junk)]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert main(["history", str(start)]) == 3
    assert "no command history" in capsys.readouterr().err
    recs = [json.loads(r) for r in pbmc.uns["commands"]]
    recs[0]["version"] = "99.1.0"
    pbmc.uns["commands"] = [json.dumps(r) for r in recs]
    newer = tmp_path / "newer.h5ad"
    pbmc.write_h5ad(newer)
    assert main(["replay", str(start), str(newer)]) == 0  # a newer package, same format: readable
    capsys.readouterr()
    recs[0]["format"] = FORMAT + 1  # a newer format: refused with the upgrade hint
    pbmc.uns["commands"] = [json.dumps(r) for r in recs]
    pbmc.write_h5ad(newer)
    assert main(["replay", str(start), str(newer)]) == 4
    assert f"history format {FORMAT + 1}" in capsys.readouterr().err


def test_history_table_and_script(files, capsys):
    start, annotated, _ = files
    assert main(["history", str(annotated)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and "knn" in out[0] and "leiden" in out[1]
    assert main(["history", str(annotated), "--script", "--start-path", str(start)]) == 0
    script = capsys.readouterr().out
    compile(script, "history.py", "exec")
    assert "# step 1: leiden" in script and "resolution=0.6," in script


def test_export_labels(files, tmp_path, capsys):
    _, annotated, pbmc = files
    out = tmp_path / "labels.csv"
    assert main(["export", str(annotated), "--labels", "leiden", "-o", str(out)]) == 0
    df = pd.read_csv(out, index_col=0, dtype=str)
    assert list(df["leiden"]) == list(pbmc.obs["leiden"].astype(str))
    assert main(["export", str(annotated), "--labels", "nope", "-o", str(out)]) == 2
    assert "'nope' not found" in capsys.readouterr().err


def test_installed_entry_point(files):
    exe = shutil.which("exprmat-widgets")
    assert exe, "the console script is installed by the package"
    start, annotated, _ = files
    res = subprocess.run([exe, "replay", str(start), str(annotated)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "2 steps reproduced" in res.stdout
