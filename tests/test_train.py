"""Training path on tiny synthetic data: checkpoints, resume, NaN stop, progress outputs, weight-file errors."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from facepoints.checkpoint import load_checkpoint
from facepoints.cli import main
from facepoints.config import TrainConfig
from facepoints.errors import FacepointsError
from facepoints.train import train
from facepoints.weights import load_model

from .conftest import one_line_error, tiny_config


def test_tiny_training_writes_everything(tiny_model):
    for name in ["last.pt", "best.pt", "model.pt", "progress.gif", "curves.png", "config.json"]:
        assert (tiny_model / name).stat().st_size > 0, name
    state = load_checkpoint(tiny_model / "last.pt")
    assert state["epoch"] == 2 and len(state["history"]) == 2
    assert np.isfinite(state["history"][-1]["val_nme"])
    from PIL import Image

    assert Image.open(tiny_model / "progress.gif").n_frames == 2
    assert json.loads((tiny_model / "config.json").read_text())["arch"] == "pipnet_small"


def test_resume_continues_and_refuses_to_clobber(face_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("FACEPOINTS_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    train(tiny_config(face_folder, out, epochs=1))
    with pytest.raises(FacepointsError, match="already holds a training run"):
        train(tiny_config(face_folder, out, epochs=2))
    first = load_checkpoint(out / "last.pt")
    # resume takes the stored config; ask for more epochs by editing it as a user would via a new run
    state = dict(first)
    state["config"] = {**first["config"], "epochs": 2}
    torch.save(state, out / "last.pt")
    train(tiny_config(face_folder, out), resume=True)
    after = load_checkpoint(out / "last.pt")
    assert after["epoch"] == 2 and [h["epoch"] for h in after["history"]] == [1, 2]


def test_resume_without_checkpoint(tmp_path, face_folder):
    with pytest.raises(FacepointsError, match="nothing to resume"):
        train(tiny_config(face_folder, tmp_path / "none"), resume=True)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(face_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("FACEPOINTS_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    train(tiny_config(face_folder, out, epochs=1))
    good = (out / "last.pt").read_bytes()
    from facepoints.models.pipnet import PIPNet

    monkeypatch.setattr(PIPNet, "loss", lambda self, o, t: o.float().mean() * float("nan"))
    state = load_checkpoint(out / "last.pt")
    state["config"] = {**state["config"], "epochs": 2}
    torch.save(state, out / "last.pt")
    good = (out / "last.pt").read_bytes()
    with pytest.raises(FacepointsError, match=r"epoch 2 step 0: loss is nan; stopping \(last good checkpoint kept"):
        train(tiny_config(face_folder, out), resume=True)
    assert (out / "last.pt").read_bytes() == good


def test_interrupt_leaves_resumable_checkpoint(face_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("FACEPOINTS_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    train(tiny_config(face_folder, out, epochs=1))
    state = load_checkpoint(out / "last.pt")
    state["config"] = {**state["config"], "epochs": 3}
    torch.save(state, out / "last.pt")
    from facepoints.models.pipnet import PIPNet

    real = PIPNet.loss
    calls = {"n": 0}

    def interrupt(self, o, t):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(self, o, t)

    monkeypatch.setattr(PIPNet, "loss", interrupt)
    with pytest.raises(FacepointsError, match="interrupted.*holds epoch 1.*--resume"):
        train(tiny_config(face_folder, out), resume=True)
    assert load_checkpoint(out / "last.pt")["epoch"] == 1
    monkeypatch.setattr(PIPNet, "loss", real)
    train(tiny_config(face_folder, out), resume=True)
    assert load_checkpoint(out / "last.pt")["epoch"] == 3


def test_weight_file_errors(tiny_model, tmp_path):
    model, spec = load_model(str(tiny_model / "model.pt"))
    assert spec.arch == "pipnet_small"
    # wrong architecture: xception metadata over pipnet weights
    payload = torch.load(tiny_model / "model.pt", weights_only=True)
    payload["arch"], payload["model_kwargs"] = "xception", {}
    torch.save(payload, tmp_path / "wrong.pt")
    with pytest.raises(FacepointsError, match="do not fit architecture 'xception'"):
        load_model(str(tmp_path / "wrong.pt"))
    data = (tiny_model / "model.pt").read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(FacepointsError, match=r"trunc\.pt: not a readable weights file"):
        load_model(str(tmp_path / "trunc.pt"))
    torch.save({"a": 1}, tmp_path / "other.pt")
    with pytest.raises(FacepointsError, match="not a facepoints weights file"):
        load_model(str(tmp_path / "other.pt"))
    with pytest.raises(FacepointsError, match="no such weights file"):
        load_model(str(tmp_path / "missing.pt"))
    with pytest.raises(FacepointsError, match="unknown model 'nope'; shipped models:"):
        load_model("nope")


def test_checksum_mismatch(tiny_model, tmp_path, monkeypatch):
    import facepoints.model_files as w  # where the shipped models' index is read

    (tmp_path / "MODELS.json").write_text(json.dumps({"tiny": {"file": "tiny.pt", "sha256": "0" * 64}}))
    (tmp_path / "tiny.pt").write_bytes((tiny_model / "model.pt").read_bytes())
    monkeypatch.setattr(w, "PACKAGE_WEIGHTS", tmp_path)
    with pytest.raises(FacepointsError, match="checksum mismatch"):
        load_model("tiny")
    (tmp_path / "MODELS.json").write_text(
        json.dumps({"tiny": {"file": "tiny.pt", "sha256": w.sha256_file(tmp_path / "tiny.pt")}})
    )
    assert load_model("tiny")[1].arch == "pipnet_small"


def test_checkpoint_loads_as_weights(tiny_model):
    model, spec = load_model(str(tiny_model / "best.pt"))
    assert spec.input_size == 128 and not model.training


def test_learning_rate_schedules():
    from facepoints.train import lr_at

    seed = TrainConfig(data="x")
    assert lr_at(seed, 0) == lr_at(seed, 29.9) == 0.0008
    cos = TrainConfig(data="x", lr=1.0, schedule="cosine", warmup_epochs=1, epochs=11)
    assert lr_at(cos, 0) == pytest.approx(0.1)
    assert lr_at(cos, 1) == pytest.approx(1.0)
    assert lr_at(cos, 11) == pytest.approx(0.01)


def test_ema_weights_are_saved_selected_and_resumed(face_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("FACEPOINTS_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    train(tiny_config(face_folder, out, epochs=1, ema=0.5))
    first = load_checkpoint(out / "last.pt")
    steps = int(first["ema"]["n_averaged"])
    assert steps > 0 and "val_nme_raw" in first["history"][0]
    state = dict(first)
    state["config"] = {**first["config"], "epochs": 2}
    torch.save(state, out / "last.pt")
    train(tiny_config(face_folder, out), resume=True)
    assert (
        int(load_checkpoint(out / "last.pt")["ema"]["n_averaged"]) == 2 * steps
    )  # the average continued, not restarted
    best = load_checkpoint(out / "best.pt")
    shipped = torch.load(out / "model.pt", weights_only=True)["model"]
    raw_differs = False
    for k, v in shipped.items():
        assert torch.equal(
            v, best["ema"][f"module.{k}"].float() if v.is_floating_point() else best["ema"][f"module.{k}"]
        ), k
        raw_differs |= not torch.equal(v, best["model"][k].float() if v.is_floating_point() else best["model"][k])
    assert raw_differs  # the saved weights are the average, not the last step's
    from_checkpoint, _ = load_model(str(out / "best.pt"))  # a checkpoint used as weights gives the average too
    for k, v in from_checkpoint.state_dict().items():
        assert torch.equal(v.float(), shipped[k].float()), k


def test_finished_run_records_its_mean_error_on_training_faces(tiny_model):
    from facepoints.checkpoint import RunSplit

    payload = torch.load(tiny_model / "model.pt", weights_only=True)
    model, spec = load_model(str(tiny_model / "model.pt"))
    x, y = RunSplit.from_config(spec.train_config).train_crops()
    with torch.no_grad():
        error = (model.decode(model(x)).numpy() - y).mean((0, 1))
    np.testing.assert_allclose(payload["train"]["output_shift"], error, atol=2e-3)
    assert spec.output_shift == tuple(payload["train"]["output_shift"])


def test_cli_resume_needs_no_data_and_train_needs_it(face_folder, tmp_path, monkeypatch, capsys):
    from facepoints.cli import main

    monkeypatch.setenv("FACEPOINTS_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    train(tiny_config(face_folder, out, epochs=1))
    assert main(["train", "--out", str(out), "--resume"]) == 0  # the settings, data included, come from the checkpoint
    assert main(["train", "--out", str(tmp_path / "other")]) == 2  # a missing option: argparse's exit code
    assert "needs --data" in capsys.readouterr().err


def test_cli_train_options_map_onto_the_config():
    from facepoints.cli import build_parser
    from facepoints.commands.train import train_config

    parse = build_parser().parse_args
    assert train_config(parse(["train", "--data", "d"])) == TrainConfig(data="d")  # no option: the dataclass defaults
    cfg = train_config(
        parse(
            [
                "train",
                "--data",
                "d",
                "--no-flip",
                "--scale-jitter",
                "0.2",
                "--shift-x",
                "0.15",
                "--ignore-annotation-offsets",
                "--cache-side",
                "352",
                "--epochs",
                "7",
            ]
        )
    )
    assert (cfg.augment.flip, cfg.augment.scale, cfg.augment.shift_across, cfg.augment.shift) == (
        False,
        0.2,
        0.15,
        0.08,
    )
    assert (cfg.annotation_offsets, cfg.cache_side, cfg.epochs) == (False, 352, 7)


def test_cli_margin_reaches_the_weights_the_predictor_reads(face_folder, tmp_path, monkeypatch):
    from facepoints.cli import main

    monkeypatch.setenv("FACEPOINTS_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    args = [
        "train",
        "--data",
        str(face_folder),
        "--out",
        str(out),
        "--model",
        "pipnet_small",
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--workers",
        "0",
        "--precision",
        "fp32",
        "--margin",
        "1.1",
        "--cache-side",
        "300",
    ]
    assert main(args) == 0
    assert load_model(str(out / "model.pt"))[1].margin == 1.1
    assert (
        load_checkpoint(out / "last.pt")["config"]["cache_side"] == 300
    )  # recorded, and the cache was cut at that size:
    (cached,) = (tmp_path / "cache").glob("crops-*.npz")
    with np.load(cached) as f:
        assert f["images"].shape[1:3] == (300, 300)


def test_val_fraction_zero_trains_on_every_face_and_keeps_the_last_epoch(face_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("FACEPOINTS_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    train(tiny_config(face_folder, out, epochs=2, val_fraction=0.0, ema=0.5))
    state = load_checkpoint(out / "last.pt")
    assert all("val_nme" not in h and np.isfinite(h["fit_nme"]) and "fit_nme_raw" in h for h in state["history"])
    payload = torch.load(out / "model.pt", weights_only=True)
    assert payload["train"]["epoch"] == 2  # the last epoch, whatever its NME: nothing held out to select on
    for k, v in payload["model"].items():  # and it is the last epoch's moving average
        ema = state["ema"][f"module.{k}"]
        assert torch.equal(v, ema.float() if v.is_floating_point() else ema), k
    assert "output_shift" in payload["train"]
    assert not (out / "best.pt").exists()  # nothing was selected
    assert (out / "curves.png").stat().st_size > 0
    from facepoints.checkpoint import split_indices

    fit, held = split_indices(12, 0.0, 0)
    assert len(fit) == 12 and len(held) == 0


def test_cache_smaller_than_the_input_is_a_clear_error(face_folder, tmp_path):
    from facepoints.cli import main

    args = [
        "train",
        "--data",
        str(face_folder),
        "--out",
        str(tmp_path / "run"),
        "--model",
        "pipnet_small",
        "--epochs",
        "1",
        "--workers",
        "0",
        "--cache-side",
        "64",
    ]
    assert main(args) == 2
    assert not (tmp_path / "run" / "last.pt").exists()


def _files(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


CLI_TINY = ["--model", "pipnet_small", "--batch-size", "6", "--workers", "0", "--precision", "fp32"]


def test_training_never_writes_over_its_teacher(tiny_model, face_folder, tmp_path, monkeypatch, capsys):
    """`--teacher R/model.pt -o R` used to train, then replace the teacher with the student."""
    import shutil

    from facepoints.cli import main

    monkeypatch.setenv("FACEPOINTS_CACHE", str(tmp_path / "cache"))
    run = tmp_path / "R"
    run.mkdir()
    shutil.copy(tiny_model / "model.pt", run / "model.pt")
    before = _files(run)
    argv = ["train", "--data", str(face_folder), "-o", str(run), "--epochs", "1", *CLI_TINY]
    monkeypatch.chdir(tmp_path)
    for teacher in (str(run / "model.pt"), "R/model.pt", "R/../R/model.pt"):
        assert main([*argv, "--teacher", teacher]) == 2
        err = capsys.readouterr().err
        assert "would overwrite the input" in err and "Traceback" not in err, err
        assert _files(run) == before


def test_a_copied_or_moved_run_resumes_in_its_own_folder(face_folder, tmp_path, monkeypatch, capsys):
    """Resume used to write into the folder saved in the checkpoint: a copy's epochs landed in the original."""
    import shutil

    from facepoints.cli import main

    monkeypatch.setenv("FACEPOINTS_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    assert main(["train", "--data", str(face_folder), "-o", "runs/kc", "--epochs", "1", *CLI_TINY]) == 0
    original = _files(tmp_path / "runs" / "kc")
    shutil.copytree(tmp_path / "runs" / "kc", tmp_path / "runs" / "copy")
    assert main(["train", "-o", "runs/copy", "--resume", "--epochs", "2"]) == 0
    assert _files(tmp_path / "runs" / "kc") == original  # the original run is untouched
    assert load_checkpoint(tmp_path / "runs" / "copy" / "last.pt")["epoch"] == 2
    assert json.loads((tmp_path / "runs" / "copy" / "config.json").read_text())["out"] == "runs/copy"

    shutil.move(tmp_path / "runs" / "copy", tmp_path / "runs" / "moved")
    assert main(["train", "-o", "runs/moved", "--resume", "--epochs", "3"]) == 0
    assert not (tmp_path / "runs" / "copy").exists()  # a moved run does not re-create its old folder
    assert load_checkpoint(tmp_path / "runs" / "moved" / "last.pt")["epoch"] == 3
    capsys.readouterr()


def test_resume_from_another_directory_with_relative_or_moved_data(face_folder, tmp_path, monkeypatch, capsys):
    """`--data` given relative used to be saved relative: resuming elsewhere failed, and `--data /abs` was
    refused as "different"."""
    import shutil

    from facepoints.cli import main

    monkeypatch.setenv("FACEPOINTS_CACHE", str(tmp_path / "cache"))
    shutil.copytree(face_folder, tmp_path / "a" / "faces")
    monkeypatch.chdir(tmp_path / "a")
    assert main(["train", "--data", "faces", "-o", "run", "--epochs", "1", *CLI_TINY]) == 0
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "b")
    assert main(["train", "-o", "../a/run", "--resume", "--epochs", "2"]) == 0
    assert main(["train", "--data", str(tmp_path / "a" / "faces"), "-o", "../a/run", "--resume", "--epochs", "3"]) == 0
    shutil.move(tmp_path / "a" / "faces", tmp_path / "moved_faces")  # the dataset moves: the same faces elsewhere
    assert main(["train", "-o", "../a/run", "--resume", "--epochs", "4"]) == 2
    assert "pass --data where it is now" in capsys.readouterr().err
    assert main(["train", "--data", "../moved_faces", "-o", "../a/run", "--resume", "--epochs", "4"]) == 0
    assert load_checkpoint(tmp_path / "a" / "run" / "last.pt")["epoch"] == 4
    capsys.readouterr()
    other = tmp_path / "other"  # a dataset with other faces is still refused
    shutil.copytree(tmp_path / "moved_faces", other)
    next(other.rglob("*.pts")).unlink()
    next(other.rglob("*.png")).unlink()
    assert main(["train", "--data", str(other), "-o", "../a/run", "--resume", "--epochs", "5"]) == 2
    assert "--data differ" in capsys.readouterr().err


