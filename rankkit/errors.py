"""Exceptions raised by rankkit.

Every error a user can cause with bad input derives from :class:`RankkitError`, so a
CLI or notebook can catch one type. Messages always name the offending file, line or
key, so the fix is obvious without a traceback.
"""

from __future__ import annotations


class RankkitError(Exception):
    """Base class of every error rankkit raises for bad input or bad state."""


class FormatError(RankkitError, ValueError):
    """A file does not follow its format (TREC run, qrels, JSONL, YAML).

    The message names the file and, where it applies, the 1-based line number.
    """

    def __init__(self, message: str, path: object = None, line: int | None = None) -> None:
        where = ""
        if path is not None:
            where = f"{path}"
            if line is not None:
                where += f":{line}"
            where += ": "
        super().__init__(where + message)
        self.path = path
        self.line = line


class ConfigError(RankkitError, ValueError):
    """A configuration (YAML file or keyword arguments) has an unknown or invalid key."""


class EvaluationError(ConfigError):
    """Inputs that cannot be evaluated: empty qrels, a run with no result for any judged query, an unknown metric.

    A :class:`ConfigError` (and so a ``ValueError``), so handlers written for the
    earlier empty-qrels error keep working. The message names the run, the counts or the metric.
    """


class DatasetError(RankkitError, KeyError):
    """A dataset id or path cannot be resolved, or its content is inconsistent."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class IndexMissingError(RankkitError, FileNotFoundError):
    """An index was asked for by path but is absent or incomplete on disk."""


class IndexNotTrainedError(ConfigError):
    """An approximate index that needs training (IVF) was searched or added to before ``train``.

    A :class:`ConfigError` (and so a ``ValueError``); the message names the index kind and
    says to call ``train(sample_vectors)`` first.
    """
