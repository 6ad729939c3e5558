// facepoints in the browser: RetinaFace + the 68-point landmark model with onnxruntime-web.
// The same steps as the Python package (detectors.py, crop.py, predictor.py), so the points agree:
// images are RGBA ImageData-like objects {data, width, height}; points use the pixel-centre convention.

// ---- geometry (crop.py) ------------------------------------------------------------------------

// Python's round(): half to even (used where Python rounds sizes)
export function pyRound(v) {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

// crop.crop_matrix: the square of `side` px centred on (cx, cy), turned by angle, onto out x out
export function cropMatrix(cx, cy, side, out, angleDeg = 0) {
  const s = out / side,
    t = (angleDeg * Math.PI) / 180;
  const a = s * Math.cos(t),
    b = s * Math.sin(t);
  const c = out / 2 - 0.5;
  // [[a, b, tx], [-b, a, ty]]
  return [a, b, c - (a * cx + b * cy), -b, a, c - (-b * cx + a * cy)];
}

export function invertAffine(m) {
  const [a, b, c, d, e, f] = m;
  const det = a * e - b * d;
  const ia = e / det,
    ib = -b / det,
    id = -d / det,
    ie = a / det;
  return [ia, ib, -(ia * c + ib * f), id, ie, -(id * c + ie * f)];
}

// m1 @ m2 for 2x3 affine maps (as 3x3 with a last row 0 0 1)
export function composeAffine(m1, m2) {
  const [a, b, c, d, e, f] = m1,
    [g, h, i, j, k, l] = m2;
  return [a * g + b * j, a * h + b * k, a * i + b * l + c, d * g + e * j, d * h + e * k, d * i + e * l + f];
}

export function applyAffine(m, x, y) {
  return [m[0] * x + m[1] * y + m[2], m[3] * x + m[4] * y + m[5]];
}

// Bilinear warp of an RGBA image into an out x out gray crop, replicated borders (cv2.warpAffine with
// INTER_LINEAR + BORDER_REPLICATE on the RGB image, then cv2's RGB->gray). Source coordinates and the
// weights are quantised the way OpenCV does for 8-bit images (1/32 px, fixed point).
export function warpGray(img, m, out) {
  const { data, width: w, height: h } = img;
  const inv = invertAffine(m);
  const crop = new Uint8Array(out * out);
  const rgb = [0, 0, 0];
  for (let v = 0; v < out; v++) {
    // as cv2.warpAffine: the row's and the column's parts of the source coordinate rounded separately
    const rx = Math.round((inv[1] * v + inv[2]) * 1024),
      ry = Math.round((inv[4] * v + inv[5]) * 1024);
    for (let u = 0; u < out; u++) {
      const X = (Math.round(inv[0] * u * 1024) + rx + 16) >> 5,
        Y = (Math.round(inv[3] * u * 1024) + ry + 16) >> 5;
      const x0 = X >> 5,
        y0 = Y >> 5,
        fx = X & 31,
        fy = Y & 31;
      const xa = Math.min(Math.max(x0, 0), w - 1),
        xb = Math.min(Math.max(x0 + 1, 0), w - 1);
      const ya = Math.min(Math.max(y0, 0), h - 1),
        yb = Math.min(Math.max(y0 + 1, 0), h - 1);
      const w00 = (32 - fx) * (32 - fy),
        w01 = fx * (32 - fy),
        w10 = (32 - fx) * fy,
        w11 = fx * fy;
      const p00 = (ya * w + xa) * 4,
        p01 = (ya * w + xb) * 4,
        p10 = (yb * w + xa) * 4,
        p11 = (yb * w + xb) * 4;
      for (let ch = 0; ch < 3; ch++) {
        const s = w00 * data[p00 + ch] + w01 * data[p01 + ch] + w10 * data[p10 + ch] + w11 * data[p11 + ch];
        rgb[ch] = Math.min(255, (s + 512) >> 10);
      }
      crop[v * out + u] = (rgb[0] * 4899 + rgb[1] * 9617 + rgb[2] * 1868 + 8192) >> 14;
    }
  }
  return crop;
}

// Block average of a region by an integer factor (cv2.INTER_AREA with a whole-number scale)
function blockShrink(img, x0, y0, nw, nh, f) {
  const { data, width: w, height: h } = img;
  const out = new Uint8ClampedArray(nw * nh * 4);
  const area = f * f;
  for (let y = 0; y < nh; y++) {
    for (let x = 0; x < nw; x++) {
      let r = 0,
        g = 0,
        b = 0;
      for (let dy = 0; dy < f; dy++) {
        const sy = Math.min(y0 + y * f + dy, h - 1);
        for (let dx = 0; dx < f; dx++) {
          const p = (sy * w + Math.min(x0 + x * f + dx, w - 1)) * 4;
          r += data[p];
          g += data[p + 1];
          b += data[p + 2];
        }
      }
      const q = (y * nw + x) * 4;
      out[q] = Math.round(r / area);
      out[q + 1] = Math.round(g / area);
      out[q + 2] = Math.round(b / area);
      out[q + 3] = 255;
    }
  }
  return { data: out, width: nw, height: nh };
}

// crop.crop_face: a gray out x out crop of a tight face box, turned by angle; returns {crop, matrix}
// (matrix: source pixel -> crop pixel). Squares over 2x the crop are block-averaged first, as crop_square does.
export function cropFace(img, box, out, margin, angleDeg = 0) {
  const [x1, y1, x2, y2] = box;
  const cx = (x1 + x2) / 2,
    cy = (y1 + y2) / 2;
  const side = Math.max(Math.max(x2 - x1, y2 - y1) * margin, 1);
  if (side > 2 * out) {
    const f = Math.floor(side / (2 * out));
    const t = (angleDeg * Math.PI) / 180;
    const reach = (side * (Math.abs(Math.cos(t)) + Math.abs(Math.sin(t)))) / 2;
    const { width: w, height: h } = img;
    const x0 = Math.min(Math.max(Math.trunc(cx - reach) - 2 * f, 0), w - 1);
    const y0 = Math.min(Math.max(Math.trunc(cy - reach) - 2 * f, 0), h - 1);
    const nw = Math.max(Math.floor((Math.min(Math.trunc(cx + reach) + 2 * f, w) - x0) / f), 1);
    const nh = Math.max(Math.floor((Math.min(Math.trunc(cy + reach) + 2 * f, h) - y0) / f), 1);
    const small = blockShrink(img, x0, y0, nw, nh, f);
    const m = cropMatrix((cx - x0 + 0.5) / f - 0.5, (cy - y0 + 0.5) / f - 0.5, side / f, out, angleDeg);
    const s = [1 / f, 0, (0.5 - x0) / f - 0.5, 0, 1 / f, (0.5 - y0) / f - 0.5];
    return { crop: warpGray(small, m, out), matrix: composeAffine(m, s) };
  }
  const m = cropMatrix(cx, cy, side, out, angleDeg);
  return { crop: warpGray(img, m, out), matrix: m };
}

// Area resize of RGBA to (nw, nh) for shrinking (cv2.INTER_AREA): each output pixel is the
// coverage-weighted mean of the source pixels under it. Separable, float, rounded at the end.
export function areaResize(img, nw, nh) {
  const { data, width: w, height: h } = img;
  const weights = (n, nn) => {
    // per output index: list of [source index, weight]
    const scale = n / nn,
      res = [];
    for (let i = 0; i < nn; i++) {
      const a = i * scale,
        b = (i + 1) * scale,
        taps = [];
      for (let s = Math.floor(a); s < Math.min(Math.ceil(b), n); s++) {
        const cover = Math.min(b, s + 1) - Math.max(a, s);
        if (cover > 1e-9) taps.push([s, cover / scale]);
      }
      res.push(taps);
    }
    return res;
  };
  const wx = weights(w, nw),
    wy = weights(h, nh);
  const tmp = new Float32Array(nw * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < nw; x++) {
      let r = 0,
        g = 0,
        b = 0;
      for (const [s, k] of wx[x]) {
        const p = (y * w + s) * 4;
        r += k * data[p];
        g += k * data[p + 1];
        b += k * data[p + 2];
      }
      const q = (y * nw + x) * 3;
      tmp[q] = r;
      tmp[q + 1] = g;
      tmp[q + 2] = b;
    }
  }
  const out = new Uint8ClampedArray(nw * nh * 4);
  for (let y = 0; y < nh; y++) {
    for (let x = 0; x < nw; x++) {
      let r = 0,
        g = 0,
        b = 0;
      for (const [s, k] of wy[y]) {
        const p = (s * nw + x) * 3;
        r += k * tmp[p];
        g += k * tmp[p + 1];
        b += k * tmp[p + 2];
      }
      const q = (y * nw + x) * 4;
      out[q] = Math.round(r);
      out[q + 1] = Math.round(g);
      out[q + 2] = Math.round(b);
      out[q + 3] = 255;
    }
  }
  return { data: out, width: nw, height: nh };
}

