// The detection page: upload through /v1/jobs, poll the job for progress, then draw the verdict,
// a probability gauge, the face crops with their scores and the fake probability over the timeline; with
// "Show where" (explain=true), each crop's map of where it looks manipulated, and the same map on the frame
// where the most fake person is most fake.
"use strict";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const KEY_STORAGE = "deepfake-api-key";

// Calls the service with the tab's API key. A service with keys answers 401 without a valid one: the page
// then asks for a key and tries again. The key stays in this tab's sessionStorage (gone when the tab closes),
// travels only in the Authorization header, never in a URL.
async function api(path, options = {}) {
  for (;;) {
    const key = sessionStorage.getItem(KEY_STORAGE);
    const response = await fetch(path, { ...options, headers: key ? { Authorization: `Bearer ${key}` } : {} });
    if (response.status !== 401) return response;
    sessionStorage.removeItem(KEY_STORAGE);
    await askForKey(key !== null);
  }
}

function askForKey(refused) {
  $("key-section").hidden = false;
  $("key-message").textContent = refused
    ? "The service refused that key. Enter a valid API key."
    : "This service needs an API key (ask its operator for one).";
  $("key").focus();
  return new Promise((resolve) => {
    $("key-form").onsubmit = (event) => {
      event.preventDefault();
      sessionStorage.setItem(KEY_STORAGE, $("key").value.trim());
      $("key").value = "";
      $("key-section").hidden = true;
      resolve();
    };
  });
}

function svg(tag, attributes, parent) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  if (parent) parent.appendChild(node);
  return node;
}

// The gauge shows the calibrated probability against the model's operating point: the green arc is where a
// video is called real, the amber arc uncertain, the red arc fake; the needle is this video's probability.
function gauge(result) {
  const probability = result.fake_probability;
  const root = svg("svg", { width: 160, height: 100, viewBox: "0 0 160 100", class: "gauge", role: "img" });
  root.setAttribute("aria-label", probability === null ? "no score" : `calibrated fake probability ${probability.toFixed(2)}, ${result.verdict}`);
  const point = (p) => [80 + 60 * Math.cos(Math.PI * (1 - p)), 90 - 60 * Math.sin(Math.PI * (1 - p))];
  const arc = (from, to, color) => {
    const [x0, y0] = point(from), [x1, y1] = point(to);
    svg("path", { d: `M ${x0.toFixed(1)} ${y0.toFixed(1)} A 60 60 0 0 1 ${x1.toFixed(1)} ${y1.toFixed(1)}`, stroke: color, "stroke-width": 14, fill: "none", class: "zone" }, root);
  };
  if (result.threshold === null || result.threshold === undefined) {
    arc(0, 1, "#dde1e8");
  } else {
    arc(0, result.real_threshold, "#a5d6a7");
    arc(result.real_threshold, result.threshold, "#ffe082");
    arc(result.threshold, 1, "#ef9a9a");
  }
  if (probability !== null) {
    const [x, y] = point(probability);
    svg("line", { x1: 80, y1: 90, x2: x.toFixed(1), y2: y.toFixed(1), stroke: "#1f2937", "stroke-width": 3, class: "needle" }, root);
    svg("text", { x: 80, y: 70, "text-anchor": "middle", "font-size": 14 }, root).textContent = `P(fake) ${Math.round(probability * 100)}%`;
  } else {
    svg("text", { x: 80, y: 85, "text-anchor": "middle" }, root).textContent = NO_SCORE_LABELS[result.verdict] || "no score";
  }
  return root;
}

