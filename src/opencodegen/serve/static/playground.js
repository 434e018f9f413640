// The playground: multi-turn synthesis over /v1/synth/sessions and fill-in-the-middle over /v1/completions with
// `suffix`. Plain DOM, no framework and nothing fetched from elsewhere, so the page works offline beside the server.
"use strict";

const $ = (id) => document.getElementById(id);
const SESSION_KEY = "opencodegen.synth.session";
const API_KEY = "opencodegen.api_key"; // a server started with --api-key: asked for once, kept for this tab
let modelName = null;
let session = null;

// ---- talking to the server -------------------------------------------------------------------------------------
async function api(method, path, body, retried = false) {
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const key = sessionStorage.getItem(API_KEY);
  if (key) init.headers["Authorization"] = `Bearer ${key}`;
  const response = await fetch(path, init);
  const data = await response.json().catch(() => null);
  if (response.status === 401 && !retried) {
    const given = window.prompt("This server needs an API key:");
    if (given) {
      sessionStorage.setItem(API_KEY, given.trim());
      return api(method, path, body, true);
    }
  }
  if (!response.ok) {
    const error = new Error(data?.error?.message || `${response.status} ${response.statusText}`);
    error.status = response.status;
    throw error;
  }
  return data;
}

// Runs one user action: buttons are disabled meanwhile (no double submits), and a failure is shown, not thrown.
async function action(work) {
  const buttons = document.querySelectorAll("main button, main input[type=file]");
  buttons.forEach((b) => (b.disabled = true));
  $("busy").hidden = false;
  try {
    await work();
    $("error").hidden = true;
  } catch (e) {
    $("error").textContent = e.message;
    $("error").hidden = false;
  } finally {
    buttons.forEach((b) => (b.disabled = false));
    $("busy").hidden = true;
    updateEditButtons();
  }
}

// ---- Python highlighting ----------------------------------------------------------------------------------------
const KEYWORDS = new Set(("False None True and as assert async await break class continue def del elif else except " +
  "finally for from global if import in is lambda nonlocal not or pass raise return try while with yield match case")
  .split(" "));
const BUILTINS = new Set(("abs all any bool dict enumerate filter float int isinstance len list map max min print " +
  "range reversed round set sorted str sum tuple zip open type super object").split(" "));
const TOKEN = new RegExp([
  /(#[^\n]*)/.source,                                                                  // 1 comment
  /((?:[rRbBuUfF]{1,2})?(?:"""[\s\S]*?(?:"""|$)|'''[\s\S]*?(?:'''|$)|"(?:\\.|[^"\\\n])*"?|'(?:\\.|[^'\\\n])*'?))/
    .source,                                                                           // 2 string
  /(\b(?:0[xXoObB][\da-fA-F_]+|\d[\d_]*\.?\d*(?:[eE][+-]?\d+)?j?)\b)/.source,          // 3 number
  /([A-Za-z_]\w*)/.source,                                                             // 4 name
  /(\s+|.)/.source,                                                                    // 5 anything else
].join("|"), "g");

function escapeHtml(text) {
  return text.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
}

// Returns the code as HTML lines (a token spanning lines, like a docstring, is split at each newline).
function highlightLines(code) {
  const lines = [""];
  let previous = "";
  for (const m of code.matchAll(TOKEN)) {
    const [text, comment, string, number, name] = m;
    let cls = null;
    if (comment) cls = "tok-com";
    else if (string) cls = "tok-str";
    else if (number) cls = "tok-num";
    else if (name) cls = KEYWORDS.has(name) ? "tok-kw" : (previous === "def" || previous === "class") ? "tok-fn"
      : BUILTINS.has(name) ? "tok-bi" : null;
    if (name || comment || string || number) previous = text;
    text.split("\n").forEach((piece, i) => {
      if (i > 0) lines.push("");
      if (!piece) return;
      lines[lines.length - 1] += cls ? `<span class="${cls}">${escapeHtml(piece)}</span>` : escapeHtml(piece);
    });
  }
  return lines;
}

function renderCode(element, code, marked = new Set()) {
  element.innerHTML = highlightLines(code)
    .map((html, i) => `<span class="ln${marked.has(i + 1) ? " new" : ""}">${html || " "}</span>`).join("");
}

