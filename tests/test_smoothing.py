import math

import numpy as np
import pytest

from facepoints.errors import FacepointsError
from facepoints.pose import MODEL_POINTS
from facepoints.smoothing import LandmarkSmoother, OneEuroFilter, jitter

FPS = 30.0


def face(iod: float, centre=(320.0, 240.0)) -> np.ndarray:
    """A frontal 68-point face whose outer eye corners are iod pixels apart."""
    p = MODEL_POINTS[:, :2]
    p = (p - p.mean(0)) * iod / np.linalg.norm(p[36] - p[45]) + centre
    return p.astype(np.float32)


def smooth(track: np.ndarray, smoother=None) -> np.ndarray:
    smoother = smoother or LandmarkSmoother()
    return np.array([smoother(p, i / FPS) for i, p in enumerate(track)])


def test_still_face_jitter_drops_at_least_3x():
    rng = np.random.default_rng(0)
    raw = face(60) + rng.normal(0, 1.0, (300, 68, 2)).astype(np.float32)
    out = smooth(raw)
    raw_j, out_j = jitter(raw[10:]), jitter(out[10:])
    assert raw_j > 0.025  # ~1.77 px / 60 px: the noise really is there
    assert out_j * 3 < raw_j, (raw_j, out_j)
    # Smoothing must not drift: the mean position stays on the face.
    assert np.abs(out[10:].mean(0) - face(60)).max() < 0.5


@pytest.mark.parametrize("iod", [60.0, 240.0])
@pytest.mark.parametrize("direction", [(1.0, 0.0), (0.0, 1.0)])
def test_moving_face_lags_little(iod, direction):
    # At 1 inter-ocular distance per second (60 px/s for a 60 px face: a brisk head move),
    # a first-order low-pass settles v / (2 pi cutoff) behind, and cutoff = min_cutoff + beta v
    # makes that < 1 / (2 pi beta) = 1.6% of the inter-ocular distance for the default beta = 10.
    speed = 1.0
    steps = np.arange(90)[:, None, None] / FPS * speed * iod * np.array(direction)
    truth = face(iod) + steps.astype(np.float32)
    out = smooth(truth)
    lag = np.linalg.norm(truth - out, axis=-1).mean(-1) / iod
    assert lag[30:].max() < 1 / (2 * math.pi * 10) < 0.02, lag[30:].max()
    assert lag[-1] > 0.002  # it is a filter, not a pass-through


def test_lag_is_the_same_for_small_and_large_faces():
    def final_lag(iod):
        truth = face(iod) + (np.arange(60)[:, None, None] / FPS * [0.5 * iod, 0]).astype(np.float32)
        return float((truth[-1] - smooth(truth)[-1])[:, 0].mean() / iod)

    assert final_lag(30) == pytest.approx(final_lag(300), abs=1e-4)


def test_moving_noisy_face_lags_little_on_average():
    rng = np.random.default_rng(1)
    truth = face(60) + (np.arange(150)[:, None, None] / FPS * [60.0, 0]).astype(np.float32)
    out = smooth(truth + rng.normal(0, 1.0, truth.shape).astype(np.float32))
    assert (truth - out)[30:, :, 0].mean() / 60 < 0.02


def test_one_euro_with_beta_zero_is_a_plain_low_pass():
    f = OneEuroFilter(min_cutoff=1.0, beta=0.0)
    f(np.zeros(3), 0.0)
    alpha = 1 / (1 + FPS / (2 * math.pi))
    for n in range(1, 6):
        y = f(np.ones(3), n / FPS)
    np.testing.assert_allclose(y, 1 - (1 - alpha) ** 5, rtol=1e-9)


def test_beta_speeds_up_tracking():
    slow, fast = OneEuroFilter(1.0, 0.0), OneEuroFilter(1.0, 1.0)
    for i in range(30):
        x = np.array([10.0 * i])
        a, b = slow(x, i / FPS), fast(x, i / FPS)
    assert abs(b[0] - 290) < abs(a[0] - 290) / 3


def test_reset_forgets_the_past():
    s = LandmarkSmoother()
    for i in range(10):
        s(face(60), i / FPS)
    moved = face(60, centre=(400.0, 300.0))
    assert not np.allclose(s(moved, 10 / FPS), moved)
    s.reset()
    np.testing.assert_array_equal(s(moved, 0.0), moved)  # also: time may restart after reset


def test_first_call_returns_input_and_shapes_are_kept():
    for shape in [(), (3,), (68, 2), (2, 3, 4)]:
        x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
        f = OneEuroFilter()
        first = f(x, 0.0)
        np.testing.assert_array_equal(first, x)
        second = f(x + 1, 0.1)
        assert second.shape == shape and second.dtype == np.float32
    out = LandmarkSmoother()(face(60).astype(np.float64), 0.0)
    assert out.shape == (68, 2) and out.dtype == np.float32
    assert OneEuroFilter()(np.arange(4), 0.0).dtype == np.float64


def test_bad_input_raises():
    f = OneEuroFilter()
    f(np.zeros(3), 1.0)
    with pytest.raises(FacepointsError):
        f(np.zeros(3), 1.0)  # time did not advance
    with pytest.raises(FacepointsError):
        f(np.zeros(4), 2.0)  # shape changed
    with pytest.raises(FacepointsError):
        LandmarkSmoother()(np.zeros((5, 2)), 0.0)
    with pytest.raises(FacepointsError):
        jitter(np.zeros((1, 68, 2)))


def test_jitter_units():
    track = face(60) + (np.arange(10)[:, None, None] * [0.6, 0.0]).astype(np.float32)
    assert jitter(track) == pytest.approx(0.01, rel=1e-4)  # 0.6 px a frame on a 60 px face
    assert jitter(np.repeat(face(60)[None], 5, 0)) == 0.0
