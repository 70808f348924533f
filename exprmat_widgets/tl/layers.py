"""Derived expression layers, recorded so a replay can rebuild them."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .. import _validate as v
from ..errors import ExprmatError, MissingKeyError
from ..history import command

__all__ = ["derive_layer"]

_TRANSFORMS = ("expm1", "log1p", "copy")


def _writes(p, adata):
    return [("layers", p["key_added"])]


@command("derive_layer", writes=_writes)
def derive_layer(adata, key_added: str = "norm", source: str = "X", transform: str = "expm1"):
    """Write ``layers[key_added]`` = ``transform(source)``.

    The tutorial's ``adata.layers['norm'] = np.expm1(adata.X)`` works too, but
    an assignment by hand is not in the history, so a replay cannot rebuild
    it; this command is the recorded equivalent.

    Parameters
    ----------
    adata
        Annotated data; reads ``X`` or ``layers[source]``, writes ``layers[key_added]``.
    key_added
        Layer to write.
    source
        ``'X'`` or the name of a layer to read.
    transform
        ``'expm1'`` (log-normalised -> linear normalised, what cNMF's ``tpm``
        needs), ``'log1p'`` or ``'copy'``.
    """
    v.new_key("key_added", key_added)
    if transform not in _TRANSFORMS:
        raise ExprmatError(f"transform must be one of {_TRANSFORMS}, got {transform!r}.")
    if source == "X":
        x = adata.X
    elif source in adata.layers:
        x = adata.layers[source]
    else:
        raise MissingKeyError(f"source layer {source!r} not found (have: X, {sorted(adata.layers.keys())}).")
    if x is None:
        raise ExprmatError("adata.X is empty; pass source='<layer>'.")
    if transform == "copy":
        out = x.copy()
    elif sp.issparse(x):
        out = x.copy()
        out.data = getattr(np, transform)(out.data)
    else:
        out = getattr(np, transform)(np.asarray(x))
    adata.layers[key_added] = out
