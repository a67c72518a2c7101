"""Where the exported diarization networks live in the model cache, and when they verify."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from daemon.pipeline import onnx


def test_export_folder_changes_with_either_checkpoint_and_the_export() -> None:
    cache = Path("/cache")
    base = onnx.export_folder(cache, "a" * 64, "b" * 64)
    assert base.parent == cache
    assert onnx.export_folder(cache, "c" * 64, "b" * 64) != base
    assert onnx.export_folder(cache, "a" * 64, "c" * 64) != base
    assert f"v{onnx.EXPORT_VERSION}" in base.name


def test_verified_needs_both_files_matching_the_marker(tmp_path: Path) -> None:
    files = {onnx.SEGMENTATION_FILE: b"seg", onnx.FRONT_FILE: b"front", onnx.BACK_FILE: b"back"}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    assert not onnx.verified(tmp_path)  # no marker: an export that did not finish
    marker = {"files": {n: hashlib.sha256(d).hexdigest() for n, d in files.items()}}
    (tmp_path / onnx.MARKER).write_text(json.dumps(marker))
    assert onnx.verified(tmp_path)
    (tmp_path / onnx.BACK_FILE).write_bytes(b"back, changed")
    assert not onnx.verified(tmp_path)
    (tmp_path / onnx.BACK_FILE).unlink()
    assert not onnx.verified(tmp_path)
    (tmp_path / onnx.MARKER).write_text("{not json")
    assert not onnx.verified(tmp_path)
