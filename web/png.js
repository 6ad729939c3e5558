// A PNG decoder that keeps the colours stored under transparent pixels, as the Python loader does
// (data.load_image: Pillow's decode, alpha dropped, never composited). The browser's decoders hand
// out premultiplied pixels (and no WebGL here), so a fully transparent pixel comes back black and
// a faint one loses its colour: the page uses this for PNGs that have transparency.
// Pillow's rules are followed: 16-bit colour keeps the high byte, 16-bit gray is scaled by
// 255/65535 in float32 and truncated (unless its maximum is <= 255), 1/2/4-bit gray is stretched
// to 0..255, a palette gives its colours, tRNS is ignored, the eXIf orientation is applied.

const SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];
const CHANNELS = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };
const ADAM7 = [[0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [1, 0, 2, 2], [0, 1, 1, 2]];

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
  const u32 = (o) => (le ? (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16)) + b[o + 3] * 2 ** 24
    : (b[o + 1] << 16 | b[o + 2] << 8 | b[o + 3]) + b[o] * 2 ** 24);
  const ifd = u32(4);
  if (ifd + 2 > b.length) return 1;
  for (let i = 0, n = u16(ifd); i < n && ifd + 2 + 12 * i + 12 <= b.length; i++) {
    const e = ifd + 2 + 12 * i;
    if (u16(e) === 0x0112) { const v = u16(e + 8); return v >= 1 && v <= 8 ? v : 1; }
  }
  return 1;
}

// data.upright: the stored image (w x h, RGBA) turned by an EXIF orientation
function upright(px, w, h, o) {
  if (o === 1) return { data: px, width: w, height: h };
  const swap = o >= 5, W = swap ? h : w, H = swap ? w : h;
  const out = new Uint8ClampedArray(W * H * 4);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      let sx, sy;  // the stored pixel that lands at (x, y)
      switch (o) {
        case 2: sx = w - 1 - x; sy = y; break;
        case 3: sx = w - 1 - x; sy = h - 1 - y; break;
        case 4: sx = x; sy = h - 1 - y; break;
        case 5: sx = y; sy = x; break;  // transpose
        case 6: sx = y; sy = h - 1 - x; break;  // 90° clockwise
        case 7: sx = w - 1 - y; sy = h - 1 - x; break;  // transverse
        default: sx = w - 1 - y; sy = x;  // 8: 90° counter-clockwise
      }
      const p = (sy * w + sx) * 4, q = (y * W + x) * 4;
      out[q] = px[p]; out[q + 1] = px[p + 1]; out[q + 2] = px[p + 2]; out[q + 3] = px[p + 3];
    }
  }
  return { data: out, width: W, height: H };
}

function unfilter(raw, pos, rows, stride, bpp) {
  const out = new Uint8Array(rows * stride);
  for (let r = 0; r < rows; r++) {
    if (pos + 1 + stride > raw.length) throw new Error("truncated image data");
    const f = raw[pos++], o = r * stride, up = o - stride;
    for (let i = 0; i < stride; i++) {
      const a = i >= bpp ? out[o + i - bpp] : 0, b = r ? out[up + i] : 0, c = r && i >= bpp ? out[up + i - bpp] : 0;
      let pred;
      if (f === 0) pred = 0;
      else if (f === 1) pred = a;
      else if (f === 2) pred = b;
      else if (f === 3) pred = (a + b) >> 1;
      else if (f === 4) {
        const p = a + b - c, pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
        pred = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      } else throw new Error(`bad filter type ${f}`);
      out[o + i] = (raw[pos + i] + pred) & 255;
    }
    pos += stride;
  }
  return { rows: out, pos };
}

