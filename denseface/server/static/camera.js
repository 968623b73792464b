// Camera mode: the browser's camera (getUserMedia) streamed to GET /v1/stream, the 888 points and each
// face's TrackId drawn live over the frame they belong to, with answered frames/s and latency.
//
// Frames are sent as the server keeps up: two in flight at most (the next frame leaves when an answer
// arrives), each a JPEG of the current video frame at most 640 px wide. The server tracks and smooths
// the faces as `denseface video` does (docs/stream.md).

import { render } from "./draw.js";
import { errorParagraphs } from "./errors.js";
import { signStreamQuery } from "./tc3.js";

const IN_FLIGHT = 2;
const MAX_WIDTH = 640;
const JPEG_QUALITY = 0.8;

/**
 * @param {object} o
 * @param {object} o.els       {start, stop, video, canvas, status, stats, error, mode}
 * @param {() => {secretId: string, secretKey: string}} o.credentials
 * @param {object} o.action    ACTIONS.AnalyzeDenseLandmarks (regions and drawing order)
 * @param {object} o.hooks     test hooks (window.denseface.camera)
 */
export function setupCamera({ els, credentials, action, hooks }) {
  let media = null;
  let socket = null;
  let sent = new Map(); // frame index -> {at, snapshot}
  let next = 0;
  let answeredTimes = [];

  function setState(state, text) {
    hooks.state = state;
    els.status.textContent = text;
    els.start.disabled = state === "starting" || state === "live";
    els.stop.disabled = !(state === "starting" || state === "live");
  }

  function showError(code, message) {
    hooks.error = { code, message };
    els.error.replaceChildren(...errorParagraphs(code, message));
    els.error.hidden = false;
  }

  function snapshot() {
    const { videoWidth: w, videoHeight: h } = els.video;
    if (!w || !h) return null;
    const scale = Math.min(1, MAX_WIDTH / w);
    const frame = document.createElement("canvas");
    frame.width = Math.round(w * scale);
    frame.height = Math.round(h * scale);
    frame.getContext("2d").drawImage(els.video, 0, 0, frame.width, frame.height);
    return frame;
  }

  function sendFrame() {
    if (!socket || socket.readyState !== WebSocket.OPEN || sent.size >= IN_FLIGHT) return;
    const frame = snapshot();
    if (!frame) {
      setTimeout(sendFrame, 30);
      return;
    }
    const index = next++;
    sent.set(index, { at: performance.now(), frame });
    frame.toBlob((blob) => {
      if (socket && socket.readyState === WebSocket.OPEN && blob) socket.send(blob);
    }, "image/jpeg", JPEG_QUALITY);
    hooks.sent = next;
  }

  function draw(frame, faces) {
    const { canvas } = els;
    canvas.hidden = false;
    const cssWidth = Math.min(canvas.parentElement.clientWidth || frame.width, frame.width * 2);
    const cssScale = cssWidth / frame.width;
    const dpr = window.devicePixelRatio || 1;
    canvas.style.width = `${frame.width * cssScale}px`;
    canvas.style.height = `${frame.height * cssScale}px`;
    canvas.width = Math.round(frame.width * cssScale * dpr);
    canvas.height = Math.round(frame.height * cssScale * dpr);
    const scale = canvas.width / frame.width;
    const ctx = canvas.getContext("2d");
    const drawn = render(ctx, {
      image: frame, width: frame.width, height: frame.height, faces, regions: action.drawOrder,
      hidden: new Set(), boxes: true, scale, cssPixel: dpr,
    });
    ctx.setTransform(scale, 0, 0, scale, 0, 0);
    ctx.font = `600 ${14 * dpr / scale}px system-ui, sans-serif`;
    ctx.textBaseline = "top";
    for (const face of faces) { // the track id under the box: stable while the face is followed
      const label = `id ${face.TrackId}`;
      const y = face.Y + face.Height + 2;
      ctx.fillStyle = "rgba(17,24,39,0.85)";
      ctx.fillRect(face.X, y, ctx.measureText(label).width + 8, 18 * dpr / scale);
      ctx.fillStyle = "#ffffff";
      ctx.fillText(label, face.X + 4, y + 2);
    }
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    return drawn;
  }

  function onAnswer(event) {
    let answer;
    try { answer = JSON.parse(event.data); } catch { return; }
    if (!Number.isInteger(answer.Frame)) { // a refusal or the end of the stream
      if (answer.Error) showError(answer.Error.Code, answer.Error.Message);
      return;
    }
    for (const skipped of answer.Skipped || []) sent.delete(skipped);
    const entry = sent.get(answer.Frame);
    sent.delete(answer.Frame);
    const now = performance.now();
    hooks.answered += 1;
    if (entry) {
      hooks.latencyMs = Math.round(now - entry.at);
      answeredTimes.push(now);
      answeredTimes = answeredTimes.filter((t) => now - t <= 1000);
      hooks.fps = answeredTimes.length;
    }
    if (answer.Error) {
      hooks.frameErrors += 1;
      hooks.lastFrameError = answer.Error.Code;
    } else if (entry) {
      const faces = answer.DenseFaceShapeSet || [];
      hooks.pointsDrawn = draw(entry.frame, faces);
      hooks.faces = faces.length;
      if (faces.length) hooks.framesWithPoints += 1;
      for (const face of faces) if (!hooks.trackIds.includes(face.TrackId)) hooks.trackIds.push(face.TrackId);
    }
    els.stats.textContent = `${hooks.fps} frames/s · ${hooks.latencyMs ?? "–"} ms latency · ${hooks.faces} face(s)`;
    sendFrame();
  }

  async function start() {
    const { secretId, secretKey } = credentials();
    els.error.hidden = true;
    hooks.error = null;
    if (!secretId || !secretKey) {
      showError("Client.MissingCredentials", "Enter a SecretId and SecretKey on the Analyze tab.");
      return;
    }
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      showError("Client.NoCamera", "This browser gives no camera here (a camera needs https:// or localhost).");
      return;
    }
    setState("starting", "Starting the camera…");
    try {
      media = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 360 }, audio: false });
      els.video.srcObject = media;
      await els.video.play();
      const query = await signStreamQuery({ secretId, secretKey, host: location.host, mode: Number(els.mode.value) });
      const scheme = location.protocol === "https:" ? "wss" : "ws";
      socket = new WebSocket(`${scheme}://${location.host}/v1/stream?${query}`);
    } catch (e) {
      stop();
      showError("Client.NoCamera", String(e.message || e));
      return;
    }
    sent = new Map();
    next = 0;
    answeredTimes = [];
    Object.assign(hooks, { answered: 0, framesWithPoints: 0, frameErrors: 0, trackIds: [], fps: 0, latencyMs: null });
    socket.onopen = () => {
      setState("live", "Live.");
      for (let i = 0; i < IN_FLIGHT; i++) sendFrame();
    };
    socket.onmessage = onAnswer;
    socket.onclose = (event) => {
      if (hooks.state !== "stopped") setState("stopped", `Stream closed (${event.code}${event.reason ? ` ${event.reason}` : ""}).`);
      stop();
    };
  }

  function stop() {
    if (socket) {
      const s = socket;
      socket = null;
      if (s.readyState <= WebSocket.OPEN) s.close(1000);
    }
    if (media) {
      for (const track of media.getTracks()) track.stop();
      media = null;
    }
    if (hooks.state !== "stopped") setState("stopped", "Stopped.");
  }

  els.start.addEventListener("click", start);
  els.stop.addEventListener("click", stop);
  setState("idle", "Press Start to stream your camera.");
  return { start, stop };
}
