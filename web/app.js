// The page: three inputs (photo file, same-origin URL, webcam), drawing, timings, JSON download.
// window.facepoints exposes the same steps for the tests (tests/test_web.py) and benchmarks/web.py.
import { FacePoints, FaceTracker, resultJson } from "./facepoints.js";
import { decodePng, isPng } from "./png.js";

const $ = (id) => document.getElementById(id);
const view = $("view"),
  ctx = view.getContext("2d");
const scratch = document.createElement("canvas"),
  sctx = scratch.getContext("2d", { willReadFrequently: true });
let fp = null,
  current = null,
  camera = null,
  job = 0;

function status(text, error = false) {
  $("status").textContent = text;
  $("status").className = error ? "error" : "";
}

// Nothing of the previous input stays on screen: no image, no timing, no JSON of another file
function clearResult() {
  current = null;
  $("download").disabled = true;
  $("timing").textContent = "";
  $("trust").textContent = "";
  ctx.clearRect(0, 0, view.width, view.height);
}

function setBusy(on) {
  $("stage").setAttribute("aria-busy", String(on));
}

// The decode and the models hold the main thread for seconds on a big photo: let the busy state be
// painted first (rAF alone never fires in a hidden tab, hence the timer too)
const painted = () =>
  new Promise((r) => {
    requestAnimationFrame(() => setTimeout(r, 0));
    setTimeout(r, 100);
  });

// Pixels of an image, a bitmap or a video frame, as RGBA ImageData (no scaling, no colour conversion)
function pixels(drawable, w, h) {
  scratch.width = w;
  scratch.height = h;
  sctx.drawImage(drawable, 0, 0);
  return sctx.getImageData(0, 0, w, h);
}

// Errors name the file, on one line, in the words of the Python loader (data.load_image)
async function decode(blob, name) {
  if (!blob.size) throw new Error(`${name}: empty file`);
  let bmp;
  try {
    // EXIF orientation applied (as the Python loader does); colours as stored
    bmp = await createImageBitmap(blob, {
      imageOrientation: "from-image",
      premultiplyAlpha: "none",
      colorSpaceConversion: "none",
    });
  } catch (e) {
    throw new Error(`${name}: not a decodable image (${e.message || e})`);
  }
  let img = pixels(bmp, bmp.width, bmp.height);
  bmp.close();
  let transparent = false;
  for (let i = 3; i < img.data.length; i += 4) {
    if (img.data[i] !== 255) {
      transparent = true;
      break;
    }
  }
  if (transparent) {
    // the canvas premultiplies: colours under transparent pixels are lost (black). Python keeps the
    // stored colours and drops the alpha; for PNG so does png.js. (Other formats: the canvas's pixels.)
    const bytes = new Uint8Array(await blob.arrayBuffer());
    if (isPng(bytes)) {
      let png;
      try {
        png = await decodePng(bytes);
      } catch (e) {
        throw new Error(`${name}: not a decodable image (${e.message || e})`);
      }
      img = new ImageData(png.data, png.width, png.height);
    }
    // shown as the model sees it: opaque
    for (let i = 3; i < img.data.length; i += 4) img.data[i] = 255;
  }
  return img;
}

async function imageFromUrl(url) {
  const name = url.split("/").pop() || url;
  let res;
  try {
    res = await fetch(url);
  } catch (e) {
    throw new Error(`${url}: cannot fetch (${e.message || e})`);
  }
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return decode(await res.blob(), name);
}

