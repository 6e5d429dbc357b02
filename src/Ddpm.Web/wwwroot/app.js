// The page of `ddpm serve`: plain JavaScript over the JSON API, no build step, nothing loaded from elsewhere.
"use strict";

const $ = (id) => document.getElementById(id);
let models = [];
let job = null;          // { id, events } of the sampling job on screen
let uploadedImage = null; // a data URL chosen for the forward process

/** A failed API call: the problem document (RFC 9457) the server answered with. */
class ApiError extends Error {
  constructor(problem) {
    super(problem.detail || problem.title || "request failed");
    this.problem = problem;
  }
}

/** Calls the API; any non-2xx answer becomes an ApiError carrying the server's problem document. */
async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(path, options);
  } catch (e) {
    throw new ApiError({ status: 0, title: "Network error", detail: "the server cannot be reached: " + e.message });
  }
  if (!response.ok) {
    let problem;
    try {
      problem = await response.json();
    } catch {
      problem = { status: response.status, title: response.statusText, detail: "the server answered " + response.status };
    }
    if (response.status === 429 && response.headers.get("Retry-After")) {
      problem.detail += " (retry in " + response.headers.get("Retry-After") + " s)";
    }
    throw new ApiError(problem);
  }
  return response;
}

function postJson(path, body) {
  return api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
}

/** Shows an error in the element `where` (its section's error line), or hides it with null. */
function showError(where, error) {
  const element = $(where);
  if (!error) {
    element.hidden = true;
    element.textContent = "";
    return;
  }
  const p = error.problem || { detail: String(error.message || error) };
  const status = p.status ? p.status + (p.title ? " " + p.title : "") + ": " : "";
  element.textContent = status + (p.field ? "[" + p.field + "] " : "") + p.detail;
  element.hidden = false;
}

function selectedModel() {
  return models.find((m) => m.name === $("model").value);
}

function numberOrNull(id) {
  const text = $(id).value.trim();
  return text === "" ? null : Number(text);
}

// ---------------------------------------------------------------- models

async function loadModels() {
  try {
    models = await (await api("/api/models")).json();
  } catch (e) {
    showError("page-error", e);
    return;
  }
  const select = $("model");
  select.replaceChildren(...models.map((m) => {
    const option = document.createElement("option");
    option.value = m.name;
    option.textContent = m.name + " (" + m.channels + "×" + m.imageSize + "×" + m.imageSize + (m.conditional ? ", " + m.classes + " classes" : "") + ", T = " + m.timesteps + ")";
    return option;
  }));
  if (models.length === 0) {
    showError("page-error", new ApiError({ detail: "no models are served: start ddpm serve with --models DIR pointing at a folder of checkpoint directories." }));
  }
  modelChanged();
}

function modelChanged() {
  const m = selectedModel();
  const classes = $("class");
  const options = [new Option("classes in turn", "")];
  if (m && m.conditional) {
    for (let k = 0; k < m.classes; k++) {
      options.push(new Option(k + (m.classNames ? ": " + m.classNames[k] : ""), String(k)));
    }
  }
  classes.replaceChildren(...options);
  classes.disabled = !(m && m.conditional);
  $("guidance").disabled = !(m && m.conditional);
  if (m) {
    $("steps").max = m.timesteps;
    $("forward-t").max = m.timesteps;
    $("interp-t").max = m.timesteps;
    if (Number($("forward-t").value) > m.timesteps) $("forward-t").value = Math.round(m.timesteps / 4);
  }
  samplerChanged();
  updateForward();
}

function samplerChanged() {
  $("eta").disabled = $("sampler").value !== "ddim";
}

// ---------------------------------------------------------------- sampling

async function startSampling(event) {
  event.preventDefault();
  showError("sample-error", null);
  stopWatching();
  const m = selectedModel();
  const body = {
    model: $("model").value,
    sampler: $("sampler").value,
    steps: numberOrNull("steps"),
    n: numberOrNull("n"),
    seed: numberOrNull("seed"),
  };
  if (!$("eta").disabled && numberOrNull("eta") !== null) body.eta = numberOrNull("eta");
  if (m && m.conditional) {
    if ($("class").value !== "") body.class = Number($("class").value);
    if (numberOrNull("guidance") !== null) body.guidanceScale = numberOrNull("guidance");
  }
  let accepted;
  try {
    accepted = await (await postJson("/api/samples", body)).json();
  } catch (e) {
    showError("sample-error", e);
    return;
  }
  $("grid-figure").hidden = true;
  $("cancel-button").disabled = false;
  $("sample-button").disabled = true;
  setStatus(accepted.position > 0 ? "queued: " + accepted.position + " job(s) before this one" : "starting");
  watch(accepted.id);
}

function watch(id) {
  const events = new EventSource("/api/samples/" + id + "/events");
  job = { id, events };
  events.addEventListener("status", (e) => {
    const s = JSON.parse(e.data);
    if (s.status === "queued") setStatus("queued: " + s.position + " job(s) before this one");
    else if (s.status === "running") setStatus("running");
  });
  events.addEventListener("frame", (e) => {
    const f = JSON.parse(e.data);
    $("xt").src = f.xt;
    $("x0").src = f.x0;
    $("step-counter").textContent = f.step + " / " + f.totalSteps;
    $("t-counter").textContent = String(f.timestep);
    $("rate-counter").textContent = f.imagesPerSecond.toFixed(2);
  });
  events.addEventListener("done", (e) => {
    const d = JSON.parse(e.data);
    events.close();
    finished(id, d);
  });
  events.onerror = () => {
    // EventSource reconnects by itself; a stream that ends before "done" means the server went away.
    if (job && job.events === events) {
      events.close();
      finished(id, { status: "failed", error: { detail: "the connection to the server was lost." } });
    }
  };
}

