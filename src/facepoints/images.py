"""Files -> pixels: every supported image decoded to uint8 RGB the same way, with clear errors (empty, corrupt,
too large), the EXIF orientation applied, and any numpy array (gray, RGBA, 16-bit, float) turned into RGB."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from .errors import FacepointsError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


# decompression-bomb guard and memory bound: Pillow's own threshold (~9.5k x 9.5k), where it starts to warn;
# decoding one such image peaks at ~0.6 GB over the ~0.4 GB of the loaded models (docs/cli.md, "Size limit")
MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485


ORIENTATION = 0x0112  # the EXIF orientation tag


def load_image(path: str | Path) -> np.ndarray:
    """Decode any supported image to uint8 RGB (H, W, 3): grayscale, RGBA, 16-bit included.

    The EXIF orientation is applied (a phone photo stored sideways comes out upright, and points are
    in that upright frame). Images over MAX_IMAGE_PIXELS are refused before decoding; below it the
    decode holds at most Pillow's copy and ours at once (about 7 bytes a pixel: ~0.6 GB at the limit)."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as e:
        raise FacepointsError(f"{path}: cannot open ({e.strerror})") from None
    if size == 0:
        raise FacepointsError(f"{path}: empty file")
    return _decode(path, path)


def decode_image(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """`load_image` for an encoded image already in memory (a Parquet column, an object store read):
    the same decoder, so the same pixels as loading the file. `name` is what errors call it."""
    if not data:
        raise FacepointsError(f"{name}: empty file")
    return _decode(io.BytesIO(data), name)


def _decode(source, name) -> np.ndarray:
    try:
        with Image.open(source) as im:
            if im.width * im.height > MAX_IMAGE_PIXELS:
                raise FacepointsError(
                    f"{name}: image too large ({im.width}x{im.height} = {im.width * im.height / 1e6:.0f} "
                    f"Mpx; the limit is {MAX_IMAGE_PIXELS / 1e6:.0f} Mpx), refusing to decode"
                )
            orientation = im.getexif().get(ORIENTATION, 1)
            im.load()
            rgb = to_rgb(_to_array(_pil_to_8bit(im)))
        return upright(rgb, orientation)  # after Pillow's copy is freed
    except FacepointsError:
        raise
    except Exception as e:  # PIL raises many types for corrupt data
        why = str(e).replace(repr(source), repr(str(name)))  # not "<_io.BytesIO object at 0x...>": the same each run
        raise FacepointsError(f"{name}: not a decodable image ({e.__class__.__name__}: {why})") from None


def upright(image: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1-8) to a decoded image, as ImageOps.exif_transpose would."""
    if orientation == 2:
        return cv2.flip(image, 1)
    if orientation == 3:
        return cv2.rotate(image, cv2.ROTATE_180)
    if orientation == 4:
        return cv2.flip(image, 0)
    if orientation == 5:
        return np.ascontiguousarray(image.transpose(1, 0, 2))
    if orientation == 6:
        return cv2.rotate(image, cv2.ROTATE_90_CLOCKWISE)
    if orientation == 7:
        return np.ascontiguousarray(image[::-1, ::-1].transpose(1, 0, 2))
    if orientation == 8:
        return cv2.rotate(image, cv2.ROTATE_90_COUNTERCLOCKWISE)
    return image


STRIP_PIXELS = 1_000_000  # a strip and its transient copy stay small beside the image


def _to_array(im: Image.Image) -> np.ndarray:
    """PIL image -> numpy, in strips for big images: np.asarray(im) holds a second full copy at its peak."""
    if im.width * im.height <= STRIP_PIXELS:
        return np.asarray(im)
    rows = max(1, STRIP_PIXELS // im.width)
    strips = [(y, min(y + rows, im.height)) for y in range(0, im.height, rows)]
    first = np.asarray(im.crop((0, 0, im.width, strips[0][1])))
    out = np.empty((im.height, *first.shape[1:]), first.dtype)
    out[: strips[0][1]] = first
    for y0, y1 in strips[1:]:
        out[y0:y1] = np.asarray(im.crop((0, y0, im.width, y1)))
    return out


def _pil_to_8bit(im: Image.Image) -> Image.Image:
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype=np.float32)
        hi = max(float(arr.max()), 1.0)
        return Image.fromarray((arr * (255.0 / (65535.0 if hi > 255 else 255.0))).clip(0, 255).astype(np.uint8))
    if im.mode not in ("L", "RGB", "RGBA", "LA"):
        return im.convert("RGB")
    return im


def to_rgb(image: np.ndarray) -> np.ndarray:
    """Any numpy image (gray, RGB, RGBA, float, 16-bit) as uint8 RGB (H, W, 3)."""
    image = np.asarray(image)
    if image.ndim not in (2, 3) or image.size == 0:
        raise FacepointsError(f"expected an image array (H, W[, C]), got shape {image.shape}")
    if image.dtype.kind not in "uifb":
        raise FacepointsError(f"expected an image array of numbers, got dtype {image.dtype}")
    if image.ndim == 3 and image.shape[2] not in (1, 2, 3, 4):
        raise FacepointsError(f"expected an image array with 1, 2, 3 or 4 channels, got shape {image.shape}")
    if image.dtype.kind == "f" and not np.isfinite(image).all():
        raise FacepointsError("image array holds NaN or infinite values")
    if image.dtype == np.uint16:
        if image.max() <= 255:  # 8-bit data in a wider type: scaling by 1/257 would make it black; say so
            raise FacepointsError(
                "uint16 image array holds only values 0-255: 8-bit data in a 16-bit array? "
                "pass image.astype(np.uint8); a real 16-bit image spans 0-65535"
            )
        image = (image / 257.0).astype(np.uint8)
    elif image.dtype.kind == "f":
        image = (image.clip(0, 1) * 255 if image.max() <= 1.0 else image.clip(0, 255)).astype(np.uint8)
    elif image.dtype != np.uint8:
        image = image.clip(0, 255).astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    channels = image.shape[2]
    if channels == 1:
        return cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2RGB)
    if channels == 2:
        return cv2.cvtColor(np.ascontiguousarray(image[:, :, 0]), cv2.COLOR_GRAY2RGB)
    if channels == 4:
        return np.ascontiguousarray(image[:, :, :3])
    return np.ascontiguousarray(image)
