"""Exceptions raised by exprmat_widgets.

Every error names the problem and what to do about it.  All inherit from
``ValueError`` (or ``KeyError`` for missing keys) so callers that catch the
usual Python exceptions keep working.
"""


class ExprmatError(ValueError):
    """Bad input to a routine: the message says what is wrong and how to fix it."""


class MissingKeyError(ExprmatError, KeyError):
    """A key (obs column, embedding, layer, gene, cluster) does not exist."""

    def __str__(self):  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class ReplayError(ExprmatError):
    """A recorded step could not be replayed or did not reproduce its fingerprint."""

    def __init__(self, message, step=None, command=None):
        super().__init__(message)
        self.step = step
        self.command = command