// ---- detector (detectors.RetinaFaceDetector) ---------------------------------------------------

function priors(spec, h, w) {
  const list = [];
  spec.steps.forEach((step, k) => {
    const ny = Math.ceil(h / step),
      nx = Math.ceil(w / step);
    for (let i = 0; i < ny; i++)
      for (let j = 0; j < nx; j++)
        for (const size of spec.anchors[k]) list.push([(j + 0.5) * step, (i + 0.5) * step, size, size]);
  });
  return list;
}

function iou(a, b) {
  const iw = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]));
  const ih = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
  const inter = iw * ih,
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
  return union > 0 ? inter / union : 0;
}

// Head roll from 5 keypoints (detectors.roll_degrees)
export function rollDegrees(k) {
  const vx = k[1][0] - k[0][0] + (k[4][0] - k[3][0]),
    vy = k[1][1] - k[0][1] + (k[4][1] - k[3][1]);
  return (Math.atan2(vy, vx) * 180) / Math.PI;
}

// BoxMap.apply with the face's roll: the detector box -> the landmark box in the face's upright frame
export function landmarkBox(map, box, angleDeg = 0) {
  const side = Math.max(box[2] - box[0], box[3] - box[1]);
  const t = (angleDeg * Math.PI) / 180;
  const dx = map.dx * Math.cos(t) - map.dy * Math.sin(t),
    dy = map.dx * Math.sin(t) + map.dy * Math.cos(t);
  const cx = (box[0] + box[2]) / 2 + dx * side,
    cy = (box[1] + box[3]) / 2 + dy * side,
    half = (map.scale * side) / 2;
  return [cx - half, cy - half, cx + half, cy + half];
}

