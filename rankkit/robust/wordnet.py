"""WordNet 3.0 through NLTK's reader, for synonym perturbation sets.

:func:`load_wordnet` returns an NLTK :class:`~nltk.corpus.reader.wordnet.WordNetCorpusReader`
from the first of these that exists:

1. the WordNet folder named by ``RANKKIT_WORDNET_DIR`` (an explicit choice: an error if it is
   not a WordNet dict folder);
2. NLTK's own data (``python -c "import nltk; nltk.download('wordnet')"``): ``corpora/wordnet``
   or ``corpora/wordnet.zip`` on ``nltk.data.path`` (which honours ``NLTK_DATA``);
3. a system WordNet dict folder (:data:`SYSTEM_WORDNET_DIRS`; Debian and Ubuntu's
   ``wordnet-base`` package installs ``/usr/share/wordnet``).

NLTK reads WordNet only from a folder that also holds a ``lexnames`` file, which the system
packages do not ship, and recent NLTK releases (3.10) open corpus files only inside the folders
of ``nltk.data.path``. For 1 and 3, a copy NLTK can read is therefore built once, at
``<cache>/nltk_data/corpora/wordnet/`` (``<cache>`` is ``cache_dir``, else ``RANKKIT_CACHE_DIR``),
and ``<cache>/nltk_data`` is appended to ``nltk.data.path`` to read it. The copy holds the data,
index and exception files, and a ``lexnames`` written from WordNet 3.0's fixed table of
lexicographer files (``lexnames(5WN)``; a source folder's own ``lexnames`` is kept), checked
against the lexicographer file number and part of speech of every synset in the data files.
It is built in a temporary folder beside its final place and renamed there, so a killed build
never leaves a half-written copy, and it is rebuilt when the source folder or its
``data.noun`` changes.

With none of them, :class:`WordNetMissingError` says how to install WordNet. Readers are cached
per folder, since loading one takes a second or two.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from rankkit import settings
from rankkit.errors import ConfigError

if TYPE_CHECKING:
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

__all__ = ["ENV_VAR", "LEXNAMES", "SYSTEM_WORDNET_DIRS", "WordNetMissingError", "load_wordnet",
           "wordnet_synonyms"]

log = logging.getLogger(__name__)

#: environment variable naming a WordNet dict folder (the one holding ``data.noun``, ``index.noun``, ...)
ENV_VAR = "RANKKIT_WORDNET_DIR"

#: system folders searched for a WordNet dict folder, in order, after NLTK's data path
SYSTEM_WORDNET_DIRS: tuple[str, ...] = (
    "/usr/share/wordnet",
    "/usr/share/wordnet/dict",
    "/usr/local/share/wordnet",
    "/usr/share/WordNet-3.0/dict",
    "/usr/local/WordNet-3.0/dict",
)

#: WordNet 3.0's lexicographer files, indexed by file number (``lexnames(5WN)``)
LEXNAMES: tuple[str, ...] = (
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact",
    "noun.attribute", "noun.body", "noun.cognition", "noun.communication", "noun.event", "noun.feeling",
    "noun.food", "noun.group", "noun.location", "noun.motive", "noun.object", "noun.person",
    "noun.phenomenon", "noun.plant", "noun.possession", "noun.process", "noun.quantity", "noun.relation",
    "noun.shape", "noun.state", "noun.substance", "noun.time", "verb.body", "verb.change", "verb.cognition",
    "verb.communication", "verb.competition", "verb.consumption", "verb.contact", "verb.creation",
    "verb.emotion", "verb.motion", "verb.perception", "verb.possession", "verb.social", "verb.stative",
    "verb.weather", "adj.ppl",
)

_POS = ("noun", "verb", "adj", "adv")
#: the syntactic category number of ``lexnames`` for each part of speech
_CATEGORY = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}
#: a data file's ``ss_type`` -> syntactic category (``s`` is an adjective satellite)
_SS_TYPE_CATEGORY = {b"n": 1, b"v": 2, b"a": 3, b"s": 3, b"r": 4}
_REQUIRED = tuple(f"{kind}.{pos}" for kind in ("data", "index") for pos in _POS) + tuple(f"{pos}.exc" for pos in _POS)
#: copied when present: NLTK opens them for sense keys (``lemma_from_key``) and counts (``Lemma.count``)
_OPTIONAL = ("index.sense", "cntlist.rev", "lexnames")
_MARKER = ".rankkit-source"
#: temporary build folders older than this are leftovers of a killed build
_STALE_S = 3600.0


class WordNetMissingError(ConfigError, LookupError):
    """WordNet is not installed where rankkit looks, or ``RANKKIT_WORDNET_DIR`` is not a WordNet folder.

    A :class:`~rankkit.errors.ConfigError`, and a ``LookupError`` like NLTK's own missing-resource
    error. The message says how to install WordNet and where rankkit looked.
    """


def load_wordnet(cache_dir: str | os.PathLike[str] | None = None) -> WordNetCorpusReader:
    """An NLTK WordNet reader, from ``RANKKIT_WORDNET_DIR``, NLTK's data or a system WordNet folder.

    ``cache_dir`` roots the NLTK-readable copy built from ``RANKKIT_WORDNET_DIR`` or a system
    folder (default: rankkit's cache folder, ``RANKKIT_CACHE_DIR`` or ``~/.cache/rankkit``); its
    ``nltk_data`` folder is then appended to ``nltk.data.path``. See the module docstring for the
    search order. Readers are cached per folder, so later calls are cheap.

    Raises:
        WordNetMissingError: WordNet was found nowhere (the message names both ways to install
            it and ``RANKKIT_WORDNET_DIR``), or ``RANKKIT_WORDNET_DIR`` is not a WordNet folder.
        ConfigError: a WordNet folder whose data files do not match WordNet 3.0's lexicographer files.
    """
    target = _copy_path(cache_dir)
    explicit = os.environ.get(ENV_VAR)
    if explicit:
        source = Path(explicit).expanduser()
        missing = _missing_files(source)
        if missing:
            raise WordNetMissingError(
                f"{ENV_VAR}={explicit} is not a WordNet dict folder: {', '.join(missing)} missing there. "
                f"Point it at the folder holding data.noun, index.noun, noun.exc, ... or unset it.")
        return _open_copy(target, _ensure_copy(source, target))
    found = _nltk_wordnet()
    if found is not None:
        return _open_reader(*found)
    source = _system_wordnet_dir()
    if source is not None:
        return _open_copy(target, _ensure_copy(source, target))
    token = _read_marker(target)
    if token is not None and not _missing_files(target):
        log.info("no WordNet source found; using the copy already built at %s", target)
        return _open_copy(target, token)
    raise WordNetMissingError(_missing_message())


def wordnet_synonyms(word: str, reader: WordNetCorpusReader) -> set[str]:
    """The single-word synonyms of ``word`` in WordNet: lemma names of all its synsets, lowercased.

    Every part of speech counts, and inflected forms are looked up by their base form
    (``reader.synsets`` applies NLTK's morphy), so ``"cars"`` gives the synonyms of ``"car"``.
    Only alphabetic names are kept (no multi-word ``_`` lemmas, hyphens, apostrophes or digits),
    and ``word`` itself (case-insensitively) is left out. An unknown word gives an empty set.
    """
    key = word.strip().lower()
    if not key:
        return set()
    names: set[str] = set()
    for synset in reader.synsets(key):
        for name in synset.lemma_names():
            name = name.lower()
            if name.isalpha() and name != key:
                names.add(name)
    return names


# --- finding WordNet -----------------------------------------------------------------------------


def _copy_path(cache_dir: str | os.PathLike[str] | None) -> Path:
    root = Path(cache_dir).expanduser() if cache_dir is not None else settings.cache_dir()
    return root / "nltk_data" / "corpora" / "wordnet"


def _nltk_wordnet() -> tuple[str, str | None] | None:
    """``(folder, None)`` or ``(zip file, entry)`` of WordNet on NLTK's data path, or ``None``."""
    import nltk.data

    for resource in ("corpora/wordnet", "corpora/wordnet.zip/wordnet/"):
        try:
            pointer = nltk.data.find(resource)
        except LookupError:
            continue
        if isinstance(pointer, nltk.data.ZipFilePathPointer):
            return str(pointer.zipfile.filename), str(pointer.entry)
        if (Path(pointer.path) / _MARKER).is_file():
            continue  # a copy rankkit built (its folder was added to nltk.data.path): managed below
        return str(pointer.path), None
    return None


def _system_dirs() -> list[Path]:
    return [Path(p) for p in SYSTEM_WORDNET_DIRS]


def _system_wordnet_dir() -> Path | None:
    """The first of :data:`SYSTEM_WORDNET_DIRS` holding a complete WordNet dict, or ``None``."""
    for path in _system_dirs():
        if path.is_dir() and not _missing_files(path):
            return path
    return None


def _missing_files(path: Path) -> list[str]:
    return [name for name in _REQUIRED if not (path / name).is_file()]


def _missing_message() -> str:
    import nltk.data

    searched = [f"NLTK data path ({', '.join(map(str, nltk.data.path))}) for corpora/wordnet",
                *(str(p) for p in _system_dirs())]
    return ("WordNet was not found; rankkit's robustness module needs WordNet 3.0. Install it with either\n"
            "  python -c \"import nltk; nltk.download('wordnet')\"\n"
            "or, on Debian or Ubuntu (as root),\n"
            "  apt-get install wordnet-base wordnet-sense-index\n"
            f"or set {ENV_VAR} to a WordNet dict folder (the one holding data.noun, index.noun, noun.exc, ...).\n"
            "Searched: " + "; ".join(searched) + ".")


# --- the NLTK-readable copy ----------------------------------------------------------------------


def _source_token(source: Path) -> str:
    """What identifies a source folder's content: its resolved path and ``data.noun``'s size and mtime."""
    resolved = source.resolve()
    stat = (resolved / "data.noun").stat()
    return f"{resolved}\n{stat.st_size}\n{stat.st_mtime_ns}\n"


def _read_marker(target: Path) -> str | None:
    try:
        return (target / _MARKER).read_text(encoding="utf-8")
    except OSError:
        return None


def _ensure_copy(source: Path, target: Path) -> str:
    """Build (or reuse) the NLTK-readable copy of ``source`` at ``target``; returns its source token."""
    token = _source_token(source)
    if _read_marker(target) == token and not _missing_files(target):
        return token
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_builds(target)
    log.info("building an NLTK-readable copy of WordNet from %s at %s (once)", source, target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    old: Path | None = None
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; the copy is as readable as the files it holds
        _build_copy(source, tmp)
        (tmp / _MARKER).write_text(token, encoding="utf-8")
        if target.exists():
            if _read_marker(target) == token and not _missing_files(target):  # another process finished first
                shutil.rmtree(tmp, ignore_errors=True)
                return token
            old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
            os.replace(target, old)
        try:
            os.replace(tmp, target)
        except OSError:
            # another process renamed its copy into place between our check and our rename
            if _read_marker(target) != token or _missing_files(target):
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return token


def _remove_stale_builds(target: Path) -> None:
    """Remove temporary folders left beside ``target`` by builds killed more than an hour ago."""
    now = time.time()
    for path in target.parent.glob(f".{target.name}.*"):
        with contextlib.suppress(OSError):
            if path.is_dir() and now - path.stat().st_mtime > _STALE_S:
                shutil.rmtree(path, ignore_errors=True)


def _build_copy(source: Path, dest: Path) -> None:
    """Copy ``source``'s WordNet files into ``dest``, write ``lexnames`` if absent, and check it."""
    for name in (*_REQUIRED, *_OPTIONAL):
        if (source / name).is_file():
            shutil.copyfile(source / name, dest / name)
    if not (dest / "lexnames").is_file():
        (dest / "lexnames").write_text(_lexnames_text(), encoding="ascii")
    _check_lexnames(dest)


def _lexnames_text(names: Iterable[str] = LEXNAMES) -> str:
    """The ``lexnames`` file for ``names``: ``NN<TAB>name<TAB>category`` lines (1 noun, 2 verb, 3 adj, 4 adv)."""
    return "".join(f"{number:02d}\t{name}\t{_CATEGORY[name.split('.')[0]]}\n" for number, name in enumerate(names))


def _check_lexnames(folder: str | os.PathLike[str]) -> None:
    """Check that ``folder/lexnames`` names every lexicographer file the data files use, with the right category.

    Each synset of ``data.<pos>`` gives a lexicographer file number and a part of speech; the
    number must be a line of ``lexnames`` whose category and name prefix match that part of speech.

    Raises:
        ConfigError: naming the file and line (or the data file and synset offset) that disagree.
    """
    folder = Path(folder)
    lexnames = folder / "lexnames"
    categories: list[tuple[str, int]] = []
    for line_no, line in enumerate(lexnames.read_text(encoding="utf-8").splitlines(), start=1):
        fields = line.split()
        if len(fields) != 3 or not fields[0].isdigit() or int(fields[0]) != line_no - 1 \
                or fields[2] not in {"1", "2", "3", "4"} or _CATEGORY.get(fields[1].split(".")[0]) != int(fields[2]):
            raise ConfigError(f"{lexnames}:{line_no}: not a lexnames line for file number {line_no - 1}: {line!r}")
        categories.append((fields[1], int(fields[2])))
    for pos in _POS:
        data = folder / f"data.{pos}"
        seen: dict[tuple[int, bytes], bytes] = {}
        with data.open("rb") as fh:
            for line in fh:
                if line.startswith(b"  "):  # the license header
                    continue
                fields = line.split(b" ", 3)
                if len(fields) >= 3 and fields[1].isdigit():
                    seen.setdefault((int(fields[1]), fields[2]), fields[0])
        for (number, ss_type), offset in sorted(seen.items()):
            expected = _SS_TYPE_CATEGORY.get(ss_type)
            if number >= len(categories) or expected is None or categories[number][1] != expected \
                    or _CATEGORY[pos] != expected:
                name = categories[number][0] if number < len(categories) else "no such line"
                raise ConfigError(
                    f"{data}: synset {offset.decode('ascii', 'replace')} has lexicographer file {number:02d} "
                    f"({name} in {lexnames}) and type {ss_type.decode('ascii', 'replace')!r}, which disagree")


def _open_copy(target: Path, token: str) -> WordNetCorpusReader:
    """The reader of the copy at ``target``, after adding its NLTK data folder to ``nltk.data.path``.

    NLTK 3.9+ opens corpus files only under the folders on its data path, so the copy's
    ``nltk_data`` folder (``target/../..``) is appended there if it is not on it yet.
    """
    import nltk.data

    data_root = target.parent.parent.resolve()
    if not any(isinstance(p, str) and Path(p).expanduser().resolve() == data_root for p in nltk.data.path):
        nltk.data.path.append(str(data_root))
    return _open_reader(str(target), token=token)


@functools.cache
def _open_reader(root: str, zip_entry: str | None = None, token: str = "") -> WordNetCorpusReader:
    """The NLTK reader of the WordNet folder ``root``, or of the folder ``zip_entry`` in the zip file ``root``.

    ``token`` is a built copy's source token, so that a copy rebuilt in place gets a new reader.
    """
    from nltk.data import ZipFilePathPointer

    location = ZipFilePathPointer(root, zip_entry) if zip_entry is not None else root
    with warnings.catch_warnings():  # "multilingual functions are not available": English only here
        warnings.simplefilter("ignore", UserWarning)
        return _reader_class()(location, None)


@functools.lru_cache(maxsize=1)
def _reader_class() -> type[WordNetCorpusReader]:
    """NLTK's WordNet reader, minus its load-time map from NLTK's WordNet 3.0 when the data is 3.0 itself.

    The reader maps NLTK's ``wordnet`` corpus (WordNet 3.0) onto the loaded one for
    multilingual (OMW) lookups, by reading both ``index.sense`` files: more than half of the
    loading time, for an identity map when the loaded WordNet is 3.0 (and OMW is not used here).
    """
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    class _WordNetReader(WordNetCorpusReader):
        def map_wn(self, *args: object, **kwargs: object) -> dict[str, str] | None:
            if not args and not kwargs and self.get_version() == "3.0":
                return None
            return super().map_wn(*args, **kwargs)

    return _WordNetReader
