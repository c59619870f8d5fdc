// The page talks to the same JSON API as any other client; no build step, no network beyond this server.
"use strict";
const TOKEN_KEY = "trt_modnet_token";
let token = sessionStorage.getItem(TOKEN_KEY) || "";

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (token) headers["Authorization"] = "Bearer " + token;
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (response.status === 401) {
    token = window.prompt("This server needs its token:") || "";
    sessionStorage.setItem(TOKEN_KEY, token);
    // Downloads and previews are plain links: the server also reads the token from this cookie.
    document.cookie = TOKEN_KEY + "=" + encodeURIComponent(token) + "; path=/api/; SameSite=Strict";
    if (token) return api(path, options);
  }
  return response;
}

async function errorOf(response) {
  try { return (await response.json()).error || response.statusText; } catch { return response.statusText; }
}

async function showHealth() {
  const response = await api("/api/health");
  if (!response.ok) return;
  const h = await response.json();
  const health = document.getElementById("health");
  // The backend comes with the CLI's reason for it: the name in the header, the reason on hover.
  health.textContent = `${h.model.split("/").pop()} on ${h.backend.split(" (")[0]} (${h.precision}), ` +
    `${h.queue} in queue`;
  health.title = h.backend;
}

function el(tag, attrs = {}, text = "") {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text) node.textContent = text;
  return node;
}

function jobItem(job) {
  const li = el("li", { class: "job", id: "job-" + job.id, "data-state": job.state });
  const head = el("div", { class: "head" });
  head.append(el("span", { class: "names" }, job.names.join(", ")));
  head.append(el("span", { class: "state " + job.state }, job.state));
  li.append(head);
  if (job.state === "running" || job.state === "queued") {
    const bar = el("progress", { max: job.frames_total || 1, value: job.frames_done });
    if (!job.frames_total) bar.removeAttribute("value");
    li.append(bar);
    const eta = job.eta == null ? "" : `, ETA ${Math.round(job.eta)} s`;
    li.append(el("div", { class: "stats" }, `${job.frames_done} frames, ${job.fps.toFixed(1)} fps${eta}`));
  } else if (job.state === "done") {
    li.append(el("div", { class: "stats" }, `${job.frames_done} frames, ${job.fps.toFixed(1)} fps`));
  }
  if (job.error) li.append(el("p", { class: "error" }, job.error));
  if (job.preview) li.append(el("img", { class: "preview", src: job.preview, alt: "contact sheet" }));
  if (job.outputs.length) {
    const links = el("div", { class: "outputs" });
    for (const o of job.outputs) {
      if (o.url === job.preview) continue;
      const size = o.size == null ? "" : ` (${(o.size / 1e6).toFixed(1)} MB)`;
      links.append(el("a", { href: o.url, download: o.download, class: "download" }, o.download + size));
    }
    li.append(links);
  }
  const active = job.state === "running" || job.state === "queued";
  const button = el("button", { class: active ? "cancel" : "remove" }, active ? "Cancel" : "Remove");
  button.addEventListener("click", async () => { await api("/api/jobs/" + job.id, { method: "DELETE" }); refresh(); });
  li.append(button);
  return li;
}

let shown = "";
async function refresh() {
  const response = await api("/api/jobs");
  if (!response.ok) return;
  const { jobs } = await response.json();
  const text = JSON.stringify(jobs);
  if (text === shown) return;  // unchanged: keep the images and links as they are
  shown = text;
  const list = document.getElementById("jobs");
  list.replaceChildren(...jobs.slice().reverse().map(jobItem));
  showHealth();
}

function setup() {
  const form = document.getElementById("job-form");
  const files = document.getElementById("files");
  const drop = document.getElementById("drop");
  const picked = () => {
    document.getElementById("picked").textContent = Array.from(files.files).map((f) => f.name).join(", ");
  };
  files.addEventListener("change", picked);
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault(); drop.classList.remove("over"); files.files = e.dataTransfer.files; picked();
  });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const error = document.getElementById("form-error");
    error.textContent = "";
    if (!files.files.length) { error.textContent = "Pick at least one video or image."; return; }
    const data = new FormData();
    for (const f of files.files) data.append("file", f);
    data.append("mode", document.getElementById("mode").value);
    data.append("format", document.getElementById("format").value);
    const bgFile = document.getElementById("background-file").files[0];
    if (bgFile) data.append("background_file", bgFile);
    else if (document.getElementById("mode").value === "composite")
      data.append("background", document.getElementById("background").value);
    const response = await api("/api/jobs", { method: "POST", body: data });
    if (!response.ok) error.textContent = await errorOf(response);
    form.reset(); picked();
    refresh();
  });
  showHealth();
  refresh();
  setInterval(refresh, 1000);
}

setup();
