// The page's behaviour: autocomplete from /v1/vocab, neighbours, similarity and analogy forms.
"use strict";

const $ = (id) => document.getElementById(id);

function showError(message) {
  $("error").textContent = message || "";
}

async function callApi(path, options) {
  const response = await fetch(path, options);
  const body = await response.json();
  if (!response.ok) {
    const error = body.error || {};
    const hint = error.suggestions && error.suggestions.length ? ` (did you mean: ${error.suggestions.join(", ")}?)` : "";
    throw new Error(`${error.message || response.statusText}${hint}`);
  }
  showError("");
  return body;
}

function postJson(path, payload) {
  return callApi(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(payload) });
}

function words(text) {
  return text.split(/[\s,]+/).filter((w) => w.length > 0);
}

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
  event.preventDefault();
  const tbody = $("neighbors").querySelector("tbody");
  try {
    const word = $("word").value.trim();
    const body = await callApi(`/v1/neighbors?word=${encodeURIComponent(word)}&k=${encodeURIComponent($("k").value)}`);
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
  } catch (err) {
    tbody.replaceChildren();
    showError(err.message);
  }
});

$("similarity-form").addEventListener("submit", async (event) => {
  event.preventDefault();
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
  event.preventDefault();
  try {
    const body = await postJson("/v1/analogy", {
      positive: words($("analogy-positive").value),
      negative: words($("analogy-negative").value),
      method: $("analogy-method").value,
      k: 5,
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