// Face scores over time per person, as the model gave them (before the video is calibrated).
function timeline(faces) {
  const width = 560, height = 160, left = 36, bottom = 24;
  const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, class: "timeline", role: "img" });
  root.setAttribute("aria-label", "face scores over the video");
  const end = Math.max(...faces.map((f) => f.timestamp), 0.001);
  const x = (t) => left + (t / end) * (width - left - 10);
  const y = (p) => 10 + (1 - p) * (height - bottom - 10);
  for (const p of [0, 0.5, 1]) svg("text", { x: 4, y: y(p) + 4 }, root).textContent = p.toFixed(1);
  svg("text", { x: width - 60, y: height - 4 }, root).textContent = `${end.toFixed(1)} s`;
  const tracks = new Map();
  for (const face of faces) {
    if (!tracks.has(face.track_id)) tracks.set(face.track_id, []);
    tracks.get(face.track_id).push(face);
  }
  const colors = ["#2f6fed", "#e67e22", "#8e44ad", "#16a085"];
  for (const [track, points] of tracks) {
    points.sort((a, b) => a.timestamp - b.timestamp);
    const d = points.map((f, i) => `${i ? "L" : "M"} ${x(f.timestamp).toFixed(1)} ${y(f.fake_probability).toFixed(1)}`).join(" ");
    svg("path", { d, stroke: colors[track % colors.length], "stroke-width": 2, fill: "none", class: "track" }, root);
    for (const f of points) svg("circle", { cx: x(f.timestamp), cy: y(f.fake_probability), r: 3, fill: colors[track % colors.length] }, root);
  }
  return root;
}

// A face's map as a small image, one pixel per cell: red where it looks manipulated, transparent where not.
function heatImage(heatmap) {
  const rows = heatmap.length, cols = heatmap[0].length;
  const small = document.createElement("canvas");
  small.width = cols;
  small.height = rows;
  const context = small.getContext("2d");
  const image = context.createImageData(cols, rows);
  heatmap.forEach((row, r) => row.forEach((value, c) => {
    image.data.set([255, Math.round(210 * (1 - value)), 0, Math.round(180 * value)], 4 * (r * cols + c));
  }));
  context.putImageData(image, 0, 0);
  return small;
}

// Draws a map stretched over a box of a canvas, smoothed between cells as the map is coarser than the face.
function drawHeat(context, heatmap, x, y, width, height) {
  context.imageSmoothingEnabled = true;
  context.drawImage(heatImage(heatmap), x, y, width, height);
}

// The map over a face crop: a canvas laid on the thumbnail, the same square the model saw.
function cropOverlay(face) {
  const canvas = document.createElement("canvas");
  canvas.className = "heatmap";
  canvas.width = canvas.height = 64;
  drawHeat(canvas.getContext("2d"), face.heatmap, 0, 0, 64, 64);
  return canvas;
}

// The face of the most fake person (the highest mean score) in the frame where it scores highest.
function mostFakeFace(faces) {
  const tracks = new Map();
  for (const face of faces) tracks.set(face.track_id, [...(tracks.get(face.track_id) || []), face]);
  const mean = (items) => items.reduce((sum, f) => sum + f.fake_probability, 0) / items.length;
  const person = [...tracks.values()].reduce((best, items) => (mean(items) > mean(best) ? items : best));
  return person.reduce((best, face) => (face.fake_probability > best.fake_probability ? face : best));
}

// The uploaded file's frame of `face` (an image as it is, a video sought to the face's time) with the face's
// crop box and map on it. The frame is drawn by the browser from the file it still holds: nothing is fetched.
function frameOverlay(result, face, file) {
  const figure = document.createElement("figure");
  figure.className = "frame";
  const canvas = document.createElement("canvas");
  canvas.className = "frame-heatmap";
  const scale = Math.min(1, 480 / result.width);
  canvas.width = Math.round(result.width * scale);
  canvas.height = Math.round(result.height * scale);
  const caption = document.createElement("figcaption");
  caption.textContent = `Where person ${face.track_id} looks most manipulated, at ${face.timestamp.toFixed(2)} s (P(fake) ${face.fake_probability.toFixed(2)} for this face)`;
  figure.append(canvas, caption);
  const context = canvas.getContext("2d");
  const overlay = (source) => {
    if (source) context.drawImage(source, 0, 0, canvas.width, canvas.height);
    else {
      context.fillStyle = "#dde1e8";
      context.fillRect(0, 0, canvas.width, canvas.height);
      caption.textContent += "; this browser cannot show the frame itself";
    }
    const [x, y, width, height] = face.crop_box.map((v) => v * scale);
    drawHeat(context, face.heatmap, x, y, width, height);
    context.strokeStyle = "#2f6fed";
    context.lineWidth = 2;
    context.strokeRect(x, y, width, height);
    canvas.dataset.frame = source ? "drawn" : "unavailable";
    URL.revokeObjectURL(url);
  };
  const url = URL.createObjectURL(file);
  if (result.media_type.startsWith("image/")) {
    const image = new Image();
    image.onload = () => overlay(image);
    image.onerror = () => overlay(null);
    image.src = url;
  } else {
    const video = document.createElement("video");
    video.muted = true;
    video.preload = "auto";
    video.onloadeddata = () => { video.currentTime = face.timestamp; };
    video.onseeked = () => overlay(video);
    video.onerror = () => overlay(null);
    video.src = url;
  }
  return figure;
}