// As drawing.draw_face: points the model thinks covered (visibility < hidden_below) as rings, or not at all
// (with their lines) when "hide covered points" is ticked
function draw(img, result) {
  if (view.width !== img.width || view.height !== img.height) {
    view.width = img.width;
    view.height = img.height;
  }
  ctx.putImageData(img, 0, 0);
  const lines = $("lines").checked,
    boxes = $("boxes").checked,
    hide = $("hide").checked;
  for (const f of result.faces) {
    const xs = f.points.map((p) => p[0]);
    const scale = Math.max(1, (Math.max(...xs) - Math.min(...xs)) / 150);
    const covered = f.points.map((_, k) => !!f.visibility && f.visibility[k] < fp.spec.hidden_below);
    const shown = covered.map((c) => !(c && hide));
    ctx.lineWidth = scale;
    if (lines) {
      ctx.strokeStyle = "rgb(255,200,0)";
      ctx.beginPath();
      for (const [a, b] of fp.spec.connections) {
        if (!shown[a] || !shown[b]) continue;
        ctx.moveTo(f.points[a][0], f.points[a][1]);
        ctx.lineTo(f.points[b][0], f.points[b][1]);
      }
      ctx.stroke();
    }
    ctx.fillStyle = ctx.strokeStyle = "rgb(0,255,0)";
    f.points.forEach(([x, y], k) => {
      if (!shown[k]) return;
      ctx.beginPath();
      ctx.arc(x, y, 1.5 * scale + (covered[k] ? 1 : 0), 0, 2 * Math.PI);
      if (covered[k]) ctx.stroke();
      else ctx.fill();
    });
    if (boxes) {
      ctx.strokeStyle = "rgb(255,64,64)";
      const [x1, y1, x2, y2] = f.box;
      ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
    }
  }
  const n = result.faces.length;
  $("timing").textContent =
    `detector ${result.detectorMs.toFixed(1)} ms · landmarks ${result.landmarksMs.toFixed(1)} ms` +
    ` · ${n} face${n === 1 ? "" : "s"} · ${img.width}×${img.height}`;
  $("trust").textContent = result.faces
    .filter((f) => f.presence !== null && f.presence !== undefined)
    .map((f, i) => {
      const hidden = f.visibility.filter((v) => v < fp.spec.hidden_below).length;
      const err = f.uncertainty.reduce((a, b) => a + b, 0) / f.uncertainty.length;
      return `face ${i + 1}: presence ${f.presence.toFixed(2)}, ${hidden} covered point${hidden === 1 ? "" : "s"}, expected error ${err.toFixed(1)} px`;
    })
    .join(" · ");
}

// One input at a time: a newer one supersedes one still running, whose result is then dropped
async function show(name, load) {
  const id = ++job;
  clearResult();
  setBusy(true);
  status(`working on ${name}…`);
  try {
    await stopCamera();
    await painted();
    await ready;
    const img = await load();
    if (id !== job) return null;
    const result = await fp.process(img);
    if (id !== job) return null;
    current = { ...result, name, image: img };
    draw(img, result);
    $("download").disabled = false;
    status(result.faces.length ? `${name}: ${result.faces.length} face(s)` : `${name}: no face found`);
    return result;
  } catch (e) {
    if (id === job) {
      clearResult();
      report(e);
    }
    throw e;
  } finally {
    if (id === job) setBusy(false);
  }
}

function report(e) {
  status(String(e?.message || e).replace(/\s+/g, " "), true);
}

async function run(task) {
  try {
    return await task();
  } catch (e) {
    report(e);
    throw e;
  }
}

// The page's own controls: a failure is already reported in #status; not an unhandled rejection too
const handled = (promise) => promise.catch(() => {});

$("file").addEventListener("change", (ev) => {
  const file = ev.target.files[0];
  ev.target.value = ""; // choosing the same file again (after fixing it, say) is a change too
  if (file) handled(show(file.name, () => decode(file, file.name)));
});
$("url-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const url = $("url").value.trim();
  if (url) handled(show(url.split("/").pop() || url, () => imageFromUrl(url)));
});
$("download").addEventListener("click", () => {
  if (!current) return;
  const json = JSON.stringify(resultJson(current.name, current.faces), null, 1);
  const a = document.createElement("a");
  a.href = URL.createObjectURL(new Blob([json], { type: "application/json" }));
  a.download = `${(current.name || "result").replace(/\.[^.]*$/, "")}.json`;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
});
for (const id of ["lines", "boxes", "hide"])
  $(id).addEventListener("change", () => current && draw(current.image, current));

// ---- webcam ---------------------------------------------------------------------------------------

// frames: processed frames; withFace: those with a face; detectorRuns: frames where the detector ran (the others
// tracked from the previous points); fps: processed frames per second over the last FPS_WINDOW_MS
const FPS_WINDOW_MS = 3000;
const stats = { frames: 0, withFace: 0, detectorRuns: 0, fps: 0, detectorMs: [], landmarksMs: [] };
const frameTimes = [];