export class FacePoints {
  constructor(ort, spec, detSession, lmSession) {
    Object.assign(this, { ort, spec, detSession, lmSession });
    this._priors = new Map();
  }

  static async load(ort, base = "./") {
    const spec = await (await fetch(`${base}model.json`)).json();
    const opts = { executionProviders: ["wasm"], graphOptimizationLevel: "all" };
    const detSession = await ort.InferenceSession.create(base + spec.detector.file, opts);
    const lmSession = await ort.InferenceSession.create(base + spec.landmarks.file, opts);
    return new FacePoints(ort, spec, detSession, lmSession);
  }

  // Detections {boxes, scores, keypoints} sorted by score, in image pixels (RetinaFaceDetector.detect)
  async detect(img) {
    const d = this.spec.detector;
    const { width: W, height: H } = img;
    let im = img;
    if (d.max_side && Math.max(W, H) > d.max_side) {
      const f = d.max_side / Math.max(W, H);
      im = areaResize(img, Math.max(1, pyRound(W * f)), Math.max(1, pyRound(H * f)));
    }
    const { width: w, height: h, data } = im;
    const x = new Float32Array(3 * h * w),
      n = h * w;
    for (let i = 0; i < n; i++) {
      // BGR planes minus the means
      x[i] = data[i * 4 + 2] - d.mean_bgr[0];
      x[n + i] = data[i * 4 + 1] - d.mean_bgr[1];
      x[2 * n + i] = data[i * 4] - d.mean_bgr[2];
    }
    const feeds = { [d.input]: new this.ort.Tensor("float32", x, [1, 3, h, w]) };
    const res = await this.detSession.run(feeds);
    const [loc, conf, lms] = this.detSession.outputNames.map((k) => res[k].data);
    const key = `${h}x${w}`;
    if (!this._priors.has(key)) this._priors.set(key, priors(d, h, w));
    const P = this._priors.get(key);
    const [v0, v1] = d.variance;
    const cand = [];
    for (let i = 0; i < P.length; i++) {
      const score = conf[i * 2 + 1];
      if (!(score > d.threshold)) continue;
      const [px, py, pw, ph] = P[i];
      const cx = px + loc[i * 4] * v0 * pw,
        cy = py + loc[i * 4 + 1] * v0 * ph;
      const bw = pw * Math.exp(loc[i * 4 + 2] * v1),
        bh = ph * Math.exp(loc[i * 4 + 3] * v1);
      const kp = [];
      for (let k = 0; k < 5; k++)
        kp.push([px + lms[i * 10 + 2 * k] * v0 * pw - 0.5, py + lms[i * 10 + 2 * k + 1] * v0 * ph - 0.5]);
      cand.push({ box: [cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], score, kp });
    }
    cand.sort((a, b) => b.score - a.score);
    const kept = [];
    for (const c of cand) if (kept.every((k) => iou(k.box, c.box) <= d.nms)) kept.push(c);
    const sx = W / w,
      sy = H / h;
    return {
      boxes: kept.map((c) => [c.box[0] * sx, c.box[1] * sy, c.box[2] * sx, c.box[3] * sy]),
      scores: kept.map((c) => c.score),
      keypoints: kept.map((c) => c.kp.map(([u, v]) => [(u + 0.5) * sx - 0.5, (v + 0.5) * sy - 0.5])),
    };
  }