function showResult(result, file) {
  const card = document.createElement("article");
  card.className = "result";
  const title = document.createElement("h3");
  if (result.error) {
    title.innerHTML = `${escapeHtml(result.file_name)}: <span class="verdict-error">not analysed</span>`;
    card.appendChild(title);
    const reason = document.createElement("p");
    reason.textContent = `${result.error.message} (${result.status}${result.error.limit ? ", limit " + result.error.limit : ""})`;
    card.appendChild(reason);
  } else {
    const label = VERDICT_LABELS[result.verdict] || result.verdict;
    title.innerHTML = `${escapeHtml(result.file_name)}: <span class="verdict verdict-${result.verdict}">${label}</span>`;
    card.appendChild(title);
    card.appendChild(gauge(result));
    const why = document.createElement("p");
    why.className = "explanation";
    why.textContent = result.explanation || "";
    card.appendChild(why);
    const details = document.createElement("div");
    details.innerHTML = `<p>${result.frames_analysed} frames, ${result.faces.length} faces, rule ${result.rule},
      model ${escapeHtml(result.model_name)} v${result.model_version ?? "?"}, ${result.timings_s.total.toFixed(2)} s</p>`;
    if (result.faces.length > 1) details.appendChild(timeline(result.faces));
    card.appendChild(details);
    const faces = document.createElement("div");
    faces.className = "faces";
    for (const face of result.faces) {
      const item = document.createElement("div");
      item.className = "face";
      item.innerHTML = `<div class="crop"><img alt="face at ${face.timestamp}s" src="data:image/jpeg;base64,${face.thumbnail_jpeg_b64 || ""}"></div>${face.fake_probability.toFixed(2)}`;
      if (face.heatmap) item.firstChild.appendChild(cropOverlay(face));
      faces.appendChild(item);
    }
    card.appendChild(faces);
    const explained = result.faces.filter((face) => face.heatmap);
    if (explained.length && file) card.appendChild(frameOverlay(result, mostFakeFace(explained), file));
    if ((result.other_tracks || []).length) {
      const others = document.createElement("ul");
      others.className = "other-tracks";
      for (const track of result.other_tracks) {
        const item = document.createElement("li");
        item.textContent = `Not counted: a detection seen in ${track.frames} frame(s) from frame ${track.first_frame_index}, best detector confidence ${track.best_confidence.toFixed(2)} (${track.reason}).`;
        others.appendChild(item);
      }
      card.appendChild(others);
    }
    if (result.check_id) card.appendChild(feedbackControl(result));
  }
  $("results").prepend(card);
}

// "Wrong verdict?": the user's label and note, sent to POST /v1/checks/<check_id>/feedback.
function feedbackControl(result) {
  const control = document.createElement("details");
  control.className = "feedback";
  control.innerHTML = `<summary>Wrong verdict?</summary>
    <form><fieldset><legend>This file is</legend>
      <label><input type="radio" name="label" value="real" required> real</label>
      <label><input type="radio" name="label" value="fake"> fake</label></fieldset>
      <label>Note (optional) <input name="note" maxlength="1024" autocomplete="off"></label>
      <button type="submit" class="button">Send</button><p class="feedback-status" role="status"></p></form>`;
  const form = control.querySelector("form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const label = form.querySelector("input[name=label]:checked").value;
    const note = form.querySelector("input[name=note]").value;
    const response = await api(`/v1/checks/${encodeURIComponent(result.check_id)}/feedback`,
      { method: "POST", body: JSON.stringify({ label, note: note || null }) });
    const answer = await response.json();
    form.querySelector(".feedback-status").textContent = response.ok
      ? `Thank you: recorded as ${answer.feedback.label}.` : `Not recorded: ${answer.error.message}`;
    loadHistory();
  });
  return control;
}

