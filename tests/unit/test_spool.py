"""Where a job's spool lives, and its clean-up (daemon.pipeline.spool)."""

from __future__ import annotations

from pathlib import Path

from daemon.pipeline import spool
from tests.conftest import write_wav


def test_spool_path_is_one_place(tmp_path: Path) -> None:
    assert spool.spool_path(tmp_path, "ab" * 32) == tmp_path / f"{'ab' * 32}.pcm"
    assert spool.spool_path(tmp_path, "a") != spool.spool_path(tmp_path, "b")


def test_drop_and_remove_partials(tmp_path: Path) -> None:
    done = spool.spool_path(tmp_path, "a")
    done.write_bytes(b"\0\0")
    spool.drop(tmp_path, "a")
    spool.drop(tmp_path, "missing")  # nothing to drop is fine
    assert not done.exists()
    for name in ("x.pcm.part", "y.pcm.part"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "keep.pcm").write_bytes(b"")
    assert spool.remove_partials(tmp_path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.pcm"]


def test_a_missing_spool_is_decoded_again(tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "a.wav", 1.5)
    s = spool.Spool(spool.spool_path(tmp_path / "work", "a"), wav)
    samples = s.decode(lambda _block, _offset: None)
    first = s.read(0, samples)
    s.path.unlink()  # a resumed job on a machine whose work folder was cleaned
    assert (s.read(0, samples) == first).all() and s.path.exists()
