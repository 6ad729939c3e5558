import itertools

import cv2
import numpy as np
import pytest

from facepoints.errors import FacepointsError
from facepoints.landmarks import FLIP
from facepoints.pose import MODEL_POINTS, Pose, estimate_pose, pose_from_rotation, rotation_matrix

SIZE = (640, 480)  # width, height
CAM = np.array([[640.0, 0, 319.5], [0, 640.0, 239.5], [0, 0, 1]])


def head_rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Built independently of the module: right-handed axis-angle rotations about camera axes."""
    rz = cv2.Rodrigues(np.array([0.0, 0.0, np.radians(roll)]))[0]
    ry = cv2.Rodrigues(np.array([0.0, -np.radians(yaw), 0.0]))[0]
    rx = cv2.Rodrigues(np.array([-np.radians(pitch), 0.0, 0.0]))[0]
    return rz @ ry @ rx


def render(yaw=0.0, pitch=0.0, roll=0.0, tvec=(0.0, 0.0, 600.0)) -> np.ndarray:
    rvec = cv2.Rodrigues(head_rotation(yaw, pitch, roll))[0]
    pts, _ = cv2.projectPoints(MODEL_POINTS, rvec, np.array(tvec, np.float64), CAM, np.zeros(4))
    return pts.reshape(68, 2).astype(np.float32)


def assert_close(pose: Pose, yaw, pitch, roll, tol):
    got = np.array([pose.yaw, pose.pitch, pose.roll])
    assert np.abs(got - [yaw, pitch, roll]).max() < tol, (got, (yaw, pitch, roll))


def test_frontal_is_zero():
    assert_close(estimate_pose(render(), SIZE), 0, 0, 0, 0.1)


@pytest.mark.parametrize("yaw,pitch,roll", list(itertools.product([-30, 0, 30], [-15, 0, 15], [-20, 0, 20])))
def test_recovers_rendered_angles(yaw, pitch, roll):
    assert_close(estimate_pose(render(yaw, pitch, roll), SIZE), yaw, pitch, roll, 2.0)


def test_off_centre_face_and_large_yaw():
    pts = render(50, -10, 5, tvec=(150.0, -80.0, 900.0))
    assert_close(estimate_pose(pts, SIZE), 50, -10, 5, 2.0)


@pytest.mark.parametrize("yaw,pitch,roll", [(0, 0, 0), (25, 10, -15), (-30, -15, 20), (15, -10, 10)])
def test_pixel_noise(yaw, pitch, roll):
    rng = np.random.default_rng(abs(yaw * 10000 + pitch * 100 + roll))
    for _ in range(5):
        pts = render(yaw, pitch, roll) + rng.normal(0, 1.0, (68, 2)).astype(np.float32)
        assert_close(estimate_pose(pts, SIZE), yaw, pitch, roll, 5.0)


def test_signs_match_what_the_image_shows():
    eyes_mid_x = lambda p: (p[36, 0] + p[45, 0]) / 2  # noqa: E731
    # Positive yaw: the nose tip swings to the image's right of the eye midpoint.
    p = render(yaw=20)
    assert p[30, 0] > eyes_mid_x(p) + 5
    assert estimate_pose(p, SIZE).yaw > 15
    # Positive pitch (looking up): the nose tip rises towards the eyes.
    up, front = render(pitch=15), render()
    assert up[30, 1] - up[36, 1] < front[30, 1] - front[36, 1] - 5
    assert estimate_pose(up, SIZE).pitch > 10
    # Positive roll (clockwise in an image whose y points down): the right-hand eye goes down.
    p = render(roll=20)
    assert p[45, 1] > p[36, 1] + 10
    assert estimate_pose(p, SIZE).roll > 15
    # Mirrored counterparts read negative.
    assert estimate_pose(render(yaw=-20), SIZE).yaw < -15
    assert estimate_pose(render(pitch=-15), SIZE).pitch < -10
    assert estimate_pose(render(roll=-20), SIZE).roll < -15


def test_rotation_matrix_round_trip_matches_independent_build():
    for yaw, pitch, roll in [(30, -15, 20), (-45, 20, -10), (10, 5, 60)]:
        r = rotation_matrix(yaw, pitch, roll)
        np.testing.assert_allclose(r, head_rotation(yaw, pitch, roll), atol=1e-12)
        assert_close(pose_from_rotation(r), yaw, pitch, roll, 1e-6)


def test_model_axes_and_symmetry():
    m = MODEL_POINTS
    assert m.shape == (68, 3)
    assert m[45, 0] > m[36, 0]  # X right: iBUG point 45 is on the image's right
    assert m[8, 1] > m[30, 1] > m[27, 1]  # Y down: chin below nose tip below nose bridge
    assert m[:, 2].argmin() == 30  # Z away from the camera: the nose tip is nearest
    assert 85 < np.linalg.norm(m[36] - m[45]) < 100  # millimetres
    mirrored = m[FLIP] * [-1, 1, 1]
    assert np.linalg.norm(mirrored - m, axis=1).max() < 4.0  # a typo would break the symmetry


def test_to_dict():
    assert Pose(1.0, 2.0, 3.0).to_dict() == {"yaw": 1.0, "pitch": 2.0, "roll": 3.0}


def test_bad_input_raises():
    with pytest.raises(FacepointsError):
        estimate_pose(np.zeros((5, 2), np.float32), SIZE)
    with pytest.raises(FacepointsError):
        estimate_pose(np.full((68, 2), np.nan, np.float32), SIZE)
    with pytest.raises(FacepointsError):
        estimate_pose(render(), (0, 480))