const VERDICT_LABELS = { fake: "Fake", uncertain: "Uncertain", real: "Real", no_face: "No face found", no_person: "No person found" };
// Under the gauge of a file without a score: nothing detected, or detections that are none of them a person.
const NO_SCORE_LABELS = { no_face: "no face", no_person: "no person" };

function escapeHtml(text) {
  const node = document.createElement("span");
  node.textContent = text;
  return node.innerHTML;
}

function setProgress(fraction, text) {
  $("progress").hidden = false;
  $("progress-fill").style.width = `${Math.round(fraction * 100)}%`;
  $("progress-text").textContent = text;
}

async function analyse(files) {
  const form = new FormData();
  for (const file of files) form.append("files", file, file.name);
  setProgress(0, `Uploading ${files.length} file(s)…`);
  let started, created;
  for (let attempt = 1; ; attempt++) {
    const explain = $("explain").checked ? "&explain=true" : "";
    started = await api(`/v1/jobs?thumbnails=true${explain}`, { method: "POST", body: form });
    created = await started.json();
    const wait = Number(started.headers.get("Retry-After"));
    // A full service (503), or a key that holds its share (429), answers with Retry-After: wait as it asks.
    if (![429, 503].includes(started.status) || !wait || attempt === 5) break;
    setProgress(0, `The service is busy; trying again in ${wait} s…`);
    await new Promise((resolve) => setTimeout(resolve, Math.min(wait, 30) * 1000));
  }
  if (!started.ok) {
    setProgress(1, `Refused: ${created.error.message}`);
    return;
  }
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, 400));
    const job = await (await api(created.status_url)).json();
    if (job.state === "queued") {
      setProgress(0, "Waiting for a free slot…");
      continue;
    }
    if (job.state === "running") {
      setProgress(job.progress || 0, `${job.file_name || ""}: ${job.stage} (${Math.round((job.progress || 0) * 100)}%)`);
      continue;
    }
    if (job.state === "failed") setProgress(1, `Failed: ${job.error}`);
    else {
      setProgress(1, "Done");
      job.results.forEach((result, index) => showResult(result, files[index]));
    }
    break;
  }
  loadHistory();
}

async function loadHistory() {
  const page = await (await api("/v1/history?limit=20")).json();
  const body = $("history").querySelector("tbody");
  body.innerHTML = "";
  for (const item of page.items) {
    const row = body.insertRow();
    const probability = item.fake_probability === null ? "-" : item.fake_probability.toFixed(2);
    const verdict = item.verdict || `error: ${item.error}`;
    const feedback = item.feedback ? `${item.feedback.label}${item.feedback.note ? ": " + item.feedback.note : ""}` : "-";
    for (const value of [new Date(item.checked_at).toLocaleString(), item.file_name, item.media_type,
      `${(item.size_bytes / 1024).toFixed(0)} KiB`, verdict, probability, `${item.model_name || "-"} ${item.model_version ?? ""}`,
      feedback]) {
      row.insertCell().textContent = value;
    }
  }
}

// Camera mode: the camera's frames go, a few a second, as JPEGs over the /v1/live WebSocket (8 bytes of media
// time, then the image), one at a time: the next once the previous one's update is back, so nothing queues. Each
// update's rolling verdict is shown under the video and each person's face box, coloured by tier, over it. A
// browser cannot set headers on a WebSocket: the key goes as the subprotocols ["bearer", key].
const CAMERA_FPS = 4;
const CAMERA_WINDOW = 8;
const TIER_COLOURS = { fake: "#c62828", uncertain: "#b26a00", real: "#2e7d32" };
let camera = null;

