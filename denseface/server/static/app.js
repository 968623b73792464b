// denseface page: pick a photo, call AnalyzeDenseLandmarks or AnalyzeFace (TC3-signed in the browser),
// draw the 888 or 90 points per face. No framework, no build step.

import { nearestPoint, render } from "./draw.js";
import { errorParagraphs } from "./errors.js";
import { ACTIONS } from "./regions.js";
import { setupCamera } from "./camera.js";
import { buildLayoutTable, buildLegend, copyText, noteMissingPicture, setupTabs } from "./panels.js";
import { sha256Hex, signTc3, webCryptoAvailable } from "./tc3.js";

const $ = (id) => document.getElementById(id);
const els = {
  form: $("form"), file: $("file"), fileName: $("file-name"), url: $("url"), mode: $("mode"), action: $("action"),
  rotate: $("rotate"), sid: $("sid"), skey: $("skey"), analyze: $("analyze"), stage: $("stage"),
  canvas: $("canvas"), placeholder: $("placeholder"), tooltip: $("tooltip"), status: $("status"),
  timing: $("timing"), download: $("download"), error: $("error"), legend: $("legend"),
  showAll: $("show-all"), hideAll: $("hide-all"), boxes: $("boxes"), json: $("json"),
  copy: $("copy"), copyStatus: $("copy-status"), contextNote: $("context-note"),
};

const STORAGE = { sid: "denseface.secretId", skey: "denseface.secretKey" };
const API = { version: "2020-03-03", region: "ap-guangzhou" };
const chosenAction = () => ACTIONS[els.action.value] || ACTIONS.AnalyzeDenseLandmarks;

// What is on screen. `width`/`height` are the image-pixel coordinate space.
const view = {
  image: null, width: 0, height: 0, tainted: false, faces: [], action: chosenAction(),
  hidden: new Set(), boxes: true, baseName: "photo",
};
let source = null; // {kind: "file", blob, name} | {kind: "url", url}
let imageReady = Promise.resolve();
let requestSeq = 0;

// Test hooks (browser tests read these; see tests/test_page_signing.py).
const hooks = {
  state: "idle", pointsDrawn: 0, faces: 0, error: null, hiddenRegions: [], timingMs: null,
  webCrypto: webCryptoAvailable(), signTc3, sha256Hex, action: view.action.name,
  pointsPerFace: view.action.pointsPerFace,
  camera: { state: "idle", sent: 0, answered: 0, framesWithPoints: 0, frameErrors: 0, trackIds: [], fps: 0 },
};
window.denseface = hooks;

function setState(state) {
  hooks.state = state;
  document.body.dataset.state = state;
  els.analyze.setAttribute("aria-busy", String(state === "busy"));
  els.analyze.textContent = state === "busy" ? "Analyzing…" : "Analyze";
}

// ---------- credentials: URL fragment -> sessionStorage -> inputs ----------

function storageGet(key) {
  try { return sessionStorage.getItem(key) || ""; } catch { return ""; }
}
function storageSet(key, value) {
  try { sessionStorage.setItem(key, value); } catch { /* storage disabled: keep in the input only */ }
}

// The key is typed (or pasted) into the page and kept in this tab's sessionStorage only. It is never
// taken from the address: a crafted link (#sid=…&skey=…) must not replace the key the page holds.
function loadCredentials() {
  els.sid.value = storageGet(STORAGE.sid);
  els.skey.value = storageGet(STORAGE.skey);
  els.sid.addEventListener("input", () => storageSet(STORAGE.sid, els.sid.value.trim()));
  els.skey.addEventListener("input", () => storageSet(STORAGE.skey, els.skey.value.trim()));
}

const haveCredentials = () => Boolean(els.sid.value.trim() && els.skey.value.trim());

// ---------- image sources ----------

function loadImageElement(url, crossOrigin) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    if (crossOrigin) img.crossOrigin = "anonymous";
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error("image failed to load"));
    img.src = url;
  });
}

function setImage(image, tainted) {
  view.image = image;
  view.tainted = tainted;
  view.width = image ? image.naturalWidth || image.width : 0;
  view.height = image ? image.naturalHeight || image.height : 0;
}

function newSource(src, label) {
  source = src;
  view.faces = [];
  hooks.faces = 0;
  els.fileName.textContent = label;
  els.tooltip.hidden = true;
}

function useFile(file) {
  if (!file) return;
  newSource({ kind: "file", blob: file, name: file.name || "pasted image" }, file.name || "pasted image");
  view.baseName = (file.name || "photo").replace(/\.[^.]*$/, "") || "photo";
  els.url.value = "";
  const objectUrl = URL.createObjectURL(file);
  imageReady = loadImageElement(objectUrl, false)
    .then((img) => setImage(img, false))
    .catch(() => setImage(null, false)) // the server will say what is wrong with it
    .finally(() => { URL.revokeObjectURL(objectUrl); redraw(); });
  afterNewSource();
}