// ---- synthesis --------------------------------------------------------------------------------------------------
function renderSession(newest = null) {
  $("session-id").textContent = session ? `session ${session.id}` : "";
  const turns = session ? session.turns : [];
  const list = $("turns");
  list.replaceChildren(...turns.map((turn) => turnItem(turn, turn.index === newest)));
  const marked = new Set();
  if (newest !== null && turns[newest]) {
    const [first, last] = turns[newest].lines;
    for (let n = first; n <= last; n++) marked.add(n);
  }
  renderCode($("program"), session ? session.program.replace(/\n+$/, "") : "", marked);
  updateEditButtons();
}

function turnItem(turn, isNewest) {
  const item = document.createElement("li");
  item.className = isNewest ? "newest" : "";
  item.dataset.index = turn.index;
  const tags = [turn.edited ? "edited" : null, turn.attempt ? `regenerated ×${turn.attempt}` : null].filter(Boolean);
  item.innerHTML = `<div class="turn-head"><span class="turn-number">${turn.index + 1}</span>
      <span class="turn-intent">${escapeHtml(turn.intent)}</span>
      ${tags.map((t) => `<span class="turn-tag">${t}</span>`).join("")}</div>
    <textarea class="turn-code" spellcheck="false" aria-label="code of turn ${turn.index + 1}"
      rows="${Math.min(12, turn.code.split("\n").length + 1)}"></textarea>
    <button type="button" class="turn-save">Save edit</button>`;
  const editor = item.querySelector("textarea");
  editor.value = turn.code;
  editor.dataset.original = editor.value; // as the textarea holds it (it turns "\r" into "\n")
  editor.addEventListener("input", updateEditButtons);
  item.querySelector("button").addEventListener("click", () => action(async () => {
    session = await api("PUT", `v1/synth/sessions/${session.id}/turns/${turn.index}`, { code: editor.value });
    renderSession(turn.index);
  }));
  return item;
}

// A turn's "Save edit" is live only when its code was changed; Undo/Regenerate only when there is a turn.
function updateEditButtons() {
  if ($("busy").hidden === false) return;
  document.querySelectorAll("#turns li").forEach((item) => {
    const editor = item.querySelector("textarea");
    item.querySelector("button").disabled = editor.value === editor.dataset.original;
  });
  const empty = !session || session.turns.length === 0;
  $("undo").disabled = $("regenerate").disabled = empty;
}

function settingsFromInputs() {
  const settings = {
    temperature: Number($("temperature").value),
    top_p: Number($("top-p").value),
    max_tokens: Number($("max-tokens").value),
  };
  if ($("seed").value !== "") settings.seed = Number($("seed").value);
  return settings;
}

function showSettings(settings) {
  $("temperature").value = settings.temperature;
  $("top-p").value = settings.top_p;
  $("max-tokens").value = settings.max_tokens;
  $("seed").value = settings.seed ?? "";
}

async function startSession(document_) {
  const previous = session;
  session = await api("POST", "v1/synth/sessions", document_);
  localStorage.setItem(SESSION_KEY, session.id);
  if (previous) api("DELETE", `v1/synth/sessions/${previous.id}`).catch(() => {});
  showSettings(session.settings);
  clearRun();
  renderSession();
}

async function resumeOrStart() {
  const saved = localStorage.getItem(SESSION_KEY);
  if (saved) {
    try {
      session = await api("GET", `v1/synth/sessions/${saved}`);
      showSettings(session.settings);
      renderSession();
      return;
    } catch (e) {
      if (e.status !== 404) throw e; // forgotten by the server (restart, or too many sessions): start afresh
    }
  }
  await startSession({ settings: settingsFromInputs() });
}

function clearRun() {
  $("run-status").hidden = true;
  $("stdout").textContent = "";
  $("stderr").textContent = "";
  $("stderr").hidden = true;
}

function showRun(result) {
  const badge = $("run-status");
  badge.textContent = `${result.status} · ${result.duration.toFixed(2)} s`;
  badge.className = `badge ${result.status}`;
  badge.hidden = false;
  $("stdout").textContent = result.stdout;
  const problems = [result.stderr, result.status === "passed" ? "" : result.reason].filter(Boolean).join("\n");
  $("stderr").textContent = problems;
  $("stderr").hidden = !problems;
}