  // The landmark model on (N, S*S) gray uint8 crops -> raw outputs (runModelOutputs)
  async runModel(crops) {
    const S = this.spec.landmarks.input_size,
      N = crops.length;
    const x = new Float32Array(N * S * S);
    crops.forEach((c, i) => {
      for (let j = 0; j < S * S; j++) x[i * S * S + j] = c[j] / 255;
    });
    return this.runModelOutputs(x, N);
  }

  // The points output alone (N*68*2 crop pixels, before output_shift)
  async runModelFloat(x, N) {
    return (await this.runModelOutputs(x, N)).points;
  }

  // Float crops (N, 1, S, S) -> {points, and with trust heads presence (N), visibility (N*68), logB (N*68)}
  async runModelOutputs(x, N) {
    const L = this.spec.landmarks,
      S = L.input_size;
    const res = await this.lmSession.run({ [L.input]: new this.ort.Tensor("float32", x, [N, 1, S, S]) });
    const out = { points: res[L.output].data };
    if (L.trust) {
      out.presence = res[L.trust.presence].data;
      out.visibility = res[L.trust.visibility].data;
      out.logB = res[L.trust.log_b].data;
    }
    return out;
  }

  // Landmark boxes (tight-face convention) and rolls -> per face: 68 points in image pixels, and with trust
  // heads presence, visibility (68) and uncertainty (68, image px) (LandmarkPredictor.predict_landmarks)
  async landmarksAndTrust(img, boxes, angles = null) {
    const L = this.spec.landmarks,
      S = L.input_size;
    if (!boxes.length) return [];
    const crops = boxes.map((b, i) => cropFace(img, b, S, L.margin, angles ? angles[i] : 0));
    const out = await this.runModel(crops.map((c) => c.crop));
    return crops.map((c, i) => {
      const inv = invertAffine(c.matrix),
        points = [];
      for (let k = 0; k < 68; k++) {
        const u = out.points[(i * 68 + k) * 2] - L.output_shift[0],
          v = out.points[(i * 68 + k) * 2 + 1] - L.output_shift[1];
        points.push(applyAffine(inv, u, v));
      }
      const face = { points, presence: null, visibility: null, uncertainty: null };
      if (L.trust) {
        // image px per crop px: the crop matrix's inverse scale
        const m = c.matrix,
          scale = 1 / Math.sqrt(Math.abs(m[0] * m[4] - m[1] * m[3]));
        const logB = out.logB.subarray(i * 68, (i + 1) * 68);
        face.presence = out.presence[i];
        face.visibility = Array.from(out.visibility.subarray(i * 68, (i + 1) * 68));
        face.uncertainty = Array.from(logB, (b) => expectedError(b, L.trust.calibration) * scale);
      }
      return face;
    });
  }

