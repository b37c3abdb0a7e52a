// A VOTable (TABLEDATA) read with the browser's DOMParser: SIA results
// and DataLink documents, enough for the viewer.

function byTag(node, tag) {
  return Array.from(node.getElementsByTagNameNS("*", tag));
}

function children(node, tag) {
  return Array.from(node.children).filter((c) => c.localName === tag);
}

// Return {fields, fieldIds, rows, resources, error}: the first results
// table as objects keyed by field name, the field names by FIELD ID (what
// a descriptor's PARAM ref names), the meta resources (service
// descriptors) and the query status message when it is an error.
export function parseVOTable(text) {
  const doc = new DOMParser().parseFromString(text, "application/xml");
  if (byTag(doc, "parsererror").length) {
    throw new Error("the answer is not a VOTable");
  }
  const info = byTag(doc, "INFO").find((i) => i.getAttribute("name") === "QUERY_STATUS");
  const error = info && info.getAttribute("value") === "ERROR"
    ? (info.textContent || "error").trim() : null;
  const table = byTag(doc, "TABLE")[0];
  const fieldNodes = table ? children(table, "FIELD") : [];
  const fields = fieldNodes.map((f) => f.getAttribute("name"));
  const fieldIds = Object.fromEntries(fieldNodes
    .filter((f) => f.getAttribute("ID"))
    .map((f) => [f.getAttribute("ID"), f.getAttribute("name")]));
  const rows = [];
  if (table && byTag(table, "BINARY").length + byTag(table, "BINARY2").length) {
    throw new Error("binary VOTables are not read here; ask for TABLEDATA");
  }
  for (const tr of table ? byTag(table, "TR") : []) {
    const cells = children(tr, "TD").map((td) => td.textContent.trim());
    rows.push(Object.fromEntries(fields.map((name, i) => [name, cells[i] ?? ""])));
  }
  const resources = byTag(doc, "RESOURCE")
    .filter((r) => r.getAttribute("type") === "meta")
    .map(serviceDescriptor);
  return { fields, fieldIds, rows, resources, error };
}

function serviceDescriptor(resource) {
  const params = {};
  for (const p of children(resource, "PARAM")) {
    params[p.getAttribute("name")] = p.getAttribute("value");
  }
  // Each input: its default value, or the FIELD its value comes from.
  const inputs = {};
  for (const group of children(resource, "GROUP")) {
    if (group.getAttribute("name") !== "inputParams") continue;
    for (const p of children(group, "PARAM")) {
      inputs[p.getAttribute("name")] = { value: p.getAttribute("value") || "", ref: p.getAttribute("ref") };
    }
  }
  return {
    id: resource.getAttribute("ID"),
    utype: resource.getAttribute("utype"),
    accessURL: params.accessURL,
    standardID: params.standardID,
    inputs,
  };
}