def test_a_killed_cache_write_leaves_nothing_for_good(face_folder, tmp_path, monkeypatch):
    """A run killed while writing the crop cache left `.crops-*.tmp.npz` in the cache folder for good; the next
    run removes it, but never the temporary file of a cache another live run is writing."""
    import os

    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("FACEPOINTS_CACHE", str(cache))
    dead = cache / ".crops-0123456789abcdef.npz.999999999.abcd1234.tmp.npz"  # no such pid
    legacy = cache / ".crops-0123456789abcdef.npz.abcd1234.tmp.npz"  # named before pids were in the name
    live = cache / f".crops-fedcba9876543210.npz.{os.getpid()}.abcd1234.tmp.npz"
    for f in (dead, legacy, live):
        f.write_bytes(b"half a cache")
    train(tiny_config(face_folder, tmp_path / "run"))
    assert not dead.exists() and not legacy.exists() and live.exists()
    assert len(list(cache.glob("crops-*.npz"))) == 1


def test_checkpoints_record_the_runs_wall_clock_across_resumes(face_folder, tmp_path, monkeypatch):
    """ship_weights took the start from config.json's mtime, which --resume rewrites: a resumed run's wall
    clock came out shorter than its epochs. The checkpoint now carries it."""
    monkeypatch.setenv("FACEPOINTS_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    train(tiny_config(face_folder, out, epochs=1))
    first = load_checkpoint(out / "last.pt")
    train(tiny_config(face_folder, out, epochs=2), resume=True, epochs=2)
    second = load_checkpoint(out / "last.pt")
    epochs = sum(h["epoch_s"] for h in second["history"])
    assert first["wall_s"] > 0 and second["wall_s"] >= first["wall_s"] + second["history"][-1]["epoch_s"]
    assert second["wall_s"] >= epochs


class Killed(BaseException):
    """Stands in for SIGKILL: nothing catches it."""


def test_resume_works_from_every_kill_point_and_removes_stale_temp_files(face_folder, tmp_path, monkeypatch):
    import shutil

    from facepoints.checkpoint import load_checkpoint
    from facepoints.train import train

    monkeypatch.setenv("FACEPOINTS_CACHE", str(tmp_path / "cache"))
    real_replace = os.replace
    writes = []

    def count(src, dst):
        writes.append(Path(dst).name)
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", count)
    train(tiny_config(face_folder, tmp_path / "full", batch_size=6))
    n = len([w for w in writes if not w.startswith("crops-")])
    assert n >= 7  # config.json, best.pt, last.pt, model.pt, the progress frame, gif, curves, final model.pt
    for k in range(1, n + 1):
        out, calls = tmp_path / f"kill{k}", []

        def killed(src, dst):
            calls.append(dst)
            if len(calls) == k:
                shutil.copy(src, str(src) + "x")  # what SIGKILL leaves: the temporary file
                raise Killed
            return real_replace(src, dst)

        monkeypatch.setattr(os, "replace", killed)
        with pytest.raises(Killed):
            train(tiny_config(face_folder, out, batch_size=6))
        assert list(out.rglob(".*.tmp*")), k
        monkeypatch.setattr(os, "replace", real_replace)
        train(
            tiny_config(face_folder, out, batch_size=6), resume=True
        )  # killed before config.json (k=1): resumes from the start
        assert load_checkpoint(out / "last.pt")["epoch"] == 1, k
        assert load_model(str(out / "model.pt"))[1].output_shift is not None, k
        assert "output_shift" in torch.load(out / "model.pt", weights_only=True)["train"], k
        assert not list(out.rglob(".*.tmp*")), k


def test_resume_with_epochs_extends_the_run_and_other_options_are_refused(face_folder, tmp_path, monkeypatch, capsys):
    from facepoints.checkpoint import load_checkpoint

    monkeypatch.setenv("FACEPOINTS_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    base = [
        "train",
        "--data",
        str(face_folder),
        "--out",
        str(out),
        "--model",
        "pipnet_small",
        "--batch-size",
        "6",
        "--workers",
        "0",
        "--precision",
        "fp32",
    ]
    assert main([*base, "--epochs", "1"]) == 0
    assert main([*base, "--epochs", "2", "--resume"]) == 0  # the same command line, plus --resume: extends
    assert load_checkpoint(out / "last.pt")["epoch"] == 2
    assert load_checkpoint(out / "last.pt")["config"]["epochs"] == 2
    capsys.readouterr()
    assert main(["train", "--out", str(out), "--resume", "--epochs", "3", "--lr", "0.5"]) == 2
    one_line_error(capsys, "--lr differ")
    assert main(["train", "--out", str(out), "--resume", "--epochs", "1"]) == 2
    one_line_error(capsys, "already trained 2 epochs")
    assert load_checkpoint(out / "last.pt")["epoch"] == 2
