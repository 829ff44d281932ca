// The page's behaviour: what is served (/readyz), autocomplete from /v1/vocab, neighbours with
// their 2-D map (/v1/map, PCA computed by the server), similarity and analogy forms.
"use strict";

const $ = (id) => document.getElementById(id);

function showError(message) {
  $("error").textContent = message || "";
}

// A form's action starts by clearing the last action's error. A call that succeeds clears
// nothing: an autocomplete answer arriving after a failed search must not erase its message.
function startAction(event) {
  event.preventDefault();
  showError("");
}

async function callApi(path, options) {
  const response = await fetch(path, options);
  const body = await response.json();
  if (!response.ok) {
    const error = body.error || {};
    const hint = error.suggestions && error.suggestions.length ? ` (did you mean: ${error.suggestions.join(", ")}?)` : "";
    throw new Error(`${error.message || response.statusText}${hint}`);
  }
  return body;
}

function postJson(path, payload) {
  return callApi(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(payload) });
}

function words(text) {
  return text.split(/[\s,]+/).filter((w) => w.length > 0);
}

const SVG = "http://www.w3.org/2000/svg";

function svgElement(name, attributes, text) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  if (text !== undefined) element.textContent = text;
  return element;
}

// Draw the points (the query word first) scaled into the SVG box, axes through the origin.
function drawMap(points) {
  const svg = $("map");
  const width = 420, height = 360, pad = 40;
  const xs = points.map((p) => p.x), ys = points.map((p) => p.y);
  const span = (values) => Math.max(...values.map(Math.abs), 1e-9);
  const sx = (width / 2 - pad) / span(xs), sy = (height / 2 - pad) / span(ys);
  const px = (x) => width / 2 + x * sx, py = (y) => height / 2 - y * sy;
  const children = [
    svgElement("line", { x1: 0, y1: height / 2, x2: width, y2: height / 2 }),
    svgElement("line", { x1: width / 2, y1: 0, x2: width / 2, y2: height }),
  ];
  points.forEach((p, i) => {
    const cls = i === 0 ? "query" : "neighbor";
    const x = px(p.x), y = py(p.y);
    const dot = svgElement("circle", { cx: x, cy: y, r: i === 0 ? 6 : 4, class: cls });
    dot.appendChild(svgElement("title", {}, `${p.word}: cosine ${p.score.toFixed(4)}`));
    children.push(dot);
    const anchor = x > width - 80 ? "end" : "start";
    children.push(svgElement("text", { x: x + (anchor === "end" ? -8 : 8), y: y + 4, "text-anchor": anchor, class: cls }, p.word));
  });
  svg.replaceChildren(...children);
}

async function showInfo() {
  try {
    const info = await callApi("/readyz");
    $("info").innerHTML = "";
    const parts = [["run", info.run], ["words", info.words.toLocaleString("en")], ["dimensions", info.dim], ["index", info.index]];
    parts.forEach(([label, value], i) => {
      if (i) $("info").append(" · ");
      const strong = document.createElement("b");
      strong.textContent = String(value);
      $("info").append(`${label} `, strong);
    });
  } catch (err) {
    $("info").textContent = "";
    showError(err.message);
  }
}
showInfo();

// The server's own bounds on k (its --max-k may be below the page's 10): from its OpenAPI document.
let mapMaxK = 50;
async function applyLimits() {
  try {
    const spec = await callApi("/openapi.json");
    const kOf = (path) => spec.paths[path].get.parameters.find((p) => p.name === "k").schema;
    const k = kOf("/v1/neighbors");
    $("k").max = String(k.maximum);
    $("k").value = String(Math.min(Number($("k").value) || k.default, k.maximum));
    mapMaxK = kOf("/v1/map").maximum;
  } catch (err) {
    showError(err.message);
  }
}
applyLimits();

let suggestTimer = null;
$("word").addEventListener("input", () => {
  clearTimeout(suggestTimer);
  const prefix = $("word").value.trim();
  if (!prefix) return;
  suggestTimer = setTimeout(async () => {
    try {
      const body = await callApi(`/v1/vocab?prefix=${encodeURIComponent(prefix)}&limit=10`);
      $("suggestions").replaceChildren(...body.words.map((w) => Object.assign(document.createElement("option"), { value: w })));
    } catch (err) {
      showError(err.message);
    }
  }, 150);
});

$("search-form").addEventListener("submit", async (event) => {
  startAction(event);
  const tbody = $("neighbors").querySelector("tbody");
  try {
    const word = $("word").value.trim();
    const k = $("k").value;
    const body = await callApi(`/v1/neighbors?word=${encodeURIComponent(word)}&k=${encodeURIComponent(k)}`);
    tbody.replaceChildren(...body.neighbors.map((n, i) => {
      const row = document.createElement("tr");
      for (const [text, cls] of [[String(i + 1), ""], [n.word, "word"], [n.score.toFixed(4), "score"]]) {
        const cell = document.createElement("td");
        cell.textContent = text;
        if (cls) cell.className = cls;
        row.appendChild(cell);
      }
      return row;
    }));
    const map = await callApi(`/v1/map?word=${encodeURIComponent(word)}&k=${Math.min(Number(k) || 10, mapMaxK)}`);
    drawMap(map.points);
  } catch (err) {
    tbody.replaceChildren();
    $("map").replaceChildren();
    showError(err.message);
  }
});

$("similarity-form").addEventListener("submit", async (event) => {
  startAction(event);
  try {
    const a = $("sim-a").value.trim(), b = $("sim-b").value.trim();
    const body = await callApi(`/v1/similarity?a=${encodeURIComponent(a)}&b=${encodeURIComponent(b)}`);
    $("sim-result").textContent = `cosine = ${body.similarity.toFixed(4)}`;
  } catch (err) {
    $("sim-result").textContent = "";
    showError(err.message);
  }
});

$("analogy-form").addEventListener("submit", async (event) => {
  startAction(event);
  try {
    const body = await postJson("/v1/analogy", {
      positive: words($("analogy-positive").value),
      negative: words($("analogy-negative").value),
      method: $("analogy-method").value,
      k: Math.min(5, Number($("k").max) || 5),  // within the server's --max-k
    });
    $("analogy-result").replaceChildren(...body.answers.map((a) => {
      const item = document.createElement("li");
      item.textContent = `${a.word} (${a.score.toFixed(4)})`;
      return item;
    }));
  } catch (err) {
    $("analogy-result").replaceChildren();
    showError(err.message);
  }
});
