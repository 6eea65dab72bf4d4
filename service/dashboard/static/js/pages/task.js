// One task: its training job live, its versions side by side (promote), the evaluation report,
// a predict box and the suggestions to label next. The admin sees it read-only.

import { ApiError, api } from "../api.js";
import { fmt, h, statusPill, toast } from "../dom.js";
import { Fields, field } from "../form.js";
import { JobView } from "../live.js";
import { evaluationSection, versionsTable } from "./versions.js";

async function load(taskId, admin, signal) {
  const id = encodeURIComponent(taskId);
  if (admin) {
    const detail = await api(`admin/tasks/${id}`, { signal });
    return { task: detail.task, versions: detail.versions.data, job: detail.jobs[0] || null };
  }
  const [task, versions] = await Promise.all([api(`tasks/${id}`, { signal }), api(`tasks/${id}/versions`, { signal })]);
  const job = task.job ? await api(`jobs/${encodeURIComponent(task.job.id)}`, { signal }) : null;
  return { task, versions: versions.data, job };
}

function header(task) {
  const words = Object.entries(task.label_words || {}).map(([label, word]) => (label === word ? label : `${label} (“${word}”)`));
  return [
    h("h1", { tabindex: "-1" }, task.name, " ", statusPill(task.status)),
    h("ul", { class: "kv" },
      h("li", {}, h("span", {}, "Id"), h("code", {}, task.id)),
      task.tenant_id ? h("li", {}, h("span", {}, "Tenant"), `${task.tenant_name || ""} `, h("code", {}, task.tenant_id)) : null,
      h("li", {}, h("span", {}, "Labels"), words.join(", ")),
      h("li", {}, h("span", {}, "Tuner / method"), `${task.tuner} / ${task.method}`),
      h("li", {}, h("span", {}, "Head"), task.head_kind),
      h("li", {}, h("span", {}, "Served version"), task.adapter ? `v${task.adapter.version}` : "none yet"),
      h("li", {}, h("span", {}, "Created"), fmt.when(task.created_at))),
  ];
}

function predictBox(task, versions) {
  const input = field("inputs", "Texts to classify", h("textarea", { rows: "3" }), "One text per line.");
  const version = field("version", "Version", h("select", {},
    h("option", { value: "" }, "the served one"), versions.map((v) => h("option", { value: String(v.version) }, `v${v.version}`))));
  const fields = new Fields([input, version]);
  const results = h("ul", { class: "results", id: "predictions", "aria-live": "polite" });
  const button = h("button", { type: "submit" }, "Predict");
  const form = h("form", { novalidate: true, id: "predict-form" }, h("div", { class: "form-grid" }, input.element, version.element), h("div", { class: "actions" }, button), results);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    fields.clear();
    const texts = input.control.value.split("\n").map((t) => t.trim()).filter(Boolean);
    if (!texts.length) { fields.show("inputs", "Type at least one text"); input.control.focus(); return; }
    button.disabled = true;
    try {
      const pinned = version.control.value ? `?version=${version.control.value}` : "";
      const answer = await api(`predict/${encodeURIComponent(task.id)}${pinned}`, { method: "POST", body: { inputs: texts } });
      results.replaceChildren(...answer.predictions.map((p, i) => predictionRow(task, texts[i], p, answer.adapter_version)));
    } catch (error) {
      const detail = error instanceof ApiError && error.fields[0];
      fields.show("inputs", detail ? `${detail.field}: ${detail.message}` : error.message);
    } finally {
      button.disabled = false;
    }
  });
  return h("section", { "aria-labelledby": "predict-heading" }, h("h2", { id: "predict-heading" }, "Predict"), form);
}

function labelButtons(task, send, what) {
  const row = h("span", { class: "actions" });
  for (const label of task.labels) {
    row.append(h("button", { type: "button", class: "secondary small", "data-label": label, "aria-label": `${what}: ${label}`, onclick: async () => {
      for (const b of row.querySelectorAll("button")) b.disabled = true;
      try {
        await send(label);
        row.replaceChildren(h("span", { class: "muted" }, `labelled “${label}”, used by the next retrain`));
      } catch (error) {
        for (const b of row.querySelectorAll("button")) b.disabled = false;
        toast(`Could not store the label: ${error.message}`);
      }
    } }, label));
  }
  return row;
}

function feedback(task, body) {
  return api(`tasks/${encodeURIComponent(task.id)}/feedback`, { method: "POST", body });
}

function predictionRow(task, text, prediction, version) {
  return h("li", {},
    h("span", { class: "text" }, text),
    h("strong", { class: "label" }, prediction.label), h("span", { class: "muted" }, `${fmt.pct(prediction.score)} · v${version}`),
    h("span", { class: "muted" }, "correct it:"),
    labelButtons(task, (label) => feedback(task, { prediction_id: prediction.id, label }), `Correct “${text.slice(0, 40)}” to`));
}

