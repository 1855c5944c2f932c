"""WordNet through NLTK (rankkit.robust.wordnet), on the real WordNet 3.0 database.

WordNet comes from ``RANKKIT_WORDNET_DIR``, NLTK's data (``nltk.download('wordnet')``) or the
Debian ``wordnet-base`` package (``.ci/run`` installs it). Without any of them the tests that
read it are skipped locally, but fail under CI. The test of the error raised when WordNet is
missing needs no WordNet.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import time
import zipfile
from pathlib import Path

import nltk.data
import pytest

from rankkit.errors import ConfigError
from rankkit.robust import wordnet as wn
from rankkit.robust.wordnet import WordNetMissingError, load_wordnet, wordnet_synonyms

#: a data file's ss_type -> the part of speech its lexicographer file must be named for
POS_PREFIX = {"n": "noun", "v": "verb", "a": "adj", "s": "adj", "r": "adv"}
LEXNAMES_MAN_PAGE = Path("/usr/share/man/man5/lexnames.5WN.gz")


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"WordNet is missing in CI: {reason}")
    pytest.skip("WordNet is not installed (apt-get install wordnet-base wordnet-sense-index, "
                "or python -c \"import nltk; nltk.download('wordnet')\")")


@pytest.fixture(scope="module")
def reader():
    """WordNet as rankkit finds it by default (the copy lands in the session's RANKKIT_CACHE_DIR)."""
    try:
        return load_wordnet()
    except WordNetMissingError as exc:
        _missing(str(exc))


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A WordNet dict folder to build copies from: RANKKIT_WORDNET_DIR, a system folder or NLTK's data."""
    if os.environ.get(wn.ENV_VAR):
        path = Path(os.environ[wn.ENV_VAR])
        if wn._missing_files(path):
            _missing(f"{wn.ENV_VAR}={path} lacks {', '.join(wn._missing_files(path))}")
        return path
    found = wn._system_wordnet_dir()
    if found is not None:
        return found
    nltk_found = wn._nltk_wordnet()
    if nltk_found is None:
        _missing("no WordNet dict folder in RANKKIT_WORDNET_DIR, the system folders or NLTK's data")
    root, entry = nltk_found
    if entry is None:
        return Path(root)
    out = tmp_path_factory.mktemp("wordnet-source")
    with zipfile.ZipFile(root) as archive:
        for name in archive.namelist():
            if name.startswith(entry) and not name.endswith("/"):
                (out / name[len(entry):]).write_bytes(archive.read(name))
    return out


def test_reads_wordnet_and_gives_single_word_synonyms(reader) -> None:
    synonyms = wordnet_synonyms("car", reader)
    assert {"automobile", "auto", "motorcar"} <= synonyms
    assert "car" not in synonyms
    assert all(name.isalpha() and name == name.lower() for name in synonyms)
    assert "automobile" in wordnet_synonyms("Cars", reader)  # case and inflection (morphy)
    assert "quick" in wordnet_synonyms("quickly", reader)  # adverbs count too
    # multi-word, hyphenated and digit lemmas are left out
    assert "domestic_dog" in reader.synset("dog.n.01").lemma_names()
    assert not any("_" in name for name in wordnet_synonyms("dog", reader))
    assert wordnet_synonyms("qwzxqwzx", reader) == set()
    assert wordnet_synonyms("  ", reader) == set()


def test_lexnames_resolve_for_every_synset(reader) -> None:
    assert reader.get_version() == "3.0"
    known = {"dog.n.01": "noun.animal", "car.n.01": "noun.artifact", "run.v.01": "verb.motion",
             "good.a.01": "adj.all", "quickly.r.01": "adv.all", "rain.v.01": "verb.weather"}
    assert {name: reader.synset(name).lexname() for name in known} == known

    with reader.root.join("lexnames").open() as fh:
        lines = fh.read().decode("ascii").splitlines()
    assert [int(line.split("\t")[0]) for line in lines] == list(range(len(lines)))
    names = [line.split("\t")[1] for line in lines]
    # every (lexicographer file, synset type) pair of the data files names an existing line of the
    # right part of speech, and the reader gives that name to a synset of the pair
    for pos in ("noun", "verb", "adj", "adv"):
        first: dict[tuple[int, str], int] = {}
        with reader.root.join(f"data.{pos}").open() as fh:
            for line in fh:
                if not line.startswith(b"  "):
                    offset, number, ss_type = line.split(b" ", 3)[:3]
                    first.setdefault((int(number), ss_type.decode()), int(offset))
        assert first, f"no synsets in data.{pos}"
        for (number, ss_type), offset in first.items():
            assert number < len(names), f"data.{pos}: lexicographer file {number} is not in lexnames"
            assert names[number].split(".")[0] == POS_PREFIX[ss_type] == pos, (pos, number, ss_type)
            assert reader.synset_from_pos_and_offset(ss_type, offset).lexname() == names[number]


def test_generated_lexnames_match_the_wordnet_documentation() -> None:
    text = wn._lexnames_text()
    assert text.splitlines()[:3] == ["00\tadj.all\t3", "01\tadj.pert\t3", "02\tadv.all\t4"]
    assert text.splitlines()[-1] == "44\tadj.ppl\t3"
    assert len(wn.LEXNAMES) == 45
    if LEXNAMES_MAN_PAGE.is_file():  # lexnames(5WN), shipped by wordnet-base
        with gzip.open(LEXNAMES_MAN_PAGE, "rt") as fh:
            table = re.findall(r"^(\d\d)\t(\S+)\s*\t", fh.read(), flags=re.MULTILINE)
        assert [name for _, name in table] == list(wn.LEXNAMES)
        assert [int(number) for number, _ in table] == list(range(45))


def test_missing_wordnet_names_both_remedies(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def not_found(resource: str, *args: object, **kwargs: object) -> None:
        raise LookupError(resource)

    monkeypatch.delenv(wn.ENV_VAR, raising=False)
    monkeypatch.setattr(wn, "SYSTEM_WORDNET_DIRS", (str(tmp_path / "nowhere"),))
    monkeypatch.setattr(nltk.data, "find", not_found)
    with pytest.raises(WordNetMissingError) as info:
        load_wordnet(tmp_path / "cache")
    message = str(info.value)
    assert "python -c \"import nltk; nltk.download('wordnet')\"" in message
    assert "apt-get install wordnet-base wordnet-sense-index" in message
    assert wn.ENV_VAR in message and str(tmp_path / "nowhere") in message
    assert isinstance(info.value, ConfigError) and isinstance(info.value, LookupError)
    assert not (tmp_path / "cache" / "nltk_data" / "corpora" / "wordnet").exists()

    # an explicit RANKKIT_WORDNET_DIR that is not a WordNet folder is an error, not a fallback
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv(wn.ENV_VAR, str(tmp_path / "empty"))
    with pytest.raises(WordNetMissingError, match=r"data\.noun"):
        load_wordnet(tmp_path / "cache")


def test_build_is_atomic_reused_and_redone_when_the_source_changes(
        source: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(wn.ENV_VAR, str(source))
    corpora = tmp_path / "cache" / "nltk_data" / "corpora"
    corpora.mkdir(parents=True)
    stale, recent = corpora / ".wordnet.killed", corpora / ".wordnet.building"  # a killed build, a running one
    stale.mkdir()
    recent.mkdir()
    os.utime(stale, (time.time() - 2 * 3600,) * 2)

    first = load_wordnet(tmp_path / "cache")
    assert sorted(p.name for p in corpora.iterdir()) == [".wordnet.building", "wordnet"]
    copy = corpora / "wordnet"
    assert Path(str(first.root)) == copy
    assert (copy / "lexnames").is_file() and (copy / "data.noun").stat().st_size == (source / "data.noun").stat().st_size
    assert "automobile" in wordnet_synonyms("car", first)

    def no_rebuild(*args: object) -> None:
        raise AssertionError("the copy was rebuilt")

    monkeypatch.setattr(wn, "_build_copy", no_rebuild)
    assert load_wordnet(tmp_path / "cache") is first
    monkeypatch.undo()
    monkeypatch.setenv(wn.ENV_VAR, str(source))

    # another source folder (RANKKIT_WORDNET_DIR changed): the copy is replaced, and read anew
    other = tmp_path / "other"
    other.mkdir()
    for name in (*wn._REQUIRED, "lexnames"):
        if (source / name).is_file():
            shutil.copyfile(source / name, other / name)
    monkeypatch.setenv(wn.ENV_VAR, str(other))
    second = load_wordnet(tmp_path / "cache")
    assert second is not first and "automobile" in wordnet_synonyms("car", second)
    assert sorted(p.name for p in corpora.iterdir()) == [".wordnet.building", "wordnet"]
    assert (copy / wn._MARKER).read_text(encoding="utf-8") == wn._source_token(other)


def test_failed_build_leaves_nothing(source: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def broken(folder: object) -> None:
        raise ConfigError("lexnames disagree")

    monkeypatch.setenv(wn.ENV_VAR, str(source))
    monkeypatch.setattr(wn, "_check_lexnames", broken)
    with pytest.raises(ConfigError, match="lexnames disagree"):
        load_wordnet(tmp_path / "cache")
    assert list((tmp_path / "cache" / "nltk_data" / "corpora").iterdir()) == []


def test_reads_nltk_data_first(source: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """WordNet in an NLTK data folder (what nltk.download leaves) is read in place, with no copy."""
    folder = tmp_path / "nltk_data" / "corpora" / "wordnet"
    folder.mkdir(parents=True)
    for name in (*wn._REQUIRED, "lexnames"):
        if (source / name).is_file():
            shutil.copyfile(source / name, folder / name)
    if not (folder / "lexnames").is_file():
        (folder / "lexnames").write_text(wn._lexnames_text(), encoding="ascii")
    monkeypatch.delenv(wn.ENV_VAR, raising=False)
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path / "nltk_data")])
    monkeypatch.setattr(wn, "SYSTEM_WORDNET_DIRS", ())
    found = load_wordnet(tmp_path / "cache")
    assert Path(str(found.root)) == folder
    assert found.synset("dog.n.01").lexname() == "noun.animal"
    assert not (tmp_path / "cache").exists()
