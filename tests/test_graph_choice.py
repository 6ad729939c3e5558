"""The per-CPU choice between a model's int8 and fp32 graphs (graph_choice.py): timed once, cached per CPU, a
damaged cache ignored and rewritten, an explicit choice always wins. Real ONNX Runtime sessions throughout."""

import json
import os

import pytest

from facepoints import graph_choice, predictor
from facepoints.model_files import shipped_graphs, shipped_trust_graphs
from facepoints.predictor import LandmarkPredictor

pytestmark = pytest.mark.skipif(
    None in shipped_trust_graphs("fast") or None in shipped_graphs("fast"), reason="this install ships one graph"
)


@pytest.fixture
def timings(monkeypatch, tmp_path):
    """The cache in a fresh folder, and a count of the timing runs (the real timing, counted)."""
    monkeypatch.setenv("FACEPOINTS_CACHE", str(tmp_path / "cache"))
    calls = []
    real = graph_choice.time_graphs

    def counted(run, *args, **kwargs):
        calls.append(sorted(run))
        return real(run, *args, **kwargs)

    monkeypatch.setattr(graph_choice, "time_graphs", counted)
    monkeypatch.setattr(predictor, "int8_is_exact", lambda: True)  # a CPU where both graphs are exact: timing decides
    return calls


def cache_file(tmp_path):
    return tmp_path / "cache" / graph_choice.CACHE_FILE


def test_the_choice_is_timed_once_then_reused(timings, tmp_path):
    first = LandmarkPredictor("fast", threads=1)
    assert first.graph_choice.reason == "timed" and timings == [["fp32", "int8"]]
    assert set(first.graph_choice.ms) == {"fp32", "int8"} and first.has_trust  # the trust graphs were compared
    fp32, int8 = shipped_trust_graphs("fast")
    assert fp32.sha256[:16] in first.graph_choice.key and int8.sha256[:16] in first.graph_choice.key
    record = json.loads(cache_file(tmp_path).read_text())[first.graph_choice.key]
    assert record["graph"] == first.graph_choice.graph and record["ms"] == first.graph_choice.ms
    mtime = cache_file(tmp_path).stat().st_mtime_ns

    again = LandmarkPredictor("fast", threads=2)
    assert again.graph_choice.reason == "cached" and again.int8 == first.int8
    assert len(timings) == 1 and cache_file(tmp_path).stat().st_mtime_ns == mtime  # not timed, not rewritten
    # the plain graphs are another pair: timed apart, the first record kept
    plain = LandmarkPredictor("fast", threads=1, trust=False)
    assert plain.graph_choice.reason == "timed" and not plain.has_trust and len(timings) == 2
    assert len(json.loads(cache_file(tmp_path).read_text())) == 2


def test_a_cached_choice_is_followed_and_an_explicit_one_wins(timings, tmp_path):
    key = LandmarkPredictor("fast", threads=1).graph_choice.key
    # whatever was measured, the cache's word is what the next predictor runs
    for graph in ("int8", "fp32"):
        cache_file(tmp_path).write_text(json.dumps({key: {"graph": graph, "ms": {"fp32": 1.0, "int8": 1.0}}}))
        p = LandmarkPredictor("fast", threads=1)
        assert p.graph_choice.reason == "cached" and p.int8 == (graph == "int8")
        assert _runs_graph(p) == graph  # the session runs the chosen graph
    for int8 in (True, False):  # the user's word beats the cache, and nothing is timed for it
        p = LandmarkPredictor("fast", threads=1, int8=int8)
        assert p.int8 == int8 and p.graph_choice.reason == "user" and p.has_trust
    assert len(timings) == 1


@pytest.mark.parametrize("damage", ["{not json", "[1, 2]", '{"KEY": {"graph": "fp16"}}', '{"KEY": 3}', ""])
def test_a_damaged_cache_is_ignored_and_rewritten(timings, tmp_path, damage):
    key = LandmarkPredictor("fast", threads=1).graph_choice.key
    cache_file(tmp_path).write_text(damage.replace("KEY", key))
    p = LandmarkPredictor("fast", threads=1)
    assert p.graph_choice.reason == "timed" and len(timings) == 2
    assert json.loads(cache_file(tmp_path).read_text())[key]["graph"] == p.graph_choice.graph
    assert not [f for f in os.listdir(tmp_path / "cache") if f.endswith(".tmp.json")]  # written atomically


