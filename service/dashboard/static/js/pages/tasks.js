// Tasks: every task with its status, tuner and method, served version, evaluation accuracy and
// last job; and (tenants) a form that creates one from uploaded files.

import { ApiError, api } from "../api.js";
import { fmt, h, sleep, statusPill, table } from "../dom.js";
import { FileProblem, labelsOf, locateField, parseExamples, parseLabelWords, parseUnlabeled } from "../files.js";
import { Fields, field } from "../form.js";

const REFRESH_MS = 3000;

function lastJob(job) {
  if (!job) return "–";
  const progress = job.progress && job.status === "running" ? ` ${fmt.pct(job.progress.fraction)}` : "";
  return h("span", {}, statusPill(job.status), ` ${job.kind}${progress}`, h("br"), h("span", { class: "muted" }, fmt.when(job.finished_at || job.started_at || job.created_at)));
}

function taskRow(task, admin) {
  const accuracy = task.adapter?.metrics?.evaluation_accuracy;
  // data-label: the column's name, shown beside each cell where the table becomes cards (phone).
  const cell = (label, attrs, ...content) => h("td", { "data-label": label, ...attrs }, h("span", {}, ...content));
  return h("tr", { "data-task": task.id },
    cell("Task", {}, h("a", { href: `#/tasks/${encodeURIComponent(task.id)}` }, task.name), h("br"), h("code", { class: "muted" }, task.id)),
    admin ? cell("Tenant", {}, task.tenant_name || "–", h("br"), h("code", { class: "muted" }, task.tenant_id)) : null,
    cell("Status", {}, statusPill(task.status)),
    cell("Tuner / method", {}, `${task.tuner} / ${task.method}`),
    cell("Served", { class: "num" }, task.adapter ? `v${task.adapter.version}` : "–"),
    cell("Evaluation accuracy", { class: "num" }, fmt.pct(accuracy)),
    cell("Last job", {}, lastJob(task.job)));
}

async function loadTasks(admin, signal) {
  const tasks = [];
  let after = null;
  do {
    const page = await api(`${admin ? "admin/" : ""}tasks?limit=200${after ? `&after=${encodeURIComponent(after)}` : ""}`, { signal });
    tasks.push(...page.data);
    after = page.has_more ? page.data[page.data.length - 1].id : null;
  } while (after && !signal.aborted);
  return tasks;
}

function taskTable(tasks, admin) {
  if (!tasks.length) return h("p", { class: "muted" }, admin ? "No tenant has a task yet." : "No tasks yet: create one below.");
  const headers = ["Task", admin ? "Tenant" : null, "Status", "Tuner / method", "Served", "Evaluation accuracy", "Last job"].filter(Boolean);
  return table(null, headers.map((c) => h("th", { scope: "col", class: ["Served", "Evaluation accuracy"].includes(c) ? "num" : null }, c)),
    tasks.map((t) => taskRow(t, admin)), { id: "tasks-table", class: "cards" });
}

async function readFile(input) {
  const file = input.files && input.files[0];
  return file ? { name: file.name, text: await file.text() } : null;
}

let enums = null;

/** The methods and tuners this server accepts, from its OpenAPI document (read once). */
async function enumsFromOpenApi(signal) {
  if (enums) return enums;
  try {
    const spec = await api("openapi.json", { signal });
    const props = spec.components.schemas.TaskCreate.properties;
    enums = { tuner: props.tuner.enum, method: props.method.enum };
  } catch {
    return null; // the form keeps its defaults
  }
  return enums;
}

function options(select, values, chosen) {
  select.replaceChildren(...values.map((v) => h("option", { value: v, selected: v === chosen }, v)));
}