  // The points alone (as landmarksAndTrust)
  async landmarks(img, boxes, angles = null) {
    return (await this.landmarksAndTrust(img, boxes, angles)).map((f) => f.points);
  }

  // Whether a face passes the Landmarker's min_presence (all faces of a model without trust heads)
  present(face) {
    return face.presence === null || face.presence >= this.spec.min_presence;
  }

  // Detections -> the landmark step on each (landmark box from the box map, cropped upright by the roll of
  // its keypoints), faces below min_presence dropped (Landmarker.detect)
  async facesFor(img, det) {
    const angles = det.keypoints.map(rollDegrees);
    const lmBoxes = det.boxes.map((b, i) => landmarkBox(this.spec.detector.box_map, b, angles[i]));
    const found = await this.landmarksAndTrust(img, lmBoxes, angles);
    const faces = [];
    found.forEach((f, i) => {
      if (this.present(f)) faces.push({ box: det.boxes[i], score: det.scores[i], keypoints: det.keypoints[i], ...f });
    });
    return faces;
  }

  // The whole pipeline (Landmarker.detect with upright crops): faces + timings in ms
  async process(img) {
    const t0 = performance.now();
    const det = await this.detect(img);
    const t1 = performance.now();
    const faces = await this.facesFor(img, det);
    const t2 = performance.now();
    return { faces, detectorMs: t1 - t0, landmarksMs: t2 - t1, width: img.width, height: img.height };
  }
}

// metrics.expected_error: a log Laplace scale -> expected point error (crop px) by the calibration's monotone
// knots (linear in log b between them; beyond them the end knots' error/b ratio)
export function expectedError(logB, cal) {
  const kx = cal.log_b,
    ky = cal.error_px,
    n = kx.length;
  const b = Math.exp(logB);
  if (logB < kx[0]) return Math.min((ky[0] / Math.exp(kx[0])) * b, ky[0]);
  if (logB > kx[n - 1]) return Math.max((ky[n - 1] / Math.exp(kx[n - 1])) * b, ky[n - 1]);
  let j = 1;
  while (j < n - 1 && kx[j] < logB) j++;
  const t = kx[j] > kx[j - 1] ? (logB - kx[j - 1]) / (kx[j] - kx[j - 1]) : 1;
  return ky[j - 1] + t * (ky[j] - ky[j - 1]);
}

// The JSON of a result in the schema of `facepoints detect --json`: presence, visibility and uncertainty (image
// px) rounded as Python writes them (null from a model without trust heads). Pose is not computed in the page: null.
export function resultJson(image, faces) {
  const r = (v, n) => Math.round(v * 10 ** n) / 10 ** n;
  const each = (a, n) => (a ? Array.from(a, (v) => r(v, n)) : null);
  return {
    image,
    faces: faces.map((f) => ({
      box: f.box.map((v) => r(v, 2)),
      score: r(f.score, 4),
      points: f.points.map(([x, y]) => [r(x, 2), r(y, 2)]),
      pose: null,
      presence: f.presence === null || f.presence === undefined ? null : r(f.presence, 4),
      visibility: each(f.visibility, 3),
      uncertainty: each(f.uncertainty, 2),
    })),
  };
}

