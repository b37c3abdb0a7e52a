// The viewer page: search by visit (JSON listing) or by position (SIA),
// a table of difference images, the triplet preview of the chosen one,
// a click for a stamp (SODA) and a light curve (stamps job), download
// links. Plain modules, no build step; every URL is on this service.
import { parseVOTable } from "./votable.js";
import { pixToSky } from "./wcs.js";

const API = "/api/v1";
const STAMP_RADIUS_DEG = 5 / 3600; // a 10 arcsec wide stamp
const POLL_MS = 500;
const $ = (id) => document.getElementById(id);
const state = { row: null, geometry: null, soda: null, links: [], cutout: null, seq: 0 };

function setStatus(text, error = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", error);
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== "" && v != null) q.set(k, v);
  return q.toString();
}

async function errorText(response) {
  const text = await response.text();
  try {
    const body = JSON.parse(text);
    return body.detail.map((d) => d.msg).join("; ");
  } catch {
    return text.slice(0, 300) || response.statusText;
  }
}

// --- search ------------------------------------------------------------

async function loadVisitChoices() {
  const response = await fetch(`${API}/visits?limit=200`);
  if (!response.ok) return;
  const { visits } = await response.json();
  $("visits").replaceChildren(...visits.map((v) => {
    const option = document.createElement("option");
    option.value = v.visit;
    option.label = `${v.band} ${v.day_obs}`;
    return option;
  }));
}

async function searchByVisit(event) {
  event.preventDefault();
  const visit = $("visit").value.trim();
  const instrument = $("instrument").value.trim();
  setStatus(`Listing the detectors of visit ${visit} ...`);
  const response = await fetch(`${API}/visits/${encodeURIComponent(visit)}?${query({ instrument })}`);
  if (!response.ok) return setStatus(await errorText(response), true);
  const found = await response.json();
  showRows(found.detectors.map((d) => ({
    instrument: found.instrument, visit: found.visit, detector: d.detector,
    band: found.band, night: found.day_obs, ra: d.ra, dec: d.dec, datalink: null,
  })));
}

async function searchByPosition(event) {
  event.preventDefault();
  const [ra, dec, radius] = ["ra", "dec", "radius"].map((id) => $(id).value.trim());
  setStatus(`Searching around ${ra} ${dec} ...`);
  const response = await fetch(`/api/sia/query?${query({ POS: `CIRCLE ${ra} ${dec} ${radius}`, MAXREC: 500 })}`);
  if (response.status === 404) {
    return setStatus("Position search needs the SIA service (/api/sia/query), which this service does not offer.", true);
  }
  let table;
  try {
    table = parseVOTable(await response.text());
  } catch (error) {
    return setStatus(`SIA: ${error.message}`, true);
  }
  if (!response.ok || table.error) return setStatus(`SIA: ${table.error || response.statusText}`, true);
  showRows(table.rows.map((r) => ({
    instrument: r.instrument_name, visit: Number(r.lsst_visit), detector: Number(r.lsst_detector),
    band: r.lsst_band || r.band || "", night: mjdToDate(r.t_min), ra: Number(r.s_ra), dec: Number(r.s_dec),
    datalink: r.access_url || null,
  })));
}

function mjdToDate(mjd) {
  if (!mjd) return "";
  return new Date((Number(mjd) - 40587) * 86400000).toISOString().slice(0, 16).replace("T", " ");
}

function showRows(rows) {
  const body = $("table").tBodies[0];
  body.replaceChildren(...rows.map((row) => {
    const tr = document.createElement("tr");
    const cells = [row.visit, row.detector, row.band, row.night,
      row.ra == null ? "" : row.ra.toFixed(5), row.dec == null ? "" : row.dec.toFixed(5)];
    for (const value of cells) tr.insertCell().textContent = value;
    const button = document.createElement("button");
    button.textContent = "View";
    button.addEventListener("click", () => choose(row, tr));
    tr.insertCell().append(button);
    return tr;
  }));
  $("results").hidden = false;
  setStatus(`${rows.length} difference image${rows.length === 1 ? "" : "s"}.`);
}

// --- the chosen difference image ----------------------------------------

function productUrl(row, params) {
  return `${API}/diffims/${row.visit}/${row.detector}?${query({ instrument: row.instrument, ...params })}`;
}