function useUrl(url) {
  newSource({ kind: "url", url }, "image from URL");
  view.baseName = (url.split(/[?#]/)[0].split("/").pop() || "photo").replace(/\.[^.]*$/, "") || "photo";
  els.file.value = "";
  // Prefer a CORS load (so the PNG export works); fall back to a display-only load.
  imageReady = loadImageElement(url, true)
    .then((img) => setImage(img, false))
    .catch(() => loadImageElement(url, false).then((img) => setImage(img, true)))
    .catch(() => setImage(null, false))
    .finally(redraw);
}

function afterNewSource() {
  if (haveCredentials()) {
    analyze();
  } else {
    setState("idle");
    els.status.textContent = "Photo loaded. Enter a SecretId and SecretKey, then press Analyze.";
  }
}

function readBase64(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).replace(/^data:[^,]*,/, ""));
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });
}

// ---------- the API call ----------

async function buildBody() {
  const params = {};
  if (source.kind === "url") {
    params.Url = source.url;
  } else {
    try {
      params.Image = await readBase64(source.blob);
    } catch (e) {
      throw Object.assign(new Error(String(e)), { code: "Client.ReadFailed" });
    }
  }
  params.Mode = Number(els.mode.value);
  params.NeedRotateDetection = els.rotate.checked ? 1 : 0;
  params.FaceModelVersion = "3.0";
  return JSON.stringify(params);
}

async function analyze() {
  const seq = ++requestSeq;
  const urlText = els.url.value.trim();
  if (urlText && (!source || source.kind !== "url" || source.url !== urlText)) useUrl(urlText);
  if (!source) return fail({ Code: "Client.NoImage", Message: "No image selected." });
  if (!haveCredentials()) return fail({ Code: "Client.MissingCredentials", Message: "SecretId or SecretKey is empty." });

  const action = chosenAction();
  setState("busy");
  clearError();
  els.status.textContent = "Analyzing…";
  let text;
  let httpStatus;
  try {
    const body = await buildBody();
    const timestamp = Math.floor(Date.now() / 1000);
    const started = performance.now();
    const { authorization } = await signTc3({
      secretId: els.sid.value.trim(), secretKey: els.skey.value.trim(),
      host: location.host, timestamp, payload: body,
    });
    const response = await fetch("/", {
      method: "POST",
      headers: {
        "Content-Type": "application/json",
        "X-TC-Action": action.name,
        "X-TC-Version": API.version,
        "X-TC-Region": API.region,
        "X-TC-Timestamp": String(timestamp),
        "X-TC-Language": navigator.language.toLowerCase().startsWith("zh") ? "zh-CN" : "en-US",
        Authorization: authorization,
      },
      body,
    });
    httpStatus = response.status;
    text = await response.text();
    hooks.timingMs = Math.round(performance.now() - started);
  } catch (e) {
    if (seq !== requestSeq) return;
    return fail({ Code: e.code || "Client.NetworkError", Message: String(e.message || e) });
  }
  if (seq !== requestSeq) return; // a newer request superseded this one

  els.timing.textContent = `${hooks.timingMs} ms`;
  els.timing.title = "Time of the API call: signing, upload, analysis and response";
  let data = null;
  try { data = JSON.parse(text); } catch { /* handled below */ }
  showJson(data ? JSON.stringify(data, null, 2) : text);
  const result = data && data.Response;
  if (!result) {
    return fail({ Code: "Client.BadResponse", Message: `HTTP ${httpStatus}: ${text.slice(0, 200)}` });
  }
  if (result.Error) return fail(result.Error, result.RequestId);

  await imageReady;
  if (seq !== requestSeq) return;
  view.action = action;
  hooks.action = action.name;
  hooks.pointsPerFace = action.pointsPerFace;
  view.faces = Array.isArray(result[action.setField]) ? result[action.setField] : [];
  const w = result.ImageWidth || view.width;
  const h = result.ImageHeight || view.height;
  const mismatch = view.image && (w !== view.width || h !== view.height);
  view.width = w;
  view.height = h;
  hooks.faces = view.faces.length;
  hooks.error = null;
  redraw();
  const n = view.faces.length;
  const total = view.faces.reduce((sum, face) => sum + action.regions.reduce(
    (s, r) => s + (Array.isArray(face[r.name]) ? face[r.name].length : 0), 0), 0);
  els.status.textContent = `${n} face${n === 1 ? "" : "s"}, ${total} points.`
    + (mismatch ? " (The server measured a different image size; the photo is stretched to match.)" : "");
  setState("done");
  if (window.matchMedia("(max-width: 760px)").matches) els.stage.scrollIntoView({ block: "start" });
}