// ---- video tracking (video.FaceTracker) and smoothing (smoothing.LandmarkSmoother) -----------------------

// crop.points_box: the tight box of a set of points
export function pointsBox(points) {
  let x1 = Infinity,
    y1 = Infinity,
    x2 = -Infinity,
    y2 = -Infinity;
  for (const [x, y] of points) {
    x1 = Math.min(x1, x);
    y1 = Math.min(y1, y);
    x2 = Math.max(x2, x);
    y2 = Math.max(y2, y);
  }
  return [x1, y1, x2, y2];
}

// crop.upright_box: the tight box of the points seen in a frame turned by angle, centred for cropFace(angle)
export function uprightBox(points, angleDeg) {
  const t = (angleDeg * Math.PI) / 180,
    c = Math.cos(t),
    s = Math.sin(t);
  const [x1, y1, x2, y2] = pointsBox(points.map(([x, y]) => [c * x + s * y, -s * x + c * y]));
  const ux = (x1 + x2) / 2,
    uy = (y1 + y2) / 2;
  const cx = c * ux - s * uy,
    cy = s * ux + c * uy;
  const hw = (x2 - x1) / 2,
    hh = (y2 - y1) / 2;
  return [cx - hw, cy - hh, cx + hw, cy + hh];
}

// landmarks.five_points: eye centres, nose tip, mouth corners (a detector's keypoint order)
export function fivePoints(p) {
  const mean = (a, b) => {
    let x = 0,
      y = 0;
    for (let i = a; i < b; i++) {
      x += p[i][0];
      y += p[i][1];
    }
    return [x / (b - a), y / (b - a)];
  };
  return [mean(36, 42), mean(42, 48), p[30], p[48], p[54]];
}

// video.carried_box: the detector's box moved and scaled as the tight landmark box moved from reference to now
export function carriedBox(detected, reference, now) {
  const sx = Math.max(now[2] - now[0], 1e-6) / Math.max(reference[2] - reference[0], 1e-6),
    sy = Math.max(now[3] - now[1], 1e-6) / Math.max(reference[3] - reference[1], 1e-6);
  const rx = (reference[0] + reference[2]) / 2,
    ry = (reference[1] + reference[3]) / 2,
    nx = (now[0] + now[2]) / 2,
    ny = (now[1] + now[3]) / 2;
  return [
    nx + (detected[0] - rx) * sx,
    ny + (detected[1] - ry) * sy,
    nx + (detected[2] - rx) * sx,
    ny + (detected[3] - ry) * sy,
  ];
}

const alpha = (cutoff, dt) => 1 / (1 + 1 / (2 * Math.PI * cutoff) / dt);

// smoothing.LandmarkSmoother: a One Euro filter on the 68 points whose beta is per inter-ocular distance
export class LandmarkSmoother {
  constructor({ min_cutoff = 0.5, beta = 10.0, d_cutoff = 1.0 } = {}) {
    Object.assign(this, { minCutoff: min_cutoff, beta, dCutoff: d_cutoff });
    this.x = null;
  }

