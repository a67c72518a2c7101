"""Where a job's spool lives, and its clean-up (daemon.pipeline.spool)."""

from __future__ import annotations

from pathlib import Path

from daemon.pipeline import spool
from tests.conftest import write_wav

SHA = "ab" * 32


def test_one_spool_per_job_attempt(tmp_path: Path) -> None:
    a1 = spool.spool_path(tmp_path, SHA, spool.job_key(7, 1))
    assert a1 == tmp_path / f"{SHA}.j7a1.pcm"
    others = {
        spool.spool_path(tmp_path, SHA, spool.job_key(7, 2)),  # the next attempt
        spool.spool_path(tmp_path, SHA, spool.job_key(8, 1)),  # another job, same content
    }
    assert a1 not in others and len(others) == 2


def test_stale_spools_go_and_live_attempts_keep_theirs(tmp_path: Path) -> None:
    import os

    names = {
        f"{SHA}.j1a2.pcm": True,  # a live attempt's spool (another daemon's, say): kept
        f"{SHA}.j1a1.pcm": False,  # the same job's earlier attempt (its worker died)
        f"{SHA}.j1a2.pcm.part": True,
        f"{SHA}.j2a1.pcm": False,  # its job ended
        f"{SHA}.j3a1.pcm.part": False,
        f"{SHA}.pcm": False,  # an older version's name
        f"{SHA}.p{os.getpid()}.pcm": True,  # a one-shot `transcribe` still running
        f"{SHA}.p999999999.pcm": False,  # ... and one that was killed
        "notes.txt": True,  # not ours
    }
    for name in names:
        (tmp_path / name).write_bytes(b"")
    assert spool.remove_stale(tmp_path, live={spool.job_key(1, 2)}) == 5
    assert {p.name for p in tmp_path.iterdir()} == {n for n, kept in names.items() if kept}
    spool.drop(tmp_path / f"{SHA}.j1a2.pcm")
    spool.drop(tmp_path / "missing.pcm")  # nothing to drop is fine
    assert not (tmp_path / f"{SHA}.j1a2.pcm").exists()


def test_a_missing_spool_is_decoded_again(tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "a.wav", 1.5)
    s = spool.Spool(spool.spool_path(tmp_path / "work", "a", "j1a1"), wav)
    samples = s.decode(lambda _block, _offset: None)
    first = s.read(0, samples)
    s.path.unlink()  # a resumed job on a machine whose work folder was cleaned
    assert (s.read(0, samples) == first).all() and s.path.exists()
