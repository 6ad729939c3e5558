"""Output planning (io_utils.check_outputs) and input listing (detect.expand_inputs) on big folders: the work
grows linearly with the number of files. 800 photos used to wait 54 s before the first file: every output was
compared with every other and each comparison resolved both paths."""

import os

from facepoints import io_utils
from facepoints.cli import build_parser
from facepoints.detect import expand_inputs, plan_outputs


def _folder(root, n):
    for i in range(n):
        sub = root / f"part{i % 3}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"p{i:05d}.jpg").write_bytes(b"x")
    return root


def test_planning_a_big_folder_resolves_each_folder_once(tmp_path, monkeypatch):
    n = 3000
    src = _folder(tmp_path / "in", n)
    calls = {"realpath": 0, "stat": 0}
    real_realpath, real_stat = os.path.realpath, os.stat

    def counted_realpath(*a, **k):
        calls["realpath"] += 1
        return real_realpath(*a, **k)

    def counted_stat(*a, **k):
        calls["stat"] += 1
        return real_stat(*a, **k)

    args = build_parser().parse_args(["detect", str(src), "-o", str(tmp_path / "out"), "--no-images"])
    items = expand_inputs(args.inputs, skip=tmp_path / "out")
    assert len(items) == n
    monkeypatch.setattr(os.path, "realpath", counted_realpath)
    monkeypatch.setattr(os, "stat", counted_stat)
    plan = plan_outputs(args, items, tmp_path / "out")
    assert len([p for k, paths in plan.items() for p in paths if p is not None]) == n
    assert calls["realpath"] < 50, calls  # per folder, not per file (let alone per pair of files)
    assert calls["stat"] <= 3 * n, calls


def test_a_big_folder_still_refuses_a_collision_at_its_end(tmp_path):
    src = _folder(tmp_path / "in", 600)
    (src / "part2" / "p00599.png").write_bytes(b"x")  # beside p00599.jpg: both would write p00599.json
    args = build_parser().parse_args(["detect", str(src), "-o", str(tmp_path / "out"), "--no-images"])
    try:
        plan_outputs(args, expand_inputs(args.inputs), tmp_path / "out")
    except io_utils.UsageError as e:
        assert "p00599.json" in str(e) and "would write this file" in str(e)
    else:
        raise AssertionError("the collision was not found")


def test_listing_skips_the_runs_own_output_folder_without_resolving_each_file(tmp_path):
    src = _folder(tmp_path / "in", 30)
    out = src / "runs"
    _folder(out, 9)
    items = expand_inputs([str(src)], skip=out)
    assert len(items) == 30 and not any("runs" in str(rel) for _, rel in items)
