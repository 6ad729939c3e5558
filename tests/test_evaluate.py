"""Evaluation: missed faces are failures, never NaN; the CED legend shows the table's figures."""

import json

import numpy as np
import pytest

from facepoints.cli import main


def test_evaluate_with_every_face_missed_writes_valid_json_without_nan(tiny_model, face_folder, tmp_path, capsys):
    from facepoints.evaluate import Evaluation

    out = tmp_path / "e.json"
    # dlib with a score bar no face passes: every face is missed
    assert (
        main(
            [
                "evaluate",
                "--data",
                str(face_folder),
                "--model",
                str(tiny_model / "model.pt"),
                "--boxes",
                "detector",
                "--detector",
                "dlib",
                "--det-threshold",
                "10",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "nan%" not in text and "n/a" in text and "missed by the detector" in text, text
    report = json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(f"{c} in the JSON"))
    assert report["n_detected"] == 0 and report["nme_mean"] is None and "note" in report
    assert report["fr_0.08"] == 1.0 and report["auc_0.08"] == 0.0
    assert Evaluation(np.array([0.03, np.inf]), ["", ""], ["a", "b"]).report()["fr_0.08"] == 0.5


def test_ced_legend_shows_the_tables_nme_and_the_faces_found():
    from facepoints.drawing import ced_label
    from facepoints.evaluate import Evaluation

    nmes = np.array([0.03, 0.05, np.inf])
    mean = Evaluation(nmes, [""] * 3, ["a", "b", "c"]).report()["nme_mean"]
    assert (
        ced_label("fast", nmes)
        == f"fast (mean NME {100 * mean:.2f}%, 2/3 faces found)"
        == "fast (mean NME 4.00%, 2/3 faces found)"
    )
    assert ced_label("fast", nmes[:2]) == "fast (mean NME 4.00%)"


def test_int8_saturation_is_told_from_the_cpu_flags(tmp_path):
    """AVX2 without VNNI: ONNX Runtime's u8s8 kernels may saturate (fast's int8 graph: 3.80% vs 3.54% NME)."""
    from facepoints.evaluate import int8_may_saturate

    def cpu(flags: str) -> str:
        path = tmp_path / f"cpuinfo{len(flags)}"
        path.write_text(f"processor\t: 0\nmodel name\t: x\nflags\t\t: fpu sse2 {flags}\n\n")
        return str(path)

    assert int8_may_saturate(cpu("avx avx2 fma"))  # AMD EPYC (Zen 2/3), Intel before Cascade Lake
    assert not int8_may_saturate(cpu("avx2 avx512f avx512_vnni"))  # Intel Xeon with VNNI
    assert not int8_may_saturate(cpu("avx2 avx_vnni"))
    assert not int8_may_saturate(cpu("neon"))  # no AVX2: other kernels
    assert not int8_may_saturate(str(tmp_path / "missing"))  # unknown: say nothing
