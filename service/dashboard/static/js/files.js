// Reading the files a task is created from: JSONL or CSV of labelled examples, and JSONL, CSV or
// plain text (one per line) of unlabelled texts. Each record remembers its line, so an API
// error naming `examples[3].label` is shown as the line of the file it came from.

export class FileProblem extends Error {}

/** RFC 4180 CSV: quoted fields may hold commas, quotes ("") and line breaks. Rows of cells,
 *  each row with the line it starts on. */
export function parseCsv(text) {
  const rows = [];
  let row = [];
  let cell = "";
  let quoted = false;
  let line = 1;
  let rowLine = 1;
  for (let i = 0; i < text.length; i += 1) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { cell += '"'; i += 1; }
      else if (c === '"') quoted = false;
      else { if (c === "\n") line += 1; cell += c; }
    } else if (c === '"' && cell === "") {
      quoted = true;
    } else if (c === ",") {
      row.push(cell); cell = "";
    } else if (c === "\n" || c === "\r") {
      if (c === "\r" && text[i + 1] === "\n") i += 1;
      row.push(cell); cell = "";
      rows.push({ line: rowLine, cells: row });
      row = [];
      line += 1;
      rowLine = line;
    } else {
      cell += c;
    }
  }
  if (quoted) throw new FileProblem(`line ${rowLine}: a quoted field is never closed`);
  if (cell !== "" || row.length) { row.push(cell); rows.push({ line: rowLine, cells: row }); }
  return rows.filter((r) => r.cells.some((value) => value.trim() !== ""));
}

function csvRecords(text, required) {
  const rows = parseCsv(text.replace(/^\uFEFF/, ""));
  if (!rows.length) throw new FileProblem("the file is empty");
  const header = rows[0].cells.map((name) => name.trim().toLowerCase());
  for (const column of required) {
    if (!header.includes(column)) {
      throw new FileProblem(`line 1: the header needs a "${column}" column (found: ${header.join(", ")})`);
    }
  }
  return rows.slice(1).map(({ line, cells }) => {
    const record = {};
    header.forEach((name, i) => { if (name && cells[i] !== undefined && cells[i] !== "") record[name] = cells[i]; });
    return { line, record };
  });
}

function jsonlRecords(text) {
  const records = [];
  text.replace(/^\uFEFF/, "").split(/\r?\n/).forEach((raw, index) => {
    if (!raw.trim()) return;
    try {
      records.push({ line: index + 1, record: JSON.parse(raw) });
    } catch {
      throw new FileProblem(`line ${index + 1}: not valid JSON`);
    }
  });
  if (!records.length) throw new FileProblem("the file is empty");
  return records;
}

function formatOf(name, text) {
  const lower = name.toLowerCase();
  if (lower.endsWith(".csv")) return "csv";
  if (/\.(jsonl|ndjson|json)$/.test(lower)) return "jsonl";
  if (lower.endsWith(".txt")) return "text";
  return text.trimStart().startsWith("{") || text.trimStart().startsWith('"') ? "jsonl" : "csv";
}

/** Labelled examples: `{items: [{text, label, text_b?}], lines: [line of each]}`. */
export function parseExamples(name, text) {
  const format = formatOf(name, text);
  if (format === "text") throw new FileProblem("labelled examples need a CSV or JSONL file (text and label)");
  const records = format === "csv" ? csvRecords(text, ["text", "label"]) : jsonlRecords(text);
  const items = records.map(({ line, record }) => {
    if (record === null || typeof record !== "object" || Array.isArray(record)) {
      throw new FileProblem(`line ${line}: expected an object with "text" and "label"`);
    }
    if (typeof record.text !== "string" || record.label === undefined || record.label === null) {
      throw new FileProblem(`line ${line}: needs a "text" and a "label"`);
    }
    const example = { text: record.text, label: String(record.label) };
    if (record.text_b !== undefined && record.text_b !== null) example.text_b = String(record.text_b);
    return example;
  });
  return { items, lines: records.map((r) => r.line) };
}

/** Unlabelled texts: `{items: [text], lines}`; a labelled file's labels are ignored. */
export function parseUnlabeled(name, text) {
  const format = formatOf(name, text);
  if (format === "text") {
    const items = [];
    const lines = [];
    text.replace(/^\uFEFF/, "").split(/\r?\n/).forEach((raw, index) => {
      if (raw.trim()) { items.push(raw); lines.push(index + 1); }
    });
    if (!items.length) throw new FileProblem("the file is empty");
    return { items, lines };
  }
  const records = format === "csv" ? csvRecords(text, ["text"]) : jsonlRecords(text);
  const items = records.map(({ line, record }) => {
    if (typeof record === "string") return record;
    if (record && typeof record.text === "string") return record.text;
    throw new FileProblem(`line ${line}: expected a string or an object with "text"`);
  });
  return { items, lines: records.map((r) => r.line) };
}

/** The labels of the examples, in the order they first appear. */
export function labelsOf(examples) {
  return [...new Set(examples.map((e) => e.label))];
}

/** "positive=great, negative=terrible" -> {positive: "great", negative: "terrible"}. */
export function parseLabelWords(text) {
  const words = {};
  for (const pair of text.split(",")) {
    if (!pair.trim()) continue;
    const at = pair.indexOf("=");
    if (at < 1) throw new FileProblem(`"${pair.trim()}": write label=word`);
    words[pair.slice(0, at).trim()] = pair.slice(at + 1).trim();
  }
  return words;
}

/** An API field such as `examples[3].label` as the input it belongs to and a message that names
 *  the file line: `{input: "examples", message: "line 5: ..."}`. `sources` maps each request
 *  list (examples, unlabeled, evaluation) to `{input, name, lines}`. */
export function locateField(field, message, sources, fallback = "form") {
  const match = /^([a-z_]+)(?:\[(\d+)\])?/.exec(field || "");
  const root = match ? match[1] : "";
  const source = sources[root];
  if (source) {
    const index = match[2] === undefined ? null : Number(match[2]);
    const line = index === null ? null : source.lines[index];
    const where = line ? `${source.name}, line ${line}` : source.name;
    return { input: source.input, message: `${where}: ${message}` };
  }
  if (root === "labels") return { input: sources.examples?.input || fallback, message: `labels: ${message}` };
  return { input: root || fallback, message: field ? `${field}: ${message}` : message };
}
