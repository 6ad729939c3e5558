"""Head pose (yaw, pitch, roll) from 68 landmarks by fitting a rigid mean face with cv2.solvePnP.

Frames. The model and the camera share OpenCV's axes: X to the image's right, Y down, Z away
from the camera (into the head), so a face looking straight into the lens has rotation identity.
The head rotation R (model -> camera) is read as R = Rz(roll) @ Ry(-yaw) @ Rx(-pitch): pitch
is applied first about the head's ear-to-ear axis, then yaw about the vertical, then roll in
the image plane. Signs, as seen in the image:

- yaw   > 0: the nose points to the image's right (the subject turns to their own left);
- pitch > 0: the face looks up (the nose moves up in the image);
- roll  > 0: the face tilts clockwise in the image (the eye at the image's right goes down).

Angles are relative to the camera ray through the image centre, so a face far off-centre
reads a few degrees turned towards the centre even when it is parallel to the image plane.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .errors import FacepointsError
from .landmarks import NUM_POINTS

# The mean 3D face of the 68-point markup used by OpenFace and much of the head-pose
# literature (millimetres, outer eye corners ~91 mm apart), with X right, Y down and
# Z away from the camera: the nose tip (30) has the smallest Z, the jaw ends the largest.
MODEL_POINTS = np.array(
    [
        [-73.393523, -29.801432, 47.667532],  # 0  jaw
        [-72.775014, -10.949766, 45.909403],
        [-70.533638, 7.929818, 44.842580],
        [-66.850058, 26.074280, 43.141114],
        [-59.790187, 42.564390, 38.635298],
        [-48.368973, 56.481080, 30.750622],
        [-34.121101, 67.246992, 18.456453],
        [-17.875411, 75.056892, 3.609035],
        [0.098749, 77.061286, -0.881698],  # 8  chin
        [17.477031, 74.758448, 5.181201],
        [32.648966, 66.929021, 19.176563],
        [46.372358, 56.311389, 30.770570],
        [57.343480, 42.419126, 37.628629],
        [64.388482, 25.455880, 40.886309],
        [68.212038, 6.990805, 42.281449],
        [70.486405, -11.666193, 44.142567],
        [71.375822, -30.365191, 47.140426],  # 16
        [-61.119406, -49.361602, 14.254422],  # 17 brows
        [-51.287588, -58.769795, 7.268147],
        [-37.804800, -61.996155, 0.442051],
        [-24.022754, -61.033399, -6.606501],
        [-11.635713, -56.686759, -11.967398],
        [12.056636, -57.391033, -12.051204],
        [25.106256, -61.902186, -7.315098],
        [38.338588, -62.777713, -1.022953],
        [51.191007, -59.302347, 5.349435],
        [60.053851, -50.190255, 11.615746],  # 26
        [0.653940, -42.193790, -13.380835],  # 27 nose bridge
        [0.804809, -30.993721, -21.150853],
        [0.992204, -19.944596, -29.284036],
        [1.226783, -8.414541, -36.948060],  # 30 nose tip
        [-14.772472, 2.598255, -20.132003],  # 31 lower nose
        [-7.180239, 4.751589, -23.536684],
        [0.555920, 6.562900, -25.944448],
        [8.272499, 4.661005, -23.695741],
        [15.214351, 2.643046, -20.858157],  # 35
        [-46.047290, -37.471411, 7.037989],  # 36 eye on the image's left
        [-37.674688, -42.730510, 3.021217],
        [-27.883856, -42.711517, 1.353629],
        [-19.648268, -36.754742, -0.111088],
        [-28.272965, -35.134493, -0.147273],
        [-38.082418, -34.919043, 1.476612],
        [19.265868, -37.032306, -0.665746],  # 42 eye on the image's right
        [27.894191, -43.342445, 0.247660],
        [37.437529, -43.110822, 1.696435],
        [45.170805, -38.086515, 4.894163],
        [38.196454, -35.532024, 0.282961],
        [28.764989, -35.484289, -1.172675],
        [-28.916267, 28.612716, -2.240310],  # 48 outer lips
        [-17.533194, 22.172187, -15.934335],
        [-6.684590, 19.029051, -22.611355],
        [0.381001, 20.721118, -23.748437],
        [8.375443, 19.035460, -22.721995],
        [18.876618, 22.394109, -15.610679],
        [28.794412, 28.079924, -3.217393],
        [19.057574, 36.298248, -14.987997],
        [8.956375, 39.634575, -22.554245],
        [0.381549, 40.395647, -23.591626],
        [-7.428895, 39.836405, -22.406106],
        [-18.160634, 36.677899, -15.121907],
        [-24.377490, 28.677771, -4.785684],  # 60 inner lips
        [-6.897633, 25.475976, -20.893742],
        [0.340663, 26.014269, -22.220479],
        [8.444722, 25.326198, -21.025520],
        [24.474473, 28.323008, -5.712776],
        [8.449166, 30.596216, -20.671489],
        [0.205322, 31.408738, -21.903670],
        [-7.198266, 30.844876, -20.328022],
    ],
    dtype=np.float64,
)


@dataclass(frozen=True)
class Pose:
    yaw: float  # degrees, > 0: nose towards the image's right
    pitch: float  # degrees, > 0: looking up
    roll: float  # degrees, > 0: clockwise in the image

    def to_dict(self) -> dict[str, float]:
        return {"yaw": self.yaw, "pitch": self.pitch, "roll": self.roll}


def camera_matrix(image_size: tuple[int, int]) -> np.ndarray:
    """Pinhole guess for an uncalibrated camera: focal length = width (~53 degree field of view).

    The principal point is the image centre in the pixel-centre convention (pixel i at i).
    """
    width, height = image_size
    return np.array([[width, 0, (width - 1) / 2], [0, width, (height - 1) / 2], [0, 0, 1]], np.float64)


def rotation_matrix(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Head rotation (model -> camera) for angles in degrees, in this module's convention."""
    y, p, r = np.radians([yaw, pitch, roll])
    ry = np.array([[math.cos(-y), 0, math.sin(-y)], [0, 1, 0], [-math.sin(-y), 0, math.cos(-y)]])
    rx = np.array([[1, 0, 0], [0, math.cos(-p), -math.sin(-p)], [0, math.sin(-p), math.cos(-p)]])
    rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    return rz @ ry @ rx