function fail(error, requestId) {
  const code = error.Code || "Unknown";
  const message = error.Message || "";
  hooks.error = { code, message };
  view.faces = [];
  hooks.faces = 0;
  els.error.replaceChildren(...errorParagraphs(code, message));
  if (requestId) {
    const rid = document.createElement("p");
    rid.className = "request-id";
    rid.textContent = `RequestId ${requestId}`;
    els.error.append(rid);
  }
  els.error.hidden = false;
  els.status.textContent = "The request failed.";
  imageReady.then(redraw);
  redraw();
  setState("error");
}

function clearError() {
  els.error.hidden = true;
  els.error.replaceChildren();
  hooks.error = null;
}

// ---------- drawing ----------

let lastStageWidth = 0;

function redraw() {
  const { canvas } = els;
  const hasPicture = view.width > 0 && view.height > 0;
  canvas.hidden = !hasPicture;
  els.placeholder.hidden = hasPicture;
  els.download.disabled = !hasPicture;
  if (!hasPicture) {
    hooks.pointsDrawn = 0;
    return;
  }
  // Fit the image into the stage (CSS pixels), then back the canvas with device pixels.
  const stageWidth = els.stage.clientWidth || view.width;
  lastStageWidth = stageWidth;
  const maxHeight = Math.max(260, window.innerHeight * 0.72);
  const cssScale = Math.min(stageWidth / view.width, maxHeight / view.height);
  const dpr = window.devicePixelRatio || 1;
  canvas.style.width = `${view.width * cssScale}px`;
  canvas.style.height = `${view.height * cssScale}px`;
  canvas.width = Math.max(1, Math.round(view.width * cssScale * dpr));
  canvas.height = Math.max(1, Math.round(view.height * cssScale * dpr));
  const scale = canvas.width / view.width;
  hooks.pointsDrawn = render(canvas.getContext("2d"), {
    image: view.image, width: view.width, height: view.height, faces: view.faces,
    regions: view.action.drawOrder, hidden: view.hidden, boxes: view.boxes, scale, cssPixel: dpr,
  });
  canvas.setAttribute("aria-label", view.faces.length
    ? `Photo with ${view.faces.length} face(s) and ${hooks.pointsDrawn} landmark points drawn`
    : "Photo without landmarks");
}

function showTooltip(event) {
  if (!view.faces.length) return;
  const rect = els.canvas.getBoundingClientRect();
  const perCss = view.width / rect.width; // image pixels per CSS pixel
  const x = (event.clientX - rect.left) * perCss;
  const y = (event.clientY - rect.top) * perCss;
  const hit = nearestPoint(view.faces, view.action.regions, view.hidden, x, y, 8 * perCss);
  if (!hit) {
    els.tooltip.hidden = true;
    return;
  }
  const faceLabel = view.faces.length > 1 ? `Face ${hit.face + 1} · ` : "";
  els.tooltip.textContent = `${faceLabel}${hit.region} #${hit.index}  (${hit.X}, ${hit.Y})`;
  const stageRect = els.stage.getBoundingClientRect();
  els.tooltip.hidden = false;
  const left = rect.left - stageRect.left + hit.X / perCss;
  const top = rect.top - stageRect.top + hit.Y / perCss;
  const maxLeft = stageRect.width - els.tooltip.offsetWidth - 4;
  els.tooltip.style.left = `${Math.max(4, Math.min(left + 12, maxLeft))}px`;
  els.tooltip.style.top = `${Math.max(4, top - els.tooltip.offsetHeight - 10)}px`;
}

// ---------- legend ----------

function setHidden(names, hide) {
  for (const name of names) {
    if (hide) view.hidden.add(name);
    else view.hidden.delete(name);
  }
  for (const button of els.legend.querySelectorAll("button[data-region]")) {
    button.setAttribute("aria-pressed", String(!view.hidden.has(button.dataset.region)));
  }
  hooks.hiddenRegions = view.action.regions.map((r) => r.name).filter((n) => view.hidden.has(n));
  els.tooltip.hidden = true;
  redraw();
}

// ---------- JSON, copy, download ----------

function showJson(text) {
  els.json.textContent = text;
  els.copyStatus.textContent = "";
}

async function copyJson() {
  const ok = await copyText(els.json.textContent);
  els.copyStatus.textContent = ok ? "Copied." : "Copy failed; select the text manually.";
}

