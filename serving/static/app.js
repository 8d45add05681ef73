// The detection page: upload through /v1/jobs, poll the job for progress, then draw the verdict,
// a probability gauge, the face crops with their scores and the fake probability over the timeline.
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
    svg("text", { x: 80, y: 85, "text-anchor": "middle" }, root).textContent = result.verdict === "no_face" ? "no face" : "no score";
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

function showResult(result) {
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
      item.innerHTML = `<img alt="face at ${face.timestamp}s" src="data:image/jpeg;base64,${face.thumbnail_jpeg_b64 || ""}">${face.fake_probability.toFixed(2)}`;
      faces.appendChild(item);
    }
    card.appendChild(faces);
    if ((result.other_tracks || []).length) {
      const others = document.createElement("ul");
      others.className = "other-tracks";
      for (const track of result.other_tracks) {
        const item = document.createElement("li");
        item.textContent = `Not counted: a detection seen in ${track.frames} frame(s) from frame ${track.first_frame_index} (${track.reason}).`;
        others.appendChild(item);
      }
      card.appendChild(others);
    }
  }
  $("results").prepend(card);
}

const VERDICT_LABELS = { fake: "Fake", uncertain: "Uncertain", real: "Real", no_face: "No face found" };

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
    started = await api("/v1/jobs?thumbnails=true", { method: "POST", body: form });
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
      job.results.forEach(showResult);
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
    for (const value of [new Date(item.checked_at).toLocaleString(), item.file_name, item.media_type,
      `${(item.size_bytes / 1024).toFixed(0)} KiB`, verdict, probability, `${item.model_name || "-"} ${item.model_version ?? ""}`]) {
      row.insertCell().textContent = value;
    }
  }
}

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