function saveSessionFile() {
  const doc = { format: "opencodegen-synth-session", version: 1, settings: session.settings,
                preamble: session.preamble,
                turns: session.turns.map(({ intent, code, edited, attempt }) => ({ intent, code, edited, attempt })) };
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([JSON.stringify(doc, null, 2) + "\n"], { type: "application/json" }));
  link.download = "synth-session.json";
  link.click();
  URL.revokeObjectURL(link.href);
}

async function loadSessionFile(file) {
  let doc;
  try {
    doc = JSON.parse(await file.text());
  } catch (e) {
    throw new Error(`${file.name}: not a saved session (invalid JSON: ${e.message})`);
  }
  try {
    await startSession(doc);
  } catch (e) {
    throw new Error(`${file.name}: not a valid saved session (${e.message})`);
  }
}

// ---- fill in the middle -----------------------------------------------------------------------------------------
async function fillAtCursor() {
  const editor = $("editor");
  const start = editor.selectionStart, end = editor.selectionEnd;
  const prefix = editor.value.slice(0, start), suffix = editor.value.slice(end);
  const request = { model: modelName, prompt: prefix, suffix, max_tokens: Number($("fim-max-tokens").value),
                    temperature: Number($("fim-temperature").value) };
  if ($("fim-seed").value !== "") request.seed = Number($("fim-seed").value);
  const began = performance.now();
  const response = await api("POST", "v1/completions", request);
  const middle = response.choices[0].text;
  editor.value = prefix + middle + suffix;
  editor.focus();
  editor.setSelectionRange(start, start + middle.length); // the inserted code, selected: easy to see or retype
  renderCode($("middle"), middle);
  $("fim-info").textContent = `${response.usage.completion_tokens} tokens in ` +
    `${Math.round(performance.now() - began)} ms, finish: ${response.choices[0].finish_reason}`;
}

// ---- wiring -----------------------------------------------------------------------------------------------------
function selectTab(name) {
  document.querySelectorAll("nav button").forEach((tab) => {
    tab.setAttribute("aria-selected", String(tab.dataset.panel === name));
    $(tab.dataset.panel).hidden = tab.dataset.panel !== name;
  });
}

function wire() {
  document.querySelectorAll("nav button")
    .forEach((tab) => tab.addEventListener("click", () => selectTab(tab.dataset.panel)));
  $("turn-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const intent = $("intent").value;
    action(async () => {
      session = await api("POST", `v1/synth/sessions/${session.id}/turns`, { intent });
      $("intent").value = "";
      renderSession(session.turns.length - 1);
    });
  });
  $("undo").addEventListener("click", () => action(async () => {
    session = await api("POST", `v1/synth/sessions/${session.id}/undo`);
    renderSession();
  }));
  $("regenerate").addEventListener("click", () => action(async () => {
    session = await api("POST", `v1/synth/sessions/${session.id}/regenerate`);
    renderSession(session.turns.length - 1);
  }));
  $("run").addEventListener("click", () => action(async () => {
    showRun(await api("POST", `v1/synth/sessions/${session.id}/run`));
  }));
  $("new-session").addEventListener("click", () => action(() => startSession({ settings: settingsFromInputs() })));
  $("save-session").addEventListener("click", saveSessionFile);
  $("load-session").addEventListener("change", (event) => {
    const [file] = event.target.files;
    event.target.value = "";
    if (file) action(() => loadSessionFile(file));
  });
  $("fill").addEventListener("click", () => action(fillAtCursor));
  $("editor").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      action(fillAtCursor);
    }
  });
}

async function main() {
  wire();
  await action(async () => {
    const models = await api("GET", "v1/models");
    modelName = models.data[0].id;
    const context = models.data[0].max_model_len;
    $("model").textContent = `model ${modelName}` + (context ? ` · context ${context} tokens` : "");
    if (models.data[0].code_execution === false) { // Run answers 403 with how to enable it; say so up front
      $("run").textContent = "Run (off)";
      $("run").title = "This server does not run code: start it with ocg serve --allow-code-execution";
    }
    await resumeOrStart();
  });
  document.body.dataset.ready = "1"; // for tests and scripts: the page has its session
}

main();
