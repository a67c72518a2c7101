"""Export folders of earlier export versions leave the model cache once the current one is
verified and they have gone a week unused, temporary folders of exports that died after a day;
nothing else in the cache is touched."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from daemon.modelstore import file_sha256
from daemon.pipeline import onnx

NOW = 1_000_000_000.0
WEEK = onnx.UNUSED_SECONDS
DAY = onnx.ABANDONED_SECONDS


def test_stale_exports_are_earlier_versions_unused_for_a_week() -> None:
    old = NOW - WEEK
    entries = [
        ("diarization-onnx-v1-segaaaa-embbbbb", old),
        ("diarization-onnx-v1-segcccc-embdddd", NOW - WEEK + 60),  # used this week: kept
        ("diarization-onnx-v2-segaaaa-embbbbb", old),
        ("diarization-onnx-v2-segcccc-embdddd", old),  # other checkpoints, this version: kept
        ("diarization-onnx-v3-segaaaa-embbbbb", old),  # a later version (a newer worker): kept
        ("diarization-onnx-vx-segaaaa-embbbbb", old),  # not ours
        ("whisper-base-1a2b", old),
        ("diarization-onnx-v1-segaaaa-embbbbb.tar", old),
        (".diarization-onnx-v2-segaaaa-embbbbb.k3j_x9", NOW - DAY),  # an export that died
        (".diarization-onnx-v2-segaaaa-embbbbb.p0q2z1", NOW - DAY + 60),  # may be writing
        (".diarization-onnx-v2-segaaaa-embbbbb", old),  # not a temporary folder's name
    ]
    assert onnx.stale_exports(entries, NOW, 2) == [
        "diarization-onnx-v1-segaaaa-embbbbb",
        ".diarization-onnx-v2-segaaaa-embbbbb.k3j_x9",
    ]
    assert onnx.stale_exports(entries, NOW, 1) == [".diarization-onnx-v2-segaaaa-embbbbb.k3j_x9"]


def fake_export(folder: Path) -> None:
    """A folder that verifies (the files are not networks: nothing here loads them)."""
    folder.mkdir(parents=True)
    for name in onnx.FILES:
        (folder / name).write_bytes(name.encode())
    files = {name: file_sha256(folder / name) for name in onnx.FILES}
    (folder / onnx.MARKER).write_text(json.dumps({"files": files}), encoding="utf-8")


def test_a_verified_export_removes_stale_folders_and_nothing_else(tmp_path: Path) -> None:
    current = onnx.export_folder(tmp_path, "a" * 64, "b" * 64)
    fake_export(current)
    week_ago = time.time() - WEEK - 60
    older = tmp_path / f"diarization-onnx-v{onnx.EXPORT_VERSION - 1}-segaaaa-embbbbb"
    fake_export(older)
    os.utime(older, (week_ago, week_ago))
    recent = tmp_path / f"diarization-onnx-v{onnx.EXPORT_VERSION - 1}-segcccc-embdddd"
    fake_export(recent)  # an earlier version's export that a running worker made this week
    other = tmp_path / "joined-whisper-base"
    other.mkdir()
    (other / "model.bin").write_bytes(b"x")
    os.utime(other, (week_ago, week_ago))
    dead = tmp_path / f".{current.name}.dead"  # a temporary folder of an export that died
    dead.mkdir()
    os.utime(dead, (week_ago, week_ago))
    writing = tmp_path / f".{current.name}.live"  # one that may still be writing
    writing.mkdir()

    assert onnx.ensure_exported(current, None, None) == current  # verified: nothing exported
    assert not older.exists()
    assert not dead.exists()
    assert recent.exists()
    assert writing.exists()
    assert (other / "model.bin").exists()
    assert onnx.verified(current)