async function choose(row, tr) {
  for (const other of tr.parentElement.rows) other.classList.remove("chosen");
  tr.classList.add("chosen");
  state.row = row;
  state.geometry = null;
  state.cutout = null;
  state.seq += 1;
  $("viewer").hidden = false;
  $("viewer-title").textContent = `Visit ${row.visit}, detector ${row.detector}`;
  $("marker").hidden = true;
  $("stamps").hidden = true;
  $("position").textContent = "";
  showPreview();
  const seq = state.seq;
  const [geometry] = await Promise.all([fetchGeometry(row), fetchDataLink(row)]);
  if (seq !== state.seq) return;
  state.geometry = geometry;
  showLinks();
}

function showPreview() {
  const url = productUrl(state.row, { format: "png-triplet", stretch: $("stretch").value });
  setStatus("Recreating the preview (seconds when it is not cached) ...");
  const img = $("preview");
  img.onload = () => setStatus("Preview ready: click a position for its stamp.");
  img.onerror = () => previewFailed(url, state.seq);
  img.src = url;
}

async function previewFailed(url, seq) {
  const response = await fetch(url);
  if (seq !== state.seq) return;
  if (response.status === 202) {
    const job = response.headers.get("Location");
    setStatus("Still recreating: waiting for the job ...");
    await waitForJob(job, seq);
    if (seq === state.seq) $("preview").src = `${url}&retry=${Date.now()}`;
  } else if (!response.ok) {
    setStatus(`Preview: ${await errorText(response)}`, true);
  }
}

async function waitForJob(url, seq) {
  while (seq === state.seq) {
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    const record = await (await fetch(url)).json();
    if (record.state !== "running") return record;
  }
  return null;
}

async function fetchGeometry(row) {
  const response = await fetch(`${API}/diffims/${row.visit}/${row.detector}/geometry?${query({ instrument: row.instrument })}`);
  return response.ok ? response.json() : null;
}

// The row's DataLink document: the solution and progenitors, and the
// cutout service descriptor (SODA) that stamps are cut with.
async function fetchDataLink(row) {
  state.soda = null;
  state.links = [];
  const url = row.datalink || `/api/datalink/links?${query({ VISIT: row.visit, DETECTOR: row.detector, INSTRUMENT: row.instrument })}`;
  let response;
  try {
    response = await fetch(url);
  } catch {
    return;
  }
  if (!response.ok) return;
  const table = parseVOTable(await response.text());
  state.links = table.rows.filter((r) => r.access_url && !r.error_message);
  const cutout = table.rows.find((r) => r.semantics === "#cutout" && r.service_def);
  state.soda = table.resources.find((r) => cutout ? r.id === cutout.service_def : /soda/i.test(r.standardID || "")) || null;
}

function link(text, href, kind) {
  const li = document.createElement("li");
  const a = document.createElement("a");
  a.textContent = text;
  a.href = href;
  a.dataset.kind = kind;
  li.append(a);
  return li;
}

function showLinks() {
  const row = state.row;
  const items = [
    link("Difference image (FITS, DP1 layout)", productUrl(row, { format: "dp1" }), "fits"),
    link("Difference image (FITS, tile-compressed)", productUrl(row, { format: "dp1-compressed" }), "fits"),
    link("Difference image (lsst.images)", productUrl(row, { format: "lsst-images" }), "fits"),
    link("Preview (PNG)", productUrl(row, { format: "png", stretch: $("stretch").value }), "png"),
    link("Triplet (PNG)", productUrl(row, { format: "png-triplet", stretch: $("stretch").value }), "png"),
  ];
  for (const r of state.links) {
    if (["#derivation", "#progenitor"].includes(r.semantics)) {
      const what = r.semantics === "#derivation" ? "Solution" : "Input";
      items.push(link(`${what}: ${r.description || r.access_url}`, r.access_url, r.semantics.slice(1)));
    }
  }
  if (state.cutout) items.push(link("Cutout around the clicked position (FITS)", state.cutout, "cutout"));
  $("links").replaceChildren(...items);
}

// --- a click: stamp and light curve ---------------------------------------

