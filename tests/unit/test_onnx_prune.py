"""Export folders of earlier export versions leave the model cache once the current one is
verified; nothing else in the cache is touched."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from daemon.modelstore import file_sha256
from daemon.pipeline import onnx


def test_stale_exports_are_earlier_versions_only() -> None:
    names = [
        "diarization-onnx-v1-segaaaa-embbbbb",
        "diarization-onnx-v2-segaaaa-embbbbb",
        "diarization-onnx-v2-segcccc-embdddd",  # other checkpoints, this version: kept
        "diarization-onnx-v3-segaaaa-embbbbb",  # a later version (a newer worker): kept
        "diarization-onnx-vx-segaaaa-embbbbb",  # not ours
        "whisper-base-1a2b",
        "diarization-onnx-v1-segaaaa-embbbbb.tar",
    ]
    assert onnx.stale_exports(names, 2) == ["diarization-onnx-v1-segaaaa-embbbbb"]
    assert onnx.stale_exports(names, 1) == []


def fake_export(folder: Path) -> None:
    """A folder that verifies (the files are not networks: nothing here loads them)."""
    folder.mkdir(parents=True)
    for name in onnx.FILES:
        (folder / name).write_bytes(name.encode())
    files = {name: file_sha256(folder / name) for name in onnx.FILES}
    (folder / onnx.MARKER).write_text(json.dumps({"files": files}), encoding="utf-8")


def test_a_verified_export_removes_earlier_versions_and_nothing_else(tmp_path: Path) -> None:
    current = onnx.export_folder(tmp_path, "a" * 64, "b" * 64)
    fake_export(current)
    older = tmp_path / f"diarization-onnx-v{onnx.EXPORT_VERSION - 1}-segaaaa-embbbbb"
    fake_export(older)
    other = tmp_path / "joined-whisper-base"
    other.mkdir()
    (other / "model.bin").write_bytes(b"x")
    # a temporary folder of an export that died, and one that may still be writing
    dead = tmp_path / f".{current.name}.dead"
    dead.mkdir()
    old = time.time() - 2 * onnx.ABANDONED_SECONDS
    os.utime(dead, (old, old))
    writing = tmp_path / f".{current.name}.live"
    writing.mkdir()

    assert onnx.ensure_exported(current, None, None) == current  # verified: nothing exported
    assert not older.exists()
    assert not dead.exists()
    assert writing.exists()
    assert (other / "model.bin").exists()
    assert onnx.verified(current)
