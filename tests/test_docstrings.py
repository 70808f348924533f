"""Every public routine documents its parameters (and its return value) in numpydoc form.

The public routines are those of ``em.tl.__all__``, ``em.pl.__all__``, the history API
(``em.history``, ``em.replay``, ``em.undo``, ``em.history_to_script``), the loaders of
``em.datasets.__all__`` and the experiment API (``em.load_experiment``,
``em.experiment.example_experiment``, ``Experiment`` and its public methods).
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap

import pytest

import exprmat_widgets as em
from exprmat_widgets import experiment

_HEADER_RULE = re.compile(r"^-{3,}\s*$")
# a parameter line of numpydoc: `name`, `name : type`, `a, b : type`, `*args`, `**kwargs`
_PARAM_LINE = re.compile(r"^(\*{0,2}[A-Za-z_]\w*(?:\s*,\s*\*{0,2}[A-Za-z_]\w*)*)\s*(?::.*)?$")


def _public_routines():
    out = {}
    for name in em.tl.__all__:
        out[f"tl.{name}"] = getattr(em.tl, name)
    for name in em.pl.__all__:
        out[f"pl.{name}"] = getattr(em.pl, name)
    for name in ("history", "replay", "undo", "history_to_script", "read_lazy"):
        out[name] = getattr(em, name)
    for name in em.datasets.__all__:
        out[f"datasets.{name}"] = getattr(em.datasets, name)
    out["load_experiment"] = em.load_experiment
    out["example_experiment"] = experiment.example_experiment
    # numpydoc documents a constructor's parameters in the class docstring
    out["Experiment"] = experiment.Experiment
    for name, member in vars(experiment.Experiment).items():
        if isinstance(member, (classmethod, staticmethod)):
            member = member.__func__
        if not name.startswith("_") and inspect.isfunction(member):
            out[f"Experiment.{name}"] = member
    return out


ROUTINES = _public_routines()


def _sections(doc: str) -> dict[str, list[str]]:
    """numpydoc sections of a docstring: ``{title: lines}`` (lines dedented)."""
    lines = inspect.cleandoc(doc).splitlines()
    sections, title = {"": []}, ""
    i = 0
    while i < len(lines):
        if i + 1 < len(lines) and lines[i].strip() and _HEADER_RULE.match(lines[i + 1]):
            title = lines[i].strip()
            sections[title] = []
            i += 2
            continue
        sections[title].append(lines[i])
        i += 1
    return sections


def documented_parameters(doc: str) -> list[str]:
    """Names on the parameter lines (column 0) of the ``Parameters`` section."""
    names = []
    for line in textwrap.dedent("\n".join(_sections(doc).get("Parameters", []))).splitlines():
        if not line or line[0].isspace():
            continue
        m = _PARAM_LINE.match(line.rstrip())
        assert m, f"not a numpydoc parameter line: {line!r}"
        names += [n.strip() for n in m.group(1).split(",")]
    return names


def signature_parameters(obj) -> list[str]:
    target = obj.__init__ if inspect.isclass(obj) else obj
    out = []
    for p in inspect.signature(target).parameters.values():
        if p.name in ("self", "cls"):
            continue
        prefix = {p.VAR_POSITIONAL: "*", p.VAR_KEYWORD: "**"}.get(p.kind, "")
        out.append(prefix + p.name)
    return out


def returns_value(obj) -> bool:
    """Whether the function's own body has a ``return <something>`` (nested functions aside)."""
    if inspect.isclass(obj):
        return False
    func = inspect.unwrap(obj)
    tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
    root = tree.body[0]

    def walk(node):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
                continue
            value = child.value if isinstance(child, ast.Return) else None
            if value is not None and not (isinstance(value, ast.Constant) and value.value is None):
                return True
            if walk(child):
                return True
        return False

    return walk(root)


def _doc(obj) -> str:
    doc = inspect.getdoc(obj)
    assert doc, "no docstring"
    return doc


def test_parser_reads_numpydoc():
    doc = '''Summary.

    Parameters
    ----------
    adata
        The data.
    a, b : int
        Two.
    **kwargs
        Passed on; a line ``like : this`` in a description is not a parameter.

    Returns
    -------
    int
        Something.
    '''
    assert documented_parameters(doc) == ["adata", "a", "b", "**kwargs"]
    assert "Returns" in _sections(doc)
    assert documented_parameters("Summary without sections.") == []


def test_routine_list_is_complete():
    # guards the walk: a broken collection would make every other test pass vacuously
    assert len(ROUTINES) > 40
    expected = {"tl.leiden", "pl.plot_embedding", "undo", "datasets.mouse_10k", "Experiment.save",
                "Experiment.from_samples"}
    assert expected <= set(ROUTINES)


@pytest.mark.parametrize("name", sorted(ROUTINES))
def test_parameters_documented(name):
    obj = ROUTINES[name]
    doc = _doc(obj)
    in_sig = signature_parameters(obj)
    in_doc = documented_parameters(doc)
    if in_sig:
        assert "Parameters" in _sections(doc), f"{name}: no numpydoc 'Parameters' section"
    missing = [p for p in in_sig if p not in in_doc]
    extra = [p for p in in_doc if p not in in_sig]
    assert not missing, f"{name}: parameters not documented: {missing}"
    assert not extra, f"{name}: documented but not in the signature: {extra}"
    assert len(in_doc) == len(set(in_doc)), f"{name}: a parameter documented twice: {in_doc}"


@pytest.mark.parametrize("name", sorted(ROUTINES))
def test_returns_documented(name):
    obj = ROUTINES[name]
    if returns_value(obj):
        assert "Returns" in _sections(_doc(obj)), f"{name}: returns a value but has no 'Returns' section"