function clickedPixel(event) {
  const img = $("preview");
  const layout = state.geometry.previews["png-triplet"];
  const px = Math.floor(event.offsetX * img.naturalWidth / img.clientWidth);
  const py = Math.floor(event.offsetY * img.naturalHeight / img.clientHeight);
  const step = layout.panel_width + layout.gap;
  const local = px - Math.floor(px / step) * step;
  if (local >= layout.panel_width) return null;
  const [height, width] = state.geometry.shape;
  const centre = (layout.factor - 1) / 2;
  const x = Math.min(width - 1, local * layout.factor + centre);
  const y = Math.min(height - 1, (layout.panel_height - 1 - py) * layout.factor + centre);
  return { x, y };
}

function onPreviewClick(event) {
  if (!state.geometry || !state.row) return;
  const pixel = clickedPixel(event);
  if (!pixel) return;
  const [ra, dec] = pixToSky(state.geometry.wcs, pixel.x, pixel.y);
  const marker = $("marker");
  marker.style.left = `${event.offsetX}px`;
  marker.style.top = `${event.offsetY}px`;
  marker.hidden = false;
  $("position").textContent = `x ${pixel.x.toFixed(1)}, y ${pixel.y.toFixed(1)}: RA ${ra.toFixed(6)}, Dec ${dec.toFixed(6)}`;
  Object.assign($("position").dataset, { x: pixel.x, y: pixel.y, ra, dec });
  $("stamps").hidden = false;
  requestStamp(ra, dec);
  requestLightCurve(ra, dec, state.seq);
}

function requestStamp(ra, dec) {
  const img = $("stamp");
  state.cutout = null;
  if (!state.soda || !state.soda.accessURL) {
    img.hidden = true;
    $("stamp-status").textContent = "Stamps need the cutout service (SODA), which this service does not offer.";
    showLinks();
    return;
  }
  const base = { ...state.soda.inputs, CIRCLE: `${ra} ${dec} ${STAMP_RADIUS_DEG}` };
  const url = (params) => `${state.soda.accessURL}?${query({ ...base, ...params })}`;
  img.onload = () => { $("stamp-status").textContent = "Stamp ready."; };
  img.onerror = () => { $("stamp-status").textContent = "The stamp could not be cut."; };
  img.src = url({ RESPONSEFORMAT: "image/png" });
  img.hidden = false;
  state.cutout = url({ RESPONSEFORMAT: "application/fits" });
  showLinks();
}

async function requestLightCurve(ra, dec, seq) {
  const progress = $("lc-progress");
  const strip = $("lightcurve");
  strip.hidden = true;
  $("lc-links").replaceChildren();
  // The light-curve service's request body: a position (and the
  // instrument); its job answers state/phase, progress and result URLs.
  const response = await fetch(`${API}/stamps`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ ra, dec, instrument: state.row.instrument }),
  });
  if (response.status === 404 || response.status === 405) {
    $("stamp-status").textContent += " Light curves need the stamps service, which this service does not offer.";
    return;
  }
  if (!response.ok) {
    $("stamp-status").textContent += ` Light curve: ${await errorText(response)}`;
    return;
  }
  let job = await response.json();
  const url = response.headers.get("Location") || `${API}/stamps/${job.id}`;
  progress.hidden = false;
  while (seq === state.seq && !["done", "completed", "failed", "error"].includes(String(job.state || job.phase).toLowerCase())) {
    progress.value = Number(job.progress ?? 0);
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    job = await (await fetch(url)).json();
  }
  progress.hidden = true;
  const urls = JSON.stringify(job).match(/"(\/[^"]+|https?:[^"]+)"/g) || [];
  for (const quoted of urls) {
    const href = quoted.slice(1, -1);
    if (/png/i.test(href)) { strip.src = href; strip.hidden = false; }
    if (/fits|png/i.test(href)) $("lc-links").append(link(`Light curve: ${href.split("/").pop()}`, href, "lightcurve"));
  }
}

// --- wiring ----------------------------------------------------------------

$("by-visit").addEventListener("submit", searchByVisit);
$("by-position").addEventListener("submit", searchByPosition);
$("frame").addEventListener("click", onPreviewClick);
$("stretch").addEventListener("change", () => { if (state.row) { showPreview(); showLinks(); } });
loadVisitChoices();