// PNG bytes -> {data: RGBA (alpha as stored), width, height}, the RGB as Python's load_image gives it.
// Throws on a damaged file.
export async function decodePng(bytes) {
  if (!isPng(bytes)) throw new Error("not a PNG");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = 8, hdr = null, palette = null, exif = null;
  const idat = [];
  while (pos + 8 <= bytes.length) {
    const len = view.getUint32(pos), type = String.fromCharCode(...bytes.subarray(pos + 4, pos + 8));
    const body = bytes.subarray(pos + 8, pos + 8 + len);
    if (body.length < len) throw new Error(`truncated ${type} chunk`);
    if (type === "IHDR") {
      hdr = { w: view.getUint32(pos + 8), h: view.getUint32(pos + 12), depth: body[8], ct: body[9], interlace: body[12] };
    } else if (type === "PLTE") palette = body;
    else if (type === "IDAT") idat.push(body);
    else if (type === "eXIf") exif = body;
    else if (type === "IEND") break;
    pos += 12 + len;
  }
  if (!hdr || !idat.length) throw new Error("no IHDR or IDAT chunk");
  const { w, h, depth, ct } = hdr, ch = CHANNELS[ct];
  if (!ch || ![1, 2, 4, 8, 16].includes(depth)) throw new Error(`unsupported colour type ${ct} / bit depth ${depth}`);
  const raw = await inflate(idat);
  const bpp = Math.max(1, (ch * depth) >> 3);
  // samples in the stored layout: one Uint16 per channel, rows of w*ch
  const s = new Uint16Array(w * h * ch);
  let p = 0;
  for (const [x0, y0, dx, dy] of hdr.interlace ? ADAM7 : [[0, 0, 1, 1]]) {
    const pw = Math.ceil((w - x0) / dx), ph = Math.ceil((h - y0) / dy);
    if (pw <= 0 || ph <= 0) continue;
    const stride = Math.ceil((pw * ch * depth) / 8);
    const { rows, pos: next } = unfilter(raw, p, ph, stride, bpp);
    p = next;
    for (let r = 0; r < ph; r++) {
      const base = r * stride, y = y0 + r * dy;
      for (let i = 0; i < pw * ch; i++) {
        let v;
        if (depth === 16) v = (rows[base + 2 * i] << 8) | rows[base + 2 * i + 1];
        else if (depth === 8) v = rows[base + i];
        else v = (rows[base + ((i * depth) >> 3)] >> (8 - depth - ((i * depth) & 7))) & ((1 << depth) - 1);
        const x = x0 + Math.floor(i / ch) * dx;
        s[(y * w + x) * ch + (i % ch)] = v;
      }
    }
  }
  const n = w * h, px = new Uint8ClampedArray(n * 4);
  let to8;  // a gray or colour sample -> 8 bits, as Pillow does for this kind of file
  if (depth === 16 && ct === 0) {
    let hi = 1;
    for (let i = 0; i < n; i++) if (s[i] > hi) hi = s[i];
    const k = Math.fround(255 / (hi > 255 ? 65535 : 255));
    to8 = (v) => Math.min(255, Math.trunc(Math.fround(v * k)));
  } else if (depth === 16) to8 = (v) => v >> 8;
  else if (ct === 0) to8 = (v) => (v * 255) / ((1 << depth) - 1);
  else to8 = (v) => v;
  for (let i = 0; i < n; i++) {
    const q = i * 4;
    if (ct === 3) {
      const k = s[i] * 3;  // an index past the palette is black
      px[q] = palette && k + 2 < palette.length ? palette[k] : 0;
      px[q + 1] = palette && k + 2 < palette.length ? palette[k + 1] : 0;
      px[q + 2] = palette && k + 2 < palette.length ? palette[k + 2] : 0;
      px[q + 3] = 255;
    } else if (ct === 0 || ct === 4) {
      px[q] = px[q + 1] = px[q + 2] = to8(s[i * ch]);
      px[q + 3] = ct === 4 ? s[i * 2 + 1] >> (depth - 8) : 255;
    } else {
      px[q] = to8(s[i * ch]); px[q + 1] = to8(s[i * ch + 1]); px[q + 2] = to8(s[i * ch + 2]);
      px[q + 3] = ct === 6 ? s[i * 4 + 3] >> (depth - 8) : 255;
    }
  }
  return upright(px, w, h, exifOrientation(exif));
}
