"""The CLI's error contract: bad input is one line and exit 2; an internal error is one line,
exit 1 and a traceback file; ``-vv`` shows the traceback instead."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rankkit import cli
from rankkit.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def _main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], exc: BaseException,
          verbosity: int = 0) -> tuple[int, str]:
    def boom(*args: object, **kwargs: object) -> None:
        raise exc

    monkeypatch.setattr(cli, "app", boom)
    monkeypatch.setattr(cli, "_VERBOSITY", verbosity)
    with pytest.raises(SystemExit) as info:
        cli.main()
    return int(info.value.code), capsys.readouterr().err


def test_rankkit_error_is_one_line_and_exit_2(monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _main(monkeypatch, capsys, ConfigError("a.yaml: lr: expected > 0\nb.yaml: epochs: bad"))
    assert code == 2
    assert err.strip() == "error: a.yaml: lr: expected > 0; b.yaml: epochs: bad"


def test_os_error_is_one_line_and_exit_2(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _main(monkeypatch, capsys, IsADirectoryError(21, "Is a directory", "pipelines"))
    assert code == 2 and err.count("\n") == 1 and "pipelines" in err


def test_internal_error_writes_traceback_file(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                              tmp_path: Path) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    code, err = _main(monkeypatch, capsys, RuntimeError("kaput"))
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("internal error: RuntimeError: kaput (full traceback: ")
    files = list(tmp_path.glob("rankkit-error-*.txt"))
    assert len(files) == 1 and "RuntimeError: kaput" in files[0].read_text()


def test_vv_shows_the_traceback(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("kaput")

    monkeypatch.setattr(cli, "app", boom)
    monkeypatch.setattr(cli, "_VERBOSITY", 2)
    with pytest.raises(RuntimeError, match="kaput"):
        cli.main()


def test_bad_input_through_the_installed_command(tmp_path: Path) -> None:
    """A real command on a malformed run file: one line, exit 2, no traceback."""
    run = tmp_path / "run.trec"
    run.write_bytes(b"q1 Q0 d1 1 \xff\xfe 1.0 x\n")
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("q1 0 d1 1\n")
    proc = subprocess.run([sys.executable, "-m", "rankkit.cli", "eval", str(run), "--qrels", str(qrels)],
                          capture_output=True, text=True, cwd=ROOT, env=os.environ.copy(), timeout=300, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.strip().count("\n") == 0
    assert str(run) in proc.stderr