function countFrame(result) {
  const now = performance.now();
  stats.frames++;
  if (result.faces.length) stats.withFace++;
  if (result.detected) {
    stats.detectorRuns++;
    stats.detectorMs.push(result.detectorMs);
  }
  stats.landmarksMs.push(result.landmarksMs);
  for (const list of [stats.detectorMs, stats.landmarksMs]) if (list.length > 1000) list.shift();
  frameTimes.push(now);
  while (frameTimes.length && frameTimes[0] < now - FPS_WINDOW_MS) frameTimes.shift();
  const span = frameTimes.length > 1 ? frameTimes[frameTimes.length - 1] - frameTimes[0] : 0;
  stats.fps = span > 0 ? ((frameTimes.length - 1) * 1000) / span : 0;
}

// Webcam tracking as Python's video tracking (facepoints.js FaceTracker): the detector on the first frame, on
// loss and every redetect_every frames, the landmarks' crops from the previous points in between, smoothed
async function startCamera() {
  const stream = await navigator.mediaDevices.getUserMedia({
    video: { width: 640, height: 480, frameRate: { ideal: 60 } },
    audio: false,
  });
  const video = $("video");
  video.srcObject = stream;
  await video.play();
  camera = { stream, running: true, done: null };
  $("camera").textContent = "Stop webcam";
  status("webcam");
  const tracker = new FaceTracker(fp);
  Object.assign(stats, { frames: 0, withFace: 0, detectorRuns: 0, fps: 0, detectorMs: [], landmarksMs: [] });
  frameTimes.length = 0;
  // one processed frame per new camera frame: requestVideoFrameCallback fires once a new frame is shown (and
  // lets the page's other tasks run between frames)
  const nextFrame = () =>
    new Promise((r) => {
      if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(() => r());
      setTimeout(r, 200); // a stalled camera: look again
    });
  camera.done = (async () => {
    while (camera?.running) {
      await nextFrame();
      if (!camera?.running || video.readyState < 2 || !video.videoWidth) continue;
      const img = pixels(video, video.videoWidth, video.videoHeight);
      const result = await tracker.update(img, performance.now() / 1000);
      current = { ...result, name: "webcam", image: img };
      countFrame(result);
      draw(img, result);
      $("fps").textContent =
        `${stats.fps.toFixed(1)} frames/s · detector on ${stats.detectorRuns} of ${stats.frames} frames`;
      $("download").disabled = false;
    }
  })();
}

async function stopCamera() {
  if (!camera) return;
  const c = camera;
  c.running = false;
  await c.done;
  for (const t of c.stream.getTracks()) t.stop();
  camera = null;
  $("camera").textContent = "Start webcam";
  $("fps").textContent = "";
}

$("camera").addEventListener("click", () => handled(run(() => (camera ? stopCamera() : startCamera()))));

// ---- start -----------------------------------------------------------------------------------------

const runtime = {
  isolated: window.crossOriginIsolated === true,
  threads: window.crossOriginIsolated === true ? Math.max(1, Math.min(4, navigator.hardwareConcurrency || 1)) : 1,
  simd: true,
};
$("runtime").textContent =
  `onnxruntime-web, wasm SIMD, ${runtime.threads} thread${runtime.threads === 1 ? "" : "s"}` +
  (runtime.isolated ? " (cross-origin isolated)" : " (not cross-origin isolated: serve it with `facepoints web`)");

const ready = (async () => {
  const ort = window.ort;
  ort.env.wasm.wasmPaths = new URL("ort/", location.href).href;
  // wasm threads need SharedArrayBuffer, so a cross-origin isolated page (`facepoints web` sends COOP/COEP);
  // elsewhere one thread. SIMD: the only wasm build shipped (ort-wasm-simd-threaded)
  ort.env.wasm.numThreads = runtime.threads;
  fp = await FacePoints.load(ort, "./");
  if (!job) status("ready: choose a photo, give an image URL on this site, or start the webcam"); // not over "working on"
  return true;
})().catch((e) => {
  status(`could not load the models: ${e.message || e}`, true);
  throw e;
});

window.facepoints = {
  ready,
  runtime,
  get fp() {
    return fp;
  },
  get current() {
    return current && { ...current, image: undefined };
  },
  stats,
  tracker: () => new FaceTracker(fp), // a tracker of its own (tests: the same frames as Python's)
  imageFromUrl,
  show: (url) => show(url.split("/").pop() || url, () => imageFromUrl(url)),
  json: () => current && resultJson(current.name, current.faces),
  startCamera: () => run(startCamera),
  stopCamera,
};