function createForm(onCreated, signal) {
  const fileInput = () => h("input", { type: "file", accept: ".jsonl,.ndjson,.json,.csv,.txt" });
  const f = {
    name: field("name", "Name", h("input", { type: "text", required: true, maxlength: "200" })),
    examples: field("examples", "Labelled examples", fileInput(), "JSONL lines {\"text\", \"label\"} or CSV with text,label columns; the labels are the ones found here."),
    unlabeled: field("unlabeled", "Unlabelled texts", fileInput(), "JSONL, CSV (a text column) or plain text, one per line: LiST learns from them, and suggestions come from them."),
    evaluation: field("evaluation", "Evaluation set (optional)", fileInput(), "Like the examples; scored for every version, never trained on."),
    label_words: field("label_words", "Label words (optional)", h("input", { type: "text", placeholder: "positive=great, negative=terrible" }), "label=word pairs; a label left out is its own word."),
    method: field("method", "Method", h("select", {})),
    tuner: field("tuner", "Tuner", h("select", {})),
    hyperparameters: field("hyperparameters", "Hyperparameters (optional JSON)", h("textarea", { rows: "2", placeholder: "{\"budget\": \"fast\"}" })),
  };
  options(f.method.control, ["list", "prompt", "classic", "contrastive"], "list");
  options(f.tuner.control, ["adapter"], "adapter");
  enumsFromOpenApi(signal).then((known) => {
    if (!known) return;
    options(f.method.control, known.method, f.method.control.value);
    options(f.tuner.control, known.tuner, f.tuner.control.value);
  });
  const fields = new Fields(Object.values(f));
  const status = h("span", { class: "muted", role: "status" });
  const submit = h("button", { type: "submit" }, "Create and train");
  const form = h("form", { class: "panel", novalidate: true, id: "create-task" },
    h("h2", {}, "Create a task"),
    h("div", { class: "form-grid" }, f.name.element, f.method.element, f.tuner.element, f.label_words.element),
    h("div", { class: "form-grid" }, f.examples.element, f.unlabeled.element, f.evaluation.element),
    f.hyperparameters.element,
    h("div", { class: "actions" }, submit, status));

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    fields.clear();
    status.textContent = "";
    const sources = {};
    const body = { name: f.name.control.value.trim(), method: f.method.control.value, tuner: f.tuner.control.value };
    let firstBad = null;
    const problem = (name, message) => { const shown = fields.show(name, message, "name"); firstBad = firstBad || shown.control; };
    try {
      if (!body.name) problem("name", "Give the task a name");
      const examples = await readFile(f.examples.control);
      if (!examples) problem("examples", "Choose a file of labelled examples");
      for (const [key, reader, parse] of [["examples", examples, parseExamples], ["unlabeled", await readFile(f.unlabeled.control), parseUnlabeled], ["evaluation", await readFile(f.evaluation.control), parseExamples]]) {
        if (!reader) continue;
        try {
          const parsed = parse(reader.name, reader.text);
          body[key] = parsed.items;
          sources[key] = { input: key, name: reader.name, lines: parsed.lines };
        } catch (error) {
          if (!(error instanceof FileProblem)) throw error;
          problem(key, `${reader.name}: ${error.message}`);
        }
      }
      if (body.examples) body.labels = labelsOf(body.examples);
      try {
        const words = parseLabelWords(f.label_words.control.value);
        if (Object.keys(words).length) body.label_words = words;
      } catch (error) { problem("label_words", error.message); }
      const hp = f.hyperparameters.control.value.trim();
      if (hp) {
        try { body.hyperparameters = JSON.parse(hp); } catch { problem("hyperparameters", "not valid JSON"); }
      }
      if (firstBad) { firstBad.focus(); return; }
      submit.disabled = true;
      status.textContent = "Creating…";
      const task = await api("tasks", { method: "POST", body, signal });
      onCreated(task);
    } catch (error) {
      status.textContent = "";
      if (error instanceof ApiError && error.fields.length) {
        for (const detail of error.fields) {
          const { input, message } = locateField(detail.field, detail.message, sources, "name");
          problem(input, message);
        }
        firstBad?.focus();
      } else if (!signal.aborted) {
        status.textContent = `Could not create the task: ${error.message}`;
      }
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

export async function tasksPage(main, { role, signal, navigate }) {
  const admin = role === "admin";
  const list = h("div", { id: "tasks-list" }, h("p", { class: "muted" }, "Loading tasks…"));
  main.replaceChildren(
    h("h1", { tabindex: "-1" }, admin ? "Tasks of every tenant" : "Tasks"),
    list,
    admin ? h("p", { class: "muted" }, "Tasks are created with a tenant's key.") : createForm((task) => navigate(`#/tasks/${encodeURIComponent(task.id)}`), signal));
  while (!signal.aborted) {
    try {
      const tasks = await loadTasks(admin, signal);
      // Not while the keyboard is in the table: a redraw would drop its focus.
      if (!list.contains(document.activeElement)) list.replaceChildren(taskTable(tasks, admin));
      if (!tasks.some((t) => t.status === "training")) {
        await sleep(REFRESH_MS * 5, signal);
        continue;
      }
    } catch (error) {
      if (signal.aborted) return;
      list.replaceChildren(h("p", { class: "error-text" }, `Could not load the tasks: ${error.message}`));
    }
    await sleep(REFRESH_MS, signal);
  }
}
