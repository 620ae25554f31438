// The gallery of a maxclass_lightning run: tiles from the page's JSON blob, a filter (the search
// box and ?q=), sort orders (?sort=) and a class page (#class-<index>). Plain JavaScript, no
// network: the page opens from file://.
"use strict";

const data = JSON.parse(document.getElementById("gallery-data").textContent);
const grid = document.getElementById("grid");
const search = document.getElementById("search");
const sort = document.getElementById("sort");
const count = document.getElementById("count");
const dialog = document.getElementById("class-page");
const byIndex = new Map(data.classes.map((c) => [c.index, c]));
const OWN = "prob"; // the sort key of the run's own classifier; a judge's is "judge:<name>"

/** Probability with three decimals and rank ("0.912 · rank 1"); "" for an unknown score. */
function describe(pair) {
  if (!pair) return "";
  const [probability, rank] = pair;
  const ranked = rank === null ? "" : ` · rank ${Number.isInteger(rank) ? rank : rank.toFixed(1)}`;
  return `${probability.toFixed(3)}${ranked}`;
}

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
}

function tile(item) {
  const node = element("a", { class: "tile", href: `#class-${item.index}`, "data-class": item.index, title: item.name });
  node.append(
    element("img", { src: item.thumbnail, loading: "lazy", decoding: "async", alt: `${item.index} ${item.name}`, width: 128, height: 128 }),
    element("span", { class: "label" }, element("b", { text: item.index }), item.name),
  );
  const lines = [];
  if (item.score) lines.push(describe(item.score));
  for (const judge of data.judges) if (item.judges[judge]) lines.push(`${judge} ${item.judges[judge][0].toFixed(3)}`);
  const scores = element("span", { class: "scores", text: lines.join(" · ") || "\u00a0" });
  if (item.score && item.score[1] !== null && item.score[1] > 1) scores.classList.add("weak");
  node.append(scores);
  return node;
}

const tiles = new Map(data.classes.map((item) => [item.index, tile(item)]));
grid.append(...tiles.values());

// Sort orders: the probability ones only where some class has that score.
if (data.classes.some((c) => c.score)) sort.append(element("option", { value: OWN, text: "by probability (weakest first)" }));
for (const judge of data.judges) sort.append(element("option", { value: `judge:${judge}`, text: `by ${judge} probability (weakest first)` }));

const about = [`${data.classes.length} classes`];
if (data.classifier) about.push(`made with ${data.classifier}`);
if (data.judges.length) about.push(`judged by ${data.judges.join(", ")}`);
document.getElementById("about").textContent = about.join(" · ");

/** Lower case, with "_" as a space: "Egyptian_cat" and "egyptian cat" match alike. */
const normal = (text) => text.toLowerCase().replace(/_/g, " ").trim();

/** Whether a class matches the filter: any comma-separated term, a number being the class index. */
function matches(item, terms) {
  if (!terms.length) return true;
  return terms.some((term) => (/^\d+$/.test(term) ? item.index === Number(term) : normal(item.name).includes(term)));
}

function filter() {
  const terms = search.value.split(",").map(normal).filter(Boolean);
  let shown = 0;
  for (const item of data.classes) {
    const visible = matches(item, terms);
    tiles.get(item.index).hidden = !visible;
    shown += visible;
  }
  count.textContent = `${shown} of ${data.classes.length} classes`;
}

function probabilityOf(item, key) {
  const pair = key === OWN ? item.score : item.judges[key.slice("judge:".length)];
  return pair ? pair[0] : Infinity; // unknown scores last
}

function order() {
  const key = sort.value;
  const items = [...data.classes];
  if (key === "name") items.sort((a, b) => a.name.localeCompare(b.name) || a.index - b.index);
  else if (key === OWN || key.startsWith("judge:")) items.sort((a, b) => probabilityOf(a, key) - probabilityOf(b, key) || a.index - b.index);
  else items.sort((a, b) => a.index - b.index);
  grid.append(...items.map((item) => tiles.get(item.index)));
}

/** The filter and sort order in the address (?q=...&sort=...), so a view can be linked. */
function remember() {
  const parameters = new URLSearchParams();
  if (search.value) parameters.set("q", search.value);
  if (sort.value !== "index") parameters.set("sort", sort.value);
  const query = parameters.toString();
  try {
    history.replaceState(null, "", `${location.pathname}${query ? "?" + query : ""}${location.hash}`);
  } catch (error) {
    // Some browsers refuse to change a file:// address; the page works the same.
  }
}