def pose_from_rotation(rot: np.ndarray) -> Pose:
    """Inverse of rotation_matrix (Z-Y-X Euler angles; exact away from yaw = +-90)."""
    ry = math.atan2(-rot[2, 0], math.hypot(rot[0, 0], rot[1, 0]))
    rz = math.atan2(rot[1, 0], rot[0, 0])
    rx = math.atan2(rot[2, 1], rot[2, 2])
    return Pose(yaw=-math.degrees(ry), pitch=-math.degrees(rx), roll=math.degrees(rz))


def estimate_pose(points: np.ndarray, image_size: tuple[int, int]) -> Pose:
    """Head pose of one face; image_size is (width, height) in pixels, as cv2 orders it."""
    pts = np.asarray(points, np.float64)
    if pts.shape != (NUM_POINTS, 2) or not np.isfinite(pts).all():
        raise FacepointsError(f"pose needs finite ({NUM_POINTS}, 2) landmarks, got shape {pts.shape}")
    if len(image_size) != 2 or min(image_size) <= 0:
        raise FacepointsError(f"image_size must be a positive (width, height), got {image_size!r}")
    cam, dist = camera_matrix(image_size), np.zeros(4)

    # EPnP gives a closed-form start; Levenberg-Marquardt then minimises the reprojection error.
    # A start from a frontal face at the distance its size implies backs EPnP up, which can
    # fail or land behind the camera on nearly flat or noisy point sets.
    spread = np.linalg.norm(pts - pts.mean(0), axis=1).mean()
    model_spread = np.linalg.norm(MODEL_POINTS[:, :2] - MODEL_POINTS[:, :2].mean(0), axis=1).mean()
    depth = cam[0, 0] * model_spread / max(spread, 1e-6)
    centre = (pts.mean(0) - cam[:2, 2]) * depth / cam[0, 0]
    starts = [(np.zeros(3), np.array([centre[0], centre[1], depth]))]
    ok, rvec, tvec = cv2.solvePnP(MODEL_POINTS, pts, cam, dist, flags=cv2.SOLVEPNP_EPNP)
    if ok and tvec[2, 0] > 0:
        starts.insert(0, (rvec.ravel(), tvec.ravel()))

    best = None
    for rvec0, tvec0 in starts:
        ok, rvec, tvec = cv2.solvePnP(
            MODEL_POINTS,
            pts,
            cam,
            dist,
            rvec0.reshape(3, 1).copy(),
            tvec0.reshape(3, 1).copy(),
            useExtrinsicGuess=True,
            flags=cv2.SOLVEPNP_ITERATIVE,
        )
        if not ok or tvec[2, 0] <= 0:
            continue
        proj, _ = cv2.projectPoints(MODEL_POINTS, rvec, tvec, cam, dist)
        err = float(np.linalg.norm(proj.reshape(-1, 2) - pts, axis=1).mean())
        if best is None or err < best[0]:
            best = (err, rvec)
    if best is None:
        raise FacepointsError("head pose fit failed: the landmarks do not look like a face")
    return pose_from_rotation(cv2.Rodrigues(best[1])[0])


def safe_pose(points: np.ndarray, image_size: tuple[int, int]) -> Pose | None:
    """estimate_pose, or None where no rigid fit exists (a degenerate or implausible shape)."""
    try:
        return estimate_pose(points, image_size)
    except FacepointsError:
        return None
