"""`train --teacher`: the teacher's points reach the targets, by the weight asked, and a bad teacher is one line."""

import numpy as np
import pytest
import torch

from facepoints.annotations import read_dataset
from facepoints.checkpoint import load_checkpoint
from facepoints.crop import points_box
from facepoints.distill import blend_targets, teacher_points
from facepoints.predictor import LandmarkPredictor
from facepoints.train import train
from facepoints.training_data import build_cache

from .conftest import tiny_config


def _weights(out):
    return load_checkpoint(out / "last.pt")["model"]


def test_teacher_points_are_its_flip_tested_predictions_in_the_cached_crops(tiny_model, face_folder, tmp_path):
    images, points = build_cache(read_dataset(face_folder)[:3], tmp_path)
    taught = teacher_points(str(tiny_model / "model.pt"), images, points)
    predictor = LandmarkPredictor(str(tiny_model / "model.pt"), flip_test=True, int8=False)
    for image, pts, got in zip(images, points, taught):
        np.testing.assert_allclose(got, predictor.predict(image, [points_box(pts)])[0], atol=1e-4)
    assert not np.allclose(taught, points, atol=0.5)  # a 2-epoch model does not reproduce the labels
    np.testing.assert_allclose(blend_targets(points, taught, 0.25), 0.75 * points + 0.25 * taught, rtol=1e-6)


def test_teacher_weight_moves_the_training(tiny_model, face_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("FACEPOINTS_CACHE", str(tmp_path / "cache"))
    teacher = str(tiny_model / "model.pt")
    train(tiny_config(face_folder, tmp_path / "plain", seed=3))
    train(tiny_config(face_folder, tmp_path / "w0", seed=3, teacher=teacher, teacher_weight=0.0))
    train(tiny_config(face_folder, tmp_path / "w1", seed=3, teacher=teacher, teacher_weight=1.0))
    plain, w0, w1 = (_weights(tmp_path / name) for name in ("plain", "w0", "w1"))
    assert all(torch.equal(plain[k], w0[k]) for k in plain)  # weight 0: the labels, exactly
    assert any(not torch.allclose(plain[k].float(), w1[k].float()) for k in plain)  # weight 1: other targets
    saved = load_checkpoint(tmp_path / "w1" / "last.pt")["config"]
    assert (saved["teacher"], saved["teacher_weight"]) == (teacher, 1.0)
    train(tiny_config(face_folder, tmp_path / "w1"), resume=True, epochs=2)  # the teacher is read again on resume
    assert load_checkpoint(tmp_path / "w1" / "last.pt")["epoch"] == 2


def test_a_missing_teacher_is_one_line_before_anything_is_written(face_folder, tmp_path, monkeypatch, capsys):
    from facepoints.cli import main

    monkeypatch.setenv("FACEPOINTS_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    args = ["train", "--data", str(face_folder), "--out", str(out), "--epochs", "1", "--workers", "0"]
    assert main([*args, "--teacher", str(tmp_path / "missing.pt")]) == 1
    err = capsys.readouterr().err
    assert err.strip() == f"facepoints: error: {tmp_path / 'missing.pt'}: no such weights file"
    assert not out.exists()
    with pytest.raises(SystemExit):
        main([*args, "--teacher", "fast", "--teacher-weight", "1.5"])