function historyChart(points) {
  const svg = "http://www.w3.org/2000/svg";
  const width = 520, height = 160, left = 34, right = 8, top = 8, bottom = 22;
  const steps = points.map((p) => p[0]);
  const first = Math.min(...steps), last = Math.max(...steps);
  const x = (step) => left + ((step - first) / Math.max(last - first, 1)) * (width - left - right);
  const y = (probability) => top + (1 - probability) * (height - top - bottom);
  const chart = document.createElementNS(svg, "svg");
  chart.setAttribute("viewBox", `0 0 ${width} ${height}`);
  chart.setAttribute("class", "history");
  chart.setAttribute("role", "img");
  chart.setAttribute("aria-label", "target probability over steps");
  const add = (tag, attributes, text) => {
    const node = document.createElementNS(svg, tag);
    for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
    if (text !== undefined) node.textContent = text;
    chart.append(node);
  };
  for (const level of [0, 0.5, 1]) {
    add("line", { x1: left, x2: width - right, y1: y(level), y2: y(level), stroke: "#3c4043" });
    add("text", { x: left - 6, y: y(level) + 4, "text-anchor": "end" }, level);
  }
  add("text", { x: left, y: height - 6 }, `step ${first}`);
  add("text", { x: width - right, y: height - 6, "text-anchor": "end" }, `step ${last}`);
  const line = points.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" ");
  add("polyline", { points: line, fill: "none", stroke: "#8ab4f8", "stroke-width": 2 });
  return chart;
}

function scoreTable(item) {
  const rows = [];
  if (item.score) rows.push([data.classifier ? `${data.classifier} (made it)` : "the run's classifier", item.score]);
  for (const judge of data.judges) if (item.judges[judge]) rows.push([judge, item.judges[judge]]);
  if (!rows.length) return element("p", { class: "none", text: "No scores: the folder has no scores.json, TensorBoard scalars or evaluate --json." });
  const table = element("table", {}, element("tr", {}, element("th", { text: "classifier" }), element("th", { text: "probability" }), element("th", { text: "rank" })));
  for (const [name, [probability, rank]] of rows) {
    table.append(element("tr", {}, element("td", { text: name }), element("td", { text: probability.toFixed(3) }), element("td", { text: rank === null ? "" : String(rank) })));
  }
  return table;
}

function showClass(index) {
  const item = byIndex.get(index);
  if (!item) return;
  document.getElementById("class-title").textContent = `${item.index} ${item.name}`;
  const body = document.getElementById("class-body");
  const samples = element("div", { class: "samples" });
  for (const sample of item.samples) {
    const caption = [item.samples.length > 1 ? `sample ${sample.sample}` : "", describe(sample.score)];
    for (const judge of data.judges) if (sample.judges[judge]) caption.push(`${judge} ${describe(sample.judges[judge])}`);
    samples.append(
      element("figure", {}, element("a", { href: sample.file }, element("img", { src: sample.file, alt: `${item.name} sample ${sample.sample}` })),
        element("figcaption", { text: caption.filter(Boolean).join(" · ") })),
    );
  }
  const details = element("div", { class: "details" }, element("h3", { text: "Final scores" }), scoreTable(item));
  body.replaceChildren(element("div", { class: "class-layout" }, samples, details));
  if (item.history.length > 1) details.append(element("h3", { text: "Target probability during the run" }), historyChart(item.history));
  details.append(element("h3", { text: "Reproduce" }));
  if (data.command) {
    const command = data.command.replace("{index}", item.index);
    const copy = element("button", { type: "button", class: "copy", text: "Copy" });
    copy.addEventListener("click", () => navigator.clipboard?.writeText(command).then(() => (copy.textContent = "Copied")));
    details.append(element("div", { class: "command" }, element("pre", { id: "command", text: command }), copy));
  } else {
    details.append(element("p", { class: "none", text: "No config.yaml beside these pictures: the command that made them is not known." }));
  }
  if (!dialog.open) dialog.showModal();
}

function route() {
  const match = /^#class-(\d+)$/.exec(location.hash);
  if (match) showClass(Number(match[1]));
  else if (dialog.open) dialog.close();
}

/** The neighbour of the open class among the tiles shown, in the current order. */
function step(offset) {
  const shown = [...grid.children].filter((node) => !node.hidden);
  const current = shown.findIndex((node) => node.getAttribute("href") === location.hash);
  const next = shown[current + offset];
  if (next) location.replace(next.getAttribute("href"));
}

grid.addEventListener("click", (event) => {
  const link = event.target.closest("a.tile");
  if (link && link.getAttribute("href") === location.hash) { event.preventDefault(); route(); } // reopened
});
search.addEventListener("input", () => { filter(); remember(); });
sort.addEventListener("change", () => { order(); remember(); });
window.addEventListener("hashchange", route);
dialog.addEventListener("close", () => {
  if (location.hash) history.replaceState(null, "", location.pathname + location.search);
});
document.getElementById("close").addEventListener("click", () => dialog.close());
document.getElementById("previous").addEventListener("click", () => step(-1));
document.getElementById("next").addEventListener("click", () => step(1));
dialog.addEventListener("keydown", (event) => {
  if (event.key === "ArrowLeft") step(-1);
  if (event.key === "ArrowRight") step(1);
});

const parameters = new URLSearchParams(location.search);
search.value = parameters.get("q") || "";
if ([...sort.options].some((option) => option.value === parameters.get("sort"))) sort.value = parameters.get("sort");
order();
filter();
route();
