"""derive_layer: the recorded way to make the linear layer cNMF needs."""

import numpy as np
import pytest
import scipy.sparse as sp

import exprmat_widgets as em


def _dense(x):
    return x.toarray() if sp.issparse(x) else np.asarray(x)


def test_derive_layer_values_and_replay(pbmc):
    start = pbmc.copy()
    em.derive_layer(pbmc, key_added="norm", source="X", transform="expm1")
    assert np.array_equal(_dense(pbmc.layers["norm"]), np.expm1(_dense(pbmc.X)))
    out = em.replay(start, pbmc)
    assert np.array_equal(_dense(out.layers["norm"]), _dense(pbmc.layers["norm"]))


def test_derive_layer_bad_input_changes_nothing(pbmc):
    with pytest.raises(em.ExprmatError, match="transform must be one of"):
        em.derive_layer(pbmc, key_added="norm", transform="exp")
    with pytest.raises(em.MissingKeyError, match="source layer 'nope' not found"):
        em.derive_layer(pbmc, key_added="norm", source="nope")
    assert "norm" not in pbmc.layers and "commands" not in pbmc.uns


def test_replay_error_names_a_change_by_hand(pbmc):
    start = pbmc.copy()
    pbmc.layers["norm"] = np.expm1(_dense(pbmc.X))  # by hand: not recorded
    em.derive_layer(pbmc, key_added="lin2", source="norm", transform="copy")
    with pytest.raises(em.ReplayError, match="step 0 \\(derive_layer\\).*changed by hand"):
        em.replay(start, pbmc)