  filter(points, t) {
    const n = points.length * 2,
      x = new Float64Array(n);
    points.forEach(([u, v], i) => {
      x[2 * i] = u;
      x[2 * i + 1] = v;
    });
    if (this.x === null) {
      Object.assign(this, { x, dx: new Float64Array(n), t });
      return points.map(([u, v]) => [u, v]);
    }
    const dt = t - this.t;
    if (!(dt > 0)) throw new Error(`timestamps must increase, got ${t} after ${this.t}`);
    const iod = Math.hypot(points[36][0] - points[45][0], points[36][1] - points[45][1]);
    const beta = this.beta / Math.max(iod, 1),
      ad = alpha(this.dCutoff, dt);
    for (let i = 0; i < n; i++) {
      this.dx[i] += ad * ((x[i] - this.x[i]) / dt - this.dx[i]);
      this.x[i] += alpha(this.minCutoff + beta * Math.abs(this.dx[i]), dt) * (x[i] - this.x[i]);
    }
    this.t = t;
    // as Python's float32 points
    return points.map((_, i) => [Math.fround(this.x[2 * i]), Math.fround(this.x[2 * i + 1])]);
  }
}

// video.FaceTracker: the detector on the first frame, every redetect_every frames and when a face is lost
// (presence below lost_presence, or its box overlap with the last frame's below min_overlap); in between each
// face's crop comes from its last points (upright by their roll). update(img, t seconds) -> faces + timings
export class FaceTracker {
  constructor(fp, options = fp.spec.video, smoothing = fp.spec.smoothing) {
    Object.assign(this, { fp, options, smoothing });
    this.tracks = [];
    this.frameIndex = 0;
    this.detectorRuns = 0;
  }

  async update(img, t) {
    const o = this.options,
      fp = this.fp;
    const t0 = performance.now();
    let detectorMs = 0,
      needDetect = !this.tracks.length || this.frameIndex % o.redetect_every === 0;
    const oldBoxes = this.tracks.map((tr) => pointsBox(tr.points));
    if (!needDetect) {
      const angles = this.tracks.map((tr) => rollDegrees(fivePoints(tr.points)));
      const boxes = this.tracks.map((tr, i) => uprightBox(tr.points, angles[i]));
      const found = await fp.landmarksAndTrust(img, boxes, angles);
      const bar = Math.max(o.lost_presence, fp.spec.min_presence);
      if (found.some((f) => f.presence !== null && f.presence < bar)) needDetect = true;
      else if (found.some((f, i) => iou(oldBoxes[i], pointsBox(f.points)) < o.min_overlap)) needDetect = true;
      else
        found.forEach((f, i) => {
          Object.assign(this.tracks[i], f);
        });
    }
    if (needDetect) detectorMs = await this._redetect(img, oldBoxes);
    this.frameIndex++;
    const faces = this.tracks.map((tr) => {
      const points = tr.smoother ? tr.smoother.filter(tr.points, t) : tr.points;
      const now = pointsBox(points);
      if (tr.reference === null) tr.reference = now; // just detected: this frame's shown points are the reference
      const { presence, visibility, uncertainty } = tr;
      return {
        box: carriedBox(tr.detected, tr.reference, now),
        score: tr.score,
        points,
        presence,
        visibility,
        uncertainty,
      };
    });
    const ms = performance.now() - t0;
    return {
      faces,
      detected: needDetect,
      detectorMs,
      landmarksMs: ms - detectorMs,
      width: img.width,
      height: img.height,
    };
  }

  async _redetect(img, oldBoxes) {
    this.detectorRuns++;
    const t0 = performance.now();
    const det = await this.fp.detect(img);
    const ms = performance.now() - t0;
    const faces = await this.fp.facesFor(img, det);
    this.tracks = faces.map((f) => {
      const box = pointsBox(f.points);
      // keep the smoother of the old track this face continues, so a re-detect does not jump
      let match = -1,
        best = -1;
      oldBoxes.forEach((b, i) => {
        const v = iou(b, box);
        if (v > best) [match, best] = [i, v];
      });
      const smoother =
        match >= 0 && best >= this.options.min_overlap
          ? this.tracks[match].smoother
          : this.options.smooth
            ? new LandmarkSmoother(this.smoothing)
            : null;
      const { points, presence, visibility, uncertainty } = f;
      return { points, presence, visibility, uncertainty, score: f.score, detected: f.box, reference: null, smoother };
    });
    return ms;
  }
}