function downloadPng() {
  if (!view.width) return;
  // Full resolution (capped), lines sized relative to the image so they read well when shared.
  const cap = Math.min(1, 4096 / Math.max(view.width, view.height));
  const canvas = document.createElement("canvas");
  canvas.width = Math.round(view.width * cap);
  canvas.height = Math.round(view.height * cap);
  const unit = Math.max(1, Math.max(view.width, view.height) / 800);
  render(canvas.getContext("2d"), {
    image: view.image, width: view.width, height: view.height, faces: view.faces,
    regions: view.action.drawOrder, hidden: view.hidden, boxes: view.boxes, scale: cap, cssPixel: unit * cap,
  });
  try {
    canvas.toBlob((blob) => {
      const link = document.createElement("a");
      link.href = URL.createObjectURL(blob);
      link.download = `${view.baseName}-denseface.png`;
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 10000);
    }, "image/png");
  } catch {
    els.status.textContent = "This photo's site does not allow reading it back (no CORS), so it cannot be "
      + "exported. Download the photo and open it as a file instead.";
  }
}

// ---------- wiring ----------

function setupInputs() {
  els.form.addEventListener("submit", (e) => {
    e.preventDefault();
    analyze();
  });
  els.file.addEventListener("change", () => useFile(els.file.files[0]));
  document.addEventListener("paste", (e) => {
    const item = [...(e.clipboardData?.items || [])].find((i) => i.kind === "file" && i.type.startsWith("image/"));
    if (!item) return;
    e.preventDefault();
    useFile(item.getAsFile());
  });
  document.addEventListener("dragover", (e) => {
    e.preventDefault();
    els.stage.classList.add("dragging");
  });
  document.addEventListener("dragleave", (e) => {
    if (!e.relatedTarget) els.stage.classList.remove("dragging");
  });
  document.addEventListener("drop", (e) => {
    e.preventDefault();
    els.stage.classList.remove("dragging");
    const file = e.dataTransfer?.files?.[0];
    const uri = e.dataTransfer?.getData("text/uri-list");
    if (file) useFile(file);
    else if (uri) {
      els.url.value = uri.split("\n")[0].trim();
      analyze();
    }
  });
  els.canvas.addEventListener("pointermove", showTooltip);
  els.canvas.addEventListener("pointerdown", showTooltip); // a tap on touch screens
  els.canvas.addEventListener("pointerleave", () => { els.tooltip.hidden = true; });
  els.showAll.addEventListener("click", () => setHidden(view.action.regions.map((r) => r.name), false));
  els.hideAll.addEventListener("click", () => setHidden(view.action.regions.map((r) => r.name), true));
  els.action.addEventListener("change", chooseAction);
  els.boxes.addEventListener("click", () => {
    view.boxes = !view.boxes;
    els.boxes.setAttribute("aria-pressed", String(view.boxes));
    redraw();
  });
  els.copy.addEventListener("click", copyJson);
  els.download.addEventListener("click", downloadPng);
  new ResizeObserver(() => {
    if (els.stage.clientWidth !== lastStageWidth && view.width) redraw();
  }).observe(els.stage);
}

function showContextNote() {
  if (webCryptoAvailable()) return;
  els.contextNote.textContent = "This page was opened over plain HTTP on a network address, which browsers do not "
    + "treat as secure, so WebCrypto is unavailable. Requests are signed with the page's bundled SHA-256 instead "
    + "and still work, but anyone on the network could read or alter this page. Prefer http://127.0.0.1 or "
    + "http://localhost on the server machine, or HTTPS.";
  els.contextNote.hidden = false;
}

// ---------- the action: 888 points (AnalyzeDenseLandmarks) or 90 (AnalyzeFace) ----------

function chooseAction() {
  const action = chosenAction();
  els.mode.options[0].textContent = `All faces (up to ${action.maxFaces})`;
  view.action = action;
  view.faces = [];
  view.hidden.clear();
  hooks.action = action.name;
  hooks.pointsPerFace = action.pointsPerFace;
  hooks.faces = 0;
  hooks.hiddenRegions = [];
  buildLegend(els.legend, action.regions, (name) => setHidden([name], !view.hidden.has(name)));
  els.tooltip.hidden = true;
  redraw();
  if (source && haveCredentials()) analyze();
}

loadCredentials();
buildLegend(els.legend, view.action.regions, (name) => setHidden([name], !view.hidden.has(name)));
buildLayoutTable("layout-table", ACTIONS.AnalyzeDenseLandmarks.regions, "layout-total");
buildLayoutTable("shape90-table", ACTIONS.AnalyzeFace.regions, "shape90-total");
noteMissingPicture(document.getElementById("layout-img"));
noteMissingPicture(document.getElementById("shape90-img"));
setupTabs((tabId) => { if (tabId === "tab-analyze") redraw(); });
setupInputs();
setupCamera({
  els: {
    start: $("camera-start"), stop: $("camera-stop"), video: $("camera-video"), canvas: $("camera-canvas"),
    status: $("camera-status"), stats: $("camera-stats"), error: $("camera-error"), mode: $("camera-mode"),
  },
  credentials: () => ({ secretId: els.sid.value.trim(), secretKey: els.skey.value.trim() }),
  action: ACTIONS.AnalyzeDenseLandmarks,
  hooks: hooks.camera,
});
showContextNote();
setState("idle");