function suggestionsSection(task, signal) {
  const list = h("ul", { class: "results", id: "suggestions" });
  const note = h("p", { class: "muted" });
  const refresh = h("button", { type: "button", class: "secondary small", onclick: () => show() }, "Refresh");
  const show = async () => {
    note.textContent = "Loading…";
    try {
      const found = await api(`tasks/${encodeURIComponent(task.id)}/suggestions?limit=8`, { signal });
      note.textContent = found.data.length
        ? `The ${found.data.length} unlabelled texts version ${found.adapter_version} is least sure about (of ${found.pool}). Label them and retrain.`
        : "No unlabelled text left to suggest.";
      list.replaceChildren(...found.data.map((s) => h("li", {},
        h("span", { class: "text" }, s.text),
        h("span", { class: "muted" }, `guess ${s.label}, uncertainty ${fmt.num(s.uncertainty, 2)}`),
        labelButtons(task, (label) => feedback(task, { text: s.text, label }), `Label “${s.text.slice(0, 40)}” as`))));
    } catch (error) {
      if (!signal.aborted) note.textContent = `No suggestions: ${error.message}`;
    }
  };
  if (task.status === "ready") show();
  else note.textContent = "Suggestions come from the served version, once there is one.";
  return h("section", { "aria-labelledby": "suggestions-heading" },
    h("h2", { id: "suggestions-heading" }, "Label next"), h("div", { class: "actions" }, note, refresh), list);
}

function retrainForm(task, onJob) {
  const policy = h("select", { id: "retrain-policy" },
    h("option", { value: "if_better" }, "only if not worse on the evaluation set"), h("option", { value: "always" }, "always"));
  const button = h("button", { type: "submit", id: "retrain" }, "Retrain");
  const form = h("form", { class: "actions", novalidate: true },
    h("label", { for: "retrain-policy" }, "Serve the new version"), policy, button);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    button.disabled = true;
    try {
      onJob(await api(`tasks/${encodeURIComponent(task.id)}/retrain`, { method: "POST", body: { promote: policy.value } }));
      toast("Retraining: the served version keeps serving meanwhile");
    } catch (error) {
      toast(`Could not retrain: ${error.message}`);
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

export async function taskPage(main, { role, signal, params }) {
  const admin = role === "admin";
  const taskId = params[0];
  main.replaceChildren(h("p", { class: "muted" }, "Loading…"));
  let data;
  try {
    data = await load(taskId, admin, signal);
  } catch (error) {
    if (signal.aborted) return;
    main.replaceChildren(h("h1", { tabindex: "-1" }, "Task"), h("p", { class: "error-text" }, error.status === 404 ? "No such task." : `Could not load the task: ${error.message}`));
    return;
  }
  const top = h("div");
  const versions = h("section", { "aria-labelledby": "versions-heading" });
  const evaluation = h("div");
  const jobSlot = h("div");
  const bottom = h("div");
  let following = null;

  const renderData = () => {
    top.replaceChildren(...header(data.task));
    const promote = admin ? null : async (version, button) => {
      button.disabled = true;
      try {
        await api(`tasks/${encodeURIComponent(taskId)}/versions/${version}/promote`, { method: "POST" });
        toast(`Serving v${version}`);
        await reload();
      } catch (error) {
        button.disabled = false;
        toast(`Could not promote: ${error.message}`);
      }
    };
    versions.replaceChildren(h("h2", { id: "versions-heading" }, "Versions"), versionsTable(data.versions, promote));
    evaluation.replaceChildren(evaluationSection(data.versions));
  };
  const reload = async () => {
    data = await load(taskId, admin, signal);
    renderData();
    if (!admin) bottom.replaceChildren(predictBox(data.task, data.versions), suggestionsSection(data.task, signal));
  };
  const follow = (job) => {
    following?.abort();
    following = new AbortController();
    signal.addEventListener("abort", () => following.abort(), { once: true });
    const view = new JobView({ admin, onEnded: () => { if (!signal.aborted) reload().catch(() => {}); } });
    jobSlot.replaceChildren(view.element, admin ? h("p", { class: "muted" }, "Retraining, promoting and predicting are done with the tenant's key.") : retrainForm(data.task, follow));
    view.follow(job, following.signal);
  };

  renderData();
  main.replaceChildren(top, jobSlot, versions, evaluation, bottom);
  if (!admin) bottom.replaceChildren(predictBox(data.task, data.versions), suggestionsSection(data.task, signal));
  if (data.job) follow(data.job);
  else jobSlot.replaceChildren(h("p", { class: "muted" }, "No job."));
}
