"""The synthetic clip behind docs/demo_video.gif: the example photo panned, zoomed and rolled.

Run: python scripts/make_demo_clip.py runs/grace_moving.mp4
     facepoints detect runs/grace_moving.mp4 -o runs/demo --gif
"""

import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main(out: str, frames: int = 60, size: tuple[int, int] = (480, 360)) -> None:
    img = cv2.imread(str(ROOT / "examples" / "grace_hopper.jpg"))
    h, w = img.shape[:2]
    writer = cv2.VideoWriter(out, cv2.VideoWriter_fourcc(*"mp4v"), 15, size)
    for i in range(frames):
        t = i / (frames - 1)
        angle = 15 * np.sin(2 * np.pi * t)  # roll
        scale = size[1] / h * (1.0 + 0.35 * np.sin(np.pi * t))  # zoom in and out
        cx, cy = w / 2 + 40 * np.sin(2 * np.pi * t), h * 0.4  # pan across, around the face
        m = cv2.getRotationMatrix2D((cx, cy), angle, scale)
        m[:, 2] += np.array(size) / 2 - np.array([cx, cy])
        writer.write(cv2.warpAffine(img, m, size, borderMode=cv2.BORDER_REFLECT))
    writer.release()


if __name__ == "__main__":
    main(sys.argv[1])
