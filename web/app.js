// The page: three inputs (photo file, same-origin URL, webcam), drawing, timings, JSON download.
// window.facepoints exposes the same steps for the tests (tests/test_web.py) and benchmarks/web.py.
import { FacePoints, resultJson } from "./facepoints.js";

const $ = (id) => document.getElementById(id);
const view = $("view"), ctx = view.getContext("2d");
const scratch = document.createElement("canvas"), sctx = scratch.getContext("2d", { willReadFrequently: true });
let fp = null, current = null, source = null, camera = null;

function status(text, error = false) {
  $("status").textContent = text;
  $("status").className = error ? "error" : "";
}

// Pixels of an image, a bitmap or a video frame, as RGBA ImageData (no scaling, no colour conversion)
function pixels(drawable, w, h) {
  scratch.width = w; scratch.height = h;
  sctx.drawImage(drawable, 0, 0);
  return sctx.getImageData(0, 0, w, h);
}

async function decode(blob) {
  // EXIF orientation applied (as the Python loader does); colours as stored
  const bmp = await createImageBitmap(blob, { imageOrientation: "from-image", premultiplyAlpha: "none", colorSpaceConversion: "none" });
  const img = pixels(bmp, bmp.width, bmp.height);
  bmp.close();
  return img;
}

async function imageFromUrl(url) {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return decode(await res.blob());
}

function draw(img, result) {
  if (view.width !== img.width || view.height !== img.height) { view.width = img.width; view.height = img.height; }
  ctx.putImageData(img, 0, 0);
  const lines = $("lines").checked, boxes = $("boxes").checked;
  for (const f of result.faces) {
    const xs = f.points.map((p) => p[0]);
    const scale = Math.max(1, (Math.max(...xs) - Math.min(...xs)) / 150);
    ctx.lineWidth = scale;
    if (lines) {
      ctx.strokeStyle = "rgb(255,200,0)";
      ctx.beginPath();
      for (const [a, b] of fp.spec.connections) { ctx.moveTo(f.points[a][0], f.points[a][1]); ctx.lineTo(f.points[b][0], f.points[b][1]); }
      ctx.stroke();
    }
    ctx.fillStyle = "rgb(0,255,0)";
    for (const [x, y] of f.points) { ctx.beginPath(); ctx.arc(x, y, 1.5 * scale, 0, 2 * Math.PI); ctx.fill(); }
    if (boxes) {
      ctx.strokeStyle = "rgb(255,64,64)";
      const [x1, y1, x2, y2] = f.box;
      ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
    }
  }
  const n = result.faces.length;
  $("timing").textContent = `detector ${result.detectorMs.toFixed(1)} ms · landmarks ${result.landmarksMs.toFixed(1)} ms` +
    ` · ${n} face${n === 1 ? "" : "s"} · ${img.width}×${img.height}`;
}

async function show(img, name) {
  const result = await fp.process(img);
  current = { ...result, name, image: img };
  source = name;
  draw(img, result);
  $("download").disabled = false;
  status(result.faces.length ? `${name}: ${result.faces.length} face(s)` : `${name}: no face found`);
  return result;
}

async function run(task) {
  try { return await task(); } catch (e) { status(String(e.message || e), true); throw e; }
}

$("file").addEventListener("change", (ev) => {
  const file = ev.target.files[0];
  if (file) run(async () => { await stopCamera(); return show(await decode(file), file.name); });
});
$("url-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const url = $("url").value.trim();
  if (url) run(async () => { await stopCamera(); return show(await imageFromUrl(url), url.split("/").pop()); });
});
$("download").addEventListener("click", () => {
  if (!current) return;
  const json = JSON.stringify(resultJson(current.name, current.faces), null, 1);
  const a = document.createElement("a");
  a.href = URL.createObjectURL(new Blob([json], { type: "application/json" }));
  a.download = (current.name || "result").replace(/\.[^.]*$/, "") + ".json";
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
});
for (const id of ["lines", "boxes"]) $(id).addEventListener("change", () => current && draw(current.image, current));

// ---- webcam ---------------------------------------------------------------------------------------

const stats = { frames: 0, withFace: 0, detectorMs: [], landmarksMs: [] };

async function startCamera() {
  const stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
  const video = $("video");
  video.srcObject = stream;
  await video.play();
  camera = { stream, running: true, done: null };
  $("camera").textContent = "Stop webcam";
  status("webcam");
  camera.done = (async () => {
    let last = -1;
    while (camera && camera.running) {
      if (video.readyState >= 2 && video.currentTime !== last && video.videoWidth) {
        last = video.currentTime;
        const img = pixels(video, video.videoWidth, video.videoHeight);
        const result = await fp.process(img);
        current = { ...result, name: "webcam", image: img };
        stats.frames++;
        if (result.faces.length) stats.withFace++;
        stats.detectorMs.push(result.detectorMs);
        stats.landmarksMs.push(result.landmarksMs);
        draw(img, result);
        $("download").disabled = false;
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
}

async function stopCamera() {
  if (!camera) return;
  const c = camera;
  c.running = false;
  await c.done;
  c.stream.getTracks().forEach((t) => t.stop());
  camera = null;
  $("camera").textContent = "Start webcam";
}

$("camera").addEventListener("click", () => run(() => (camera ? stopCamera() : startCamera())));

// ---- start -----------------------------------------------------------------------------------------

const ready = (async () => {
  const ort = window.ort;
  ort.env.wasm.wasmPaths = new URL("ort/", location.href).href;
  ort.env.wasm.numThreads = 1;  // a plain static server is not cross-origin isolated: no wasm threads
  fp = await FacePoints.load(ort, "./");
  status("ready: choose a photo, give an image URL on this site, or start the webcam");
  return true;
})().catch((e) => { status(`could not load the models: ${e.message || e}`, true); throw e; });

window.facepoints = {
  ready,
  get fp() { return fp; },
  get current() { return current && { ...current, image: undefined }; },
  stats,
  imageFromUrl,
  show: async (url) => run(async () => show(await imageFromUrl(url), url.split("/").pop())),
  json: () => current && resultJson(current.name, current.faces),
  startCamera: () => run(startCamera),
  stopCamera,
};
