// A PNG decoder that keeps the colours stored under transparent pixels, as the Python loader does
// (data.load_image: Pillow's decode, alpha dropped, never composited). The browser's decoders hand
// out premultiplied pixels (and no WebGL here), so a fully transparent pixel comes back black and
// a faint one loses its colour: the page uses this for PNGs that have transparency.
// Pillow's rules are followed: 16-bit colour keeps the high byte, 16-bit gray is scaled by
// 255/65535 in float32 and truncated (unless its maximum is <= 255), 1/2/4-bit gray is stretched
// to 0..255, a palette gives its colours, tRNS is ignored, the eXIf orientation is applied.

const SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];
const CHANNELS = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };
const ADAM7 = [
  [0, 0, 8, 8],
  [4, 0, 8, 8],
  [0, 4, 4, 8],
  [2, 0, 4, 4],
  [0, 2, 2, 4],
  [1, 0, 2, 2],
  [0, 1, 1, 2],
];

export function isPng(bytes) {
  return bytes.length >= 8 && SIGNATURE.every((b, i) => bytes[i] === b);
}

async function inflate(parts) {
  const stream = new Blob(parts).stream().pipeThrough(new DecompressionStream("deflate"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

// EXIF orientation (tag 0x0112) from an eXIf chunk (a TIFF block); 1 when absent or unreadable
function exifOrientation(b) {
  if (!b || b.length < 8) return 1;
  const le = b[0] === 0x49;
  const u16 = (o) => (le ? b[o] | (b[o + 1] << 8) : (b[o] << 8) | b[o + 1]);
  const u32 = (o) =>
    le
      ? (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16)) + b[o + 3] * 2 ** 24
      : ((b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) + b[o] * 2 ** 24;
  const ifd = u32(4);
  if (ifd + 2 > b.length) return 1;
  for (let i = 0, n = u16(ifd); i < n && ifd + 2 + 12 * i + 12 <= b.length; i++) {
    const e = ifd + 2 + 12 * i;
    if (u16(e) === 0x0112) {
      const v = u16(e + 8);
      return v >= 1 && v <= 8 ? v : 1;
    }
  }
  return 1;
}

// data.upright: the stored image (w x h, RGBA) turned by an EXIF orientation
function upright(px, w, h, o) {
  if (o === 1) return { data: px, width: w, height: h };
  const swap = o >= 5,
    W = swap ? h : w,
    H = swap ? w : h;
  const out = new Uint8ClampedArray(W * H * 4);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      let sx, sy; // the stored pixel that lands at (x, y)
      switch (o) {
        case 2:
          sx = w - 1 - x;
          sy = y;
          break;
        case 3:
          sx = w - 1 - x;
          sy = h - 1 - y;
          break;
        case 4:
          sx = x;
          sy = h - 1 - y;
          break;
        case 5: // transpose
          sx = y;
          sy = x;
          break;
        case 6: // 90° clockwise
          sx = y;
          sy = h - 1 - x;
          break;
        case 7: // transverse
          sx = w - 1 - y;
          sy = h - 1 - x;
          break;
        default: // 8: 90° counter-clockwise
          sx = w - 1 - y;
          sy = x;
      }
      const p = (sy * w + sx) * 4,
        q = (y * W + x) * 4;
      out[q] = px[p];
      out[q + 1] = px[p + 1];
      out[q + 2] = px[p + 2];
      out[q + 3] = px[p + 3];
    }
  }
  return { data: out, width: W, height: H };
}

// The rows of one image (or one interlace pass) with their filters undone; the filter byte dropped
function unfilter(raw, pos, rows, stride, bpp) {
  const out = new Uint8Array(rows * stride),
    zero = new Uint8Array(stride);
  for (let r = 0; r < rows; r++) {
    if (pos + 1 + stride > raw.length) throw new Error("truncated image data");
    const f = raw[pos],
      src = raw.subarray(pos + 1, pos + 1 + stride),
      o = r * stride;
    const cur = out.subarray(o, o + stride),
      up = r ? out.subarray(o - stride, o) : zero;
    pos += 1 + stride;
    // one loop per filter type (not a test per byte): a 24 Mpx photo is ~100 MB of rows
    if (f === 0) cur.set(src);
    else if (f === 1) for (let i = 0; i < stride; i++) cur[i] = src[i] + (i >= bpp ? cur[i - bpp] : 0);
    else if (f === 2) for (let i = 0; i < stride; i++) cur[i] = src[i] + up[i];
    else if (f === 3) for (let i = 0; i < stride; i++) cur[i] = src[i] + (((i >= bpp ? cur[i - bpp] : 0) + up[i]) >> 1);
    else if (f === 4) {
      for (let i = 0; i < stride; i++) {
        const a = i >= bpp ? cur[i - bpp] : 0,
          b = up[i],
          c = i >= bpp ? up[i - bpp] : 0;
        const pa = Math.abs(b - c),
          pb = Math.abs(a - c),
          pc = Math.abs(a + b - 2 * c);
        cur[i] = src[i] + (pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
      }
    } else throw new Error(`bad filter type ${f}`);
  }
  return { rows: out, pos };
}

// PNG bytes -> {data: RGBA (alpha as stored, 8 bits), width, height}, the RGB as Python's load_image gives it.
// Throws on a damaged file.
export async function decodePng(bytes) {
  if (!isPng(bytes)) throw new Error("not a PNG");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = 8,
    hdr = null,
    palette = null,
    exif = null;
  const idat = [];
  while (pos + 8 <= bytes.length) {
    const len = view.getUint32(pos),
      type = String.fromCharCode(...bytes.subarray(pos + 4, pos + 8));
    const body = bytes.subarray(pos + 8, pos + 8 + len);
    if (body.length < len) throw new Error(`truncated ${type} chunk`);
    if (type === "IHDR") {
      hdr = {
        w: view.getUint32(pos + 8),
        h: view.getUint32(pos + 12),
        depth: body[8],
        ct: body[9],
        interlace: body[12],
      };
    } else if (type === "PLTE") palette = body;
    else if (type === "IDAT") idat.push(body);
    else if (type === "eXIf") exif = body;
    else if (type === "IEND") break;
    pos += 12 + len;
  }
  if (!hdr || !idat.length) throw new Error("no IHDR or IDAT chunk");
  const { w, h, depth, ct } = hdr,
    ch = CHANNELS[ct];
  if (!ch || ![1, 2, 4, 8, 16].includes(depth)) throw new Error(`unsupported colour type ${ct} / bit depth ${depth}`);
  const raw = await inflate(idat);
  const bpp = Math.max(1, (ch * depth) >> 3),
    bytes16 = depth === 16 ? 2 : 1;
  const n = w * h,
    px = new Uint8ClampedArray(n * 4);
  const gray16 = depth === 16 && ct === 0 ? new Uint16Array(n) : null; // scaled at the end, by its maximum
  const top = (1 << Math.min(depth, 8)) - 1; // 1/2/4-bit gray: v * 255 / (2^depth - 1), as Pillow's L;1/L;2/L;4
  const pal = (i, q) => {
    // an index past the palette is black
    const k = i * 3;
    if (palette && k + 2 < palette.length) {
      px[q] = palette[k];
      px[q + 1] = palette[k + 1];
      px[q + 2] = palette[k + 2];
    }
  };
  let p = 0;
  for (const [x0, y0, dx, dy] of hdr.interlace ? ADAM7 : [[0, 0, 1, 1]]) {
    const pw = Math.ceil((w - x0) / dx),
      ph = Math.ceil((h - y0) / dy);
    if (pw <= 0 || ph <= 0) continue;
    const stride = Math.ceil((pw * ch * depth) / 8);
    const { rows, pos: next } = unfilter(raw, p, ph, stride, bpp);
    p = next;
    for (let r = 0; r < ph; r++) {
      const base = r * stride,
        y = y0 + r * dy;
      for (let j = 0; j < pw; j++) {
        const i = y * w + x0 + j * dx,
          q = i * 4;
        px[q + 3] = 255;
        if (depth < 8) {
          // gray or palette, one sample, several a byte (most significant first)
          const bit = j * depth,
            v = (rows[base + (bit >> 3)] >> (8 - depth - (bit & 7))) & top;
          if (ct === 3) pal(v, q);
          else px[q] = px[q + 1] = px[q + 2] = (v * 255) / top;
          continue;
        }
        const b = base + j * ch * bytes16; // the first byte of the pixel; 16-bit: its high byte first
        if (ct === 6 || ct === 2) {
          px[q] = rows[b];
          px[q + 1] = rows[b + bytes16];
          px[q + 2] = rows[b + 2 * bytes16];
          if (ct === 6) px[q + 3] = rows[b + 3 * bytes16];
        } else if (ct === 4) {
          px[q] = px[q + 1] = px[q + 2] = rows[b];
          px[q + 3] = rows[b + bytes16];
        } else if (ct === 3) pal(rows[b], q);
        else if (gray16) gray16[i] = (rows[b] << 8) | rows[b + 1];
        else px[q] = px[q + 1] = px[q + 2] = rows[b];
      }
    }
  }
  if (gray16) {
    // data._pil_to_8bit: float32 multiply, then truncation
    let hi = 1;
    for (let i = 0; i < n; i++) if (gray16[i] > hi) hi = gray16[i];
    const k = Math.fround(255 / (hi > 255 ? 65535 : 255));
    for (let i = 0; i < n; i++)
      px[i * 4] = px[i * 4 + 1] = px[i * 4 + 2] = Math.min(255, Math.trunc(Math.fround(gray16[i] * k)));
  }
  return upright(px, w, h, exifOrientation(exif));
}