async function startCamera() {
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
  } catch (error) {
    $("camera-status").textContent = `No camera: ${error.message}`;
    return;
  }
  const video = $("camera-video");
  video.srcObject = stream;
  await video.play();
  const key = sessionStorage.getItem(KEY_STORAGE);
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/v1/live?window=${CAMERA_WINDOW}`, key ? ["bearer", key] : []);
  const grab = document.createElement("canvas");
  const started = performance.now();
  camera = { stream, socket, timer: null, waiting: false, updates: 0 };
  $("camera").hidden = false;
  $("camera-start").hidden = true;
  $("camera-stop").hidden = false;
  $("camera-status").textContent = "Connecting…";
  const sendFrame = () => {
    if (camera.waiting || socket.readyState !== WebSocket.OPEN || !video.videoWidth) return;
    camera.waiting = true;
    grab.width = video.videoWidth;
    grab.height = video.videoHeight;
    grab.getContext("2d").drawImage(video, 0, 0);
    const header = new DataView(new ArrayBuffer(8));
    header.setFloat64(0, (performance.now() - started) / 1000);
    grab.toBlob((jpeg) => socket.send(new Blob([header, jpeg])), "image/jpeg", 0.85);
  };
  socket.onopen = () => {
    $("camera-status").textContent = "Live";
    camera.timer = setInterval(sendFrame, 1000 / CAMERA_FPS);
  };
  socket.onmessage = (event) => {
    camera.waiting = false;
    const update = JSON.parse(event.data);
    if (update.error) $("camera-status").textContent = `Frame refused: ${update.error.message}`;
    else showLive(update, grab.width, grab.height);
  };
  socket.onclose = async (event) => {
    const refusedKey = event.code === 1008 && event.reason.includes("key");
    stopCamera(event.reason ? `Closed: ${event.reason}` : "Stopped");
    if (refusedKey) {
      sessionStorage.removeItem(KEY_STORAGE);
      await askForKey(key !== null);
      startCamera();
    }
  };
}

function showLive(update, width, height) {
  camera.updates += 1;
  const line = $("camera-verdict");
  const probability = update.fake_probability === null ? "" : ` ${update.fake_probability.toFixed(2)}`;
  line.textContent = `${update.verdict.replace("_", " ")}${probability}`;
  line.className = `live-verdict verdict-${update.verdict}`;
  line.dataset.updates = String(camera.updates);
  const overlay = $("camera-overlay");
  overlay.width = width;
  overlay.height = height;
  const context = overlay.getContext("2d");
  context.lineWidth = Math.max(2, width / 200);
  context.font = `${Math.max(12, width / 40)}px system-ui, sans-serif`;
  for (const person of update.persons) {
    const [x, y, w, h] = person.box;
    context.strokeStyle = context.fillStyle = TIER_COLOURS[person.tier] || "#6b7280";
    context.strokeRect(x, y, w, h);
    const score = person.fake_probability === null ? "" : ` ${person.fake_probability.toFixed(2)}`;
    context.fillText(`person ${person.track_id}: ${person.tier}${score}`, x, Math.max(12, y - 4));
  }
}

function stopCamera(status) {
  if (!camera) return;
  clearInterval(camera.timer);
  camera.stream.getTracks().forEach((track) => track.stop());
  if (camera.socket.readyState <= WebSocket.OPEN) camera.socket.close();
  camera = null;
  $("camera").hidden = true;
  $("camera-start").hidden = false;
  $("camera-stop").hidden = true;
  $("camera-status").textContent = status;
}

$("camera-start").addEventListener("click", startCamera);
$("camera-stop").addEventListener("click", () => stopCamera("Stopped"));

const drop = $("drop");
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  if (event.dataTransfer.files.length) analyse([...event.dataTransfer.files]);
});
$("picker").addEventListener("change", (event) => { if (event.target.files.length) analyse([...event.target.files]); });
loadHistory();