def test_another_cpu_is_timed_again(timings, tmp_path, monkeypatch):
    here = LandmarkPredictor("fast", threads=1).graph_choice
    assert here.key.startswith(graph_choice.cpu_id())
    monkeypatch.setattr("facepoints.predictor.cpu_id", lambda: "Some Other CPU, cpu family 6, model 143, avx512_vnni")
    there = LandmarkPredictor("fast", threads=1).graph_choice
    assert there.reason == "timed" and there.key != here.key and len(timings) == 2
    assert set(json.loads(cache_file(tmp_path).read_text())) == {here.key, there.key}
    monkeypatch.setattr("facepoints.predictor.cpu_id", graph_choice.cpu_id)  # back on this CPU: still cached
    assert LandmarkPredictor("fast", threads=1).graph_choice.reason == "cached" and len(timings) == 2


def test_an_unwritable_cache_only_costs_the_timing(monkeypatch, tmp_path):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("FACEPOINTS_CACHE", str(blocked))
    monkeypatch.setattr(predictor, "int8_is_exact", lambda: True)
    p = LandmarkPredictor("fast", threads=1)
    assert p.graph_choice.reason == "timed" and blocked.read_text() == "not a folder"
    assert len(p.predict_landmarks(_face(), [[20, 20, 100, 100]]).points) == 1


def _runs_graph(p):
    """Which shipped trust graph a predictor's session runs: the one whose answer it matches (the two graphs'
    differ by far more than thread counts could make one graph's differ from itself)."""
    import numpy as np
    import onnxruntime as ort

    x = np.random.default_rng(1).random((2, 1, p.input_size, p.input_size), np.float32)
    mine = p.session.run(None, {"crops": x})
    diff = {}
    for name, graph in zip(("fp32", "int8"), shipped_trust_graphs("fast")):
        theirs = ort.InferenceSession(graph.path, providers=["CPUExecutionProvider"]).run(None, {"crops": x})
        diff[name] = max(float(np.abs(a - b).max()) for a, b in zip(mine, theirs))
    return min(diff, key=diff.get) if min(diff.values()) < 1e-4 < max(diff.values()) else None


def _face():
    import numpy as np

    return np.full((120, 120, 3), 128, np.uint8)


def test_the_optimized_copy_is_reused_and_a_damaged_one_made_again(timings, tmp_path):
    import numpy as np
    import onnxruntime as ort

    p = LandmarkPredictor("fast", threads=1, int8=False)
    fp32, _ = shipped_trust_graphs("fast")
    copy = graph_choice.optimized_copy(fp32.sha256, ort.__version__)
    assert copy.is_relative_to(tmp_path / "cache") and copy.exists()
    x = np.random.default_rng(2).random((2, 1, p.input_size, p.input_size), np.float32)
    shipped = ort.InferenceSession(fp32.path, providers=["CPUExecutionProvider"]).run(None, {"crops": x})
    mtime = copy.stat().st_mtime_ns
    again = LandmarkPredictor("fast", threads=1, int8=False)
    assert copy.stat().st_mtime_ns == mtime  # loaded, not made again
    for a, b in zip(again.session.run(None, {"crops": x}), shipped):
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert again.has_trust and again.session_calibrated  # the copy keeps the metadata
    for damage in (b"not onnx", copy.read_bytes()[:-100]):
        copy.write_bytes(damage)
        healed = LandmarkPredictor("fast", threads=1, int8=False)
        for a, b in zip(healed.session.run(None, {"crops": x}), shipped):
            np.testing.assert_allclose(a, b, atol=1e-5)
        assert copy.read_bytes() != damage and len(copy.read_bytes()) > 1000  # made again


def test_int8_is_ruled_out_on_x86_without_vnni(monkeypatch, tmp_path):
    amd = {"model name": "AMD EPYC", "flags": "sse2 avx avx2 fma"}
    assert not graph_choice.int8_is_exact(amd)
    assert graph_choice.int8_is_exact(amd | {"flags": "sse2 avx2 avx512f avx512_vnni"})
    assert graph_choice.int8_is_exact({"Features": "fp asimd asimddp"})  # ARM: its dot products do not saturate
    monkeypatch.setenv("FACEPOINTS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(predictor, "int8_is_exact", lambda: False)
    monkeypatch.setattr(
        graph_choice, "time_graphs", lambda *a, **k: pytest.fail("timed on a CPU where int8 is inexact")
    )
    chosen = LandmarkPredictor("fast", threads=1)
    assert not chosen.int8 and chosen.graph_choice.reason == "inexact int8"
    assert LandmarkPredictor("fast", threads=1, int8=True).int8  # the user's word still wins