function finished(id, done) {
  if (job && job.id === id) job = null;
  $("cancel-button").disabled = true;
  $("sample-button").disabled = false;
  if (done.status === "done") {
    const url = done.gridUrl;
    $("grid").src = url;
    $("grid-download").href = url;
    $("grid-download").setAttribute("download", "ddpm-" + id + ".png");
    $("grid-figure").hidden = false;
    setStatus("done: the final samples are below");
  } else if (done.status === "cancelled") {
    setStatus("cancelled");
  } else {
    setStatus("failed");
    showError("sample-error", new ApiError(done.error || { detail: "the job failed" }));
  }
}

function stopWatching() {
  if (job) {
    job.events.close();
    job = null;
  }
}

async function cancelSampling() {
  if (!job) return;
  const id = job.id;
  try {
    await api("/api/samples/" + id, { method: "DELETE" });
    setStatus("cancelling");
  } catch (e) {
    showError("sample-error", e);
  }
}

function setStatus(text) {
  $("sample-status").textContent = text;
}

// ---------------------------------------------------------------- forward process

let forwardTimer = 0;
let forwardRequest = 0;

function updateForward() {
  const t = Number($("forward-t").value);
  $("forward-t-value").textContent = "t = " + t;
  clearTimeout(forwardTimer);
  forwardTimer = setTimeout(runForward, 120); // one request per pause of the slider, not per pixel moved
}

async function runForward() {
  const m = selectedModel();
  if (!m) return;
  const ticket = ++forwardRequest;
  const body = {
    model: m.name,
    image: uploadedImage || $("forward-image").value.trim(),
    t: [Number($("forward-t").value)],
    seed: 0,
    labels: false,
  };
  try {
    const response = await postJson("/api/forward", body);
    const blob = await response.blob();
    if (ticket !== forwardRequest) return; // a newer position of the slider is on its way
    showError("forward-error", null);
    const old = $("forward-result").src;
    $("forward-result").src = URL.createObjectURL(blob);
    if (old.startsWith("blob:")) URL.revokeObjectURL(old);
    const signal = response.headers.get("X-Sqrt-Alpha-Bar");
    $("forward-signal").textContent = "√ᾱt = " + (signal || "–");
  } catch (e) {
    if (ticket === forwardRequest) showError("forward-error", e);
  }
}

function uploadChosen() {
  const file = $("forward-upload").files[0];
  if (!file) {
    uploadedImage = null;
    $("forward-image").disabled = false;
    updateForward();
    return;
  }
  const reader = new FileReader();
  reader.onload = () => {
    uploadedImage = reader.result;
    $("forward-image").disabled = true;
    updateForward();
  };
  reader.readAsDataURL(file);
}

// ---------------------------------------------------------------- interpolation

let stripLabels = [];

async function interpolate(event) {
  event.preventDefault();
  showError("interpolate-error", null);
  const m = selectedModel();
  if (!m) return;
  $("interpolate-button").disabled = true;
  try {
    const response = await postJson("/api/interpolate", {
      model: m.name,
      a: $("interp-a").value.trim(),
      b: $("interp-b").value.trim(),
      t: numberOrNull("interp-t"),
      steps: numberOrNull("interp-steps"),
      method: $("interp-method").value,
    });
    stripLabels = (response.headers.get("X-Labels") || "").split(",");
    const strip = $("strip");
    const old = strip.src;
    strip.src = URL.createObjectURL(await response.blob());
    if (old.startsWith("blob:")) URL.revokeObjectURL(old);
    await strip.decode();
    const lambda = $("lambda");
    lambda.max = String(stripLabels.length - 1);
    lambda.value = String(Math.floor((stripLabels.length - 1) / 2));
    $("lambda-fields").hidden = false;
    $("lambda-figure").hidden = false;
    showLambda();
  } catch (e) {
    showError("interpolate-error", e);
  } finally {
    $("interpolate-button").disabled = false;
  }
}

/** Draws the strip's image at the λ slider's position, enlarged: the strip is a row of size×size cells, 2 pixels apart. */
function showLambda() {
  const m = selectedModel();
  const k = Number($("lambda").value);
  const canvas = $("lambda-view");
  const context = canvas.getContext("2d");
  context.imageSmoothingEnabled = false;
  const size = m ? m.imageSize : 28;
  context.clearRect(0, 0, canvas.width, canvas.height);
  context.drawImage($("strip"), 2 + k * (size + 2), 2, size, size, 0, 0, canvas.width, canvas.height);
  const label = stripLabels[k] || "";
  $("lambda-value").textContent = label === "a" || label === "b" ? "image " + label : "λ = " + label;
}

// ---------------------------------------------------------------- start

document.addEventListener("DOMContentLoaded", () => {
  $("model").addEventListener("change", modelChanged);
  $("sampler").addEventListener("change", samplerChanged);
  $("sample-form").addEventListener("submit", startSampling);
  $("cancel-button").addEventListener("click", cancelSampling);
  $("forward-t").addEventListener("input", updateForward);
  $("forward-image").addEventListener("change", updateForward);
  $("forward-upload").addEventListener("change", uploadChosen);
  $("interpolate-form").addEventListener("submit", interpolate);
  $("lambda").addEventListener("input", showLambda);
  loadModels();
});
