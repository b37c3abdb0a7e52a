// The viewer page: search by visit (JSON listing) or by position (SIA),
// a table of difference images, the triplet preview of the chosen one,
// a click for a stamp (SODA) and a light curve (stamps job), download
// links. Plain modules, no build step; every URL is on this service.
import { parseVOTable } from "./votable.js";
import { pixToSky } from "./wcs.js";

const API = "/api/v1";
const STAMP_RADIUS_DEG = 5 / 3600; // a 10 arcsec wide stamp
const LIGHT_CURVE_STAMP_PX = 51; // the stamps service's default side
const POLL_MS = 500;
// UWS phases after which a light-curve job changes no more.
const FINAL_PHASES = ["COMPLETED", "ERROR", "ABORTED"];
const $ = (id) => document.getElementById(id);
// seq counts the products chosen, click the clicks (and products): an
// answer for an older one is dropped.
const state = { row: null, geometry: null, soda: null, links: [], linkError: null, cutout: null, seq: 0, click: 0 };

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
  state.click += 1;
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
  state.linkError = null;
  const url = row.datalink || `/api/datalink/links?${query({ VISIT: row.visit, DETECTOR: row.detector, INSTRUMENT: row.instrument })}`;
  const response = await fetch(url);
  if (!response.ok) return;
  const table = parseVOTable(await response.text());
  state.links = table.rows.filter((r) => r.access_url && !r.error_message);
  // An image DataLink cannot resolve (no template overlap, say) is one
  // row with its error: the reason there is no stamp.
  state.linkError = (table.rows.find((r) => r.error_message) || {}).error_message || table.error;
  const cutout = table.rows.find((r) => r.semantics === "#cutout" && r.service_def && !r.error_message);
  const descriptor = cutout && table.resources.find((r) => r.id === cutout.service_def);
  if (descriptor && descriptor.accessURL) {
    state.soda = { accessURL: descriptor.accessURL, params: descriptorParams(descriptor, cutout, table.fieldIds) };
  }
}

// The fixed parameters of a service descriptor for one links row: each
// input's default, or (ref) the row's value of the FIELD it names: the
// cutout service's ID is the row's ID column.
function descriptorParams(descriptor, row, fieldIds) {
  const params = {};
  for (const [name, input] of Object.entries(descriptor.inputs)) {
    params[name] = input.ref ? row[fieldIds[input.ref]] : input.value;
  }
  return params;
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
      const what = `${r.semantics === "#derivation" ? "Solution" : "Input"}: ${r.description || r.access_url}`;
      // A datastore's file: URI is no link a web page can follow.
      if (/^https?:/.test(r.access_url)) {
        items.push(link(what, r.access_url, r.semantics.slice(1)));
      } else {
        const li = document.createElement("li");
        li.textContent = what;
        li.title = r.access_url;
        items.push(li);
      }
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
  state.click += 1;
  requestStamp(ra, dec);
  requestLightCurve(ra, dec, state.click);
}

function requestStamp(ra, dec) {
  const img = $("stamp");
  state.cutout = null;
  if (!state.soda) {
    img.hidden = true;
    $("stamp-status").textContent = state.linkError
      ? `No stamp: ${state.linkError}`
      : "No cutout service is described for this image (DataLink).";
    showLinks();
    return;
  }
  const url = (format) => `${state.soda.accessURL}?${query({
    ...state.soda.params, CIRCLE: `${ra} ${dec} ${STAMP_RADIUS_DEG}`, RESPONSEFORMAT: format,
  })}`;
  img.onload = () => { $("stamp-status").textContent = "Stamp ready."; };
  img.onerror = () => { $("stamp-status").textContent = "The stamp could not be cut."; };
  img.src = url("image/png");
  img.hidden = false;
  state.cutout = url("application/fits");
  showLinks();
}

// POST /api/v1/stamps {ra, dec, size, instrument} answers 202 with a job
// {id, phase, url, progress: {done, total}, epochs, failed, results,
// error}; its url is polled until a final phase, when results holds the
// URLs of the FITS and the PNG strip.
async function requestLightCurve(ra, dec, seq) {
  const progress = $("lc-progress");
  const strip = $("lightcurve");
  const status = $("lc-status");
  strip.hidden = true;
  $("lc-links").replaceChildren();
  status.textContent = "Finding the epochs of this position ...";
  const response = await fetch(`${API}/stamps`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ ra, dec, size: LIGHT_CURVE_STAMP_PX, instrument: state.row.instrument }),
  });
  if (seq !== state.click) return;
  if (!response.ok) {
    status.textContent = `Light curve: ${await errorText(response)}`;
    return;
  }
  let job = await response.json();
  progress.hidden = false;
  while (!FINAL_PHASES.includes(job.phase)) {
    progress.max = Math.max(1, job.progress.total);
    progress.value = job.progress.done;
    status.textContent = `Light curve: ${job.progress.done} of ${job.progress.total} epochs cut (${job.phase}) ...`;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    if (seq !== state.click) return;
    job = await (await fetch(job.url)).json();
  }
  if (seq !== state.click) return;
  progress.hidden = true;
  showLightCurve(job);
}

function showLightCurve(job) {
  const kept = job.epochs.length - job.failed.length;
  const failed = job.failed.map((f) => `${f.visit}/${f.detector}: ${f.message}`);
  if (job.phase !== "COMPLETED") {
    const why = job.error ? `${job.error.prefix}: ${job.error.message}` : job.phase;
    $("lc-status").textContent = `Light curve: ${why}`;
    return;
  }
  $("lc-status").textContent = `Light curve: ${kept} epoch${kept === 1 ? "" : "s"}, by time`
    + (failed.length ? `; not cut: ${failed.join("; ")}` : ".");
  $("lightcurve").src = job.results.png;
  $("lightcurve").hidden = false;
  $("lc-links").replaceChildren(
    link("Light curve stamps (FITS, one extension set per epoch)", job.results.fits, "lightcurve"),
    link("Light curve strip (PNG)", job.results.png, "lightcurve"),
  );
}

// --- wiring ----------------------------------------------------------------

$("by-visit").addEventListener("submit", searchByVisit);
$("by-position").addEventListener("submit", searchByPosition);
$("frame").addEventListener("click", onPreviewClick);
$("stretch").addEventListener("change", () => { if (state.row) { showPreview(); showLinks(); } });
loadVisitChoices();
