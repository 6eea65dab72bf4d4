// The live view of one training job: what its events say (service/jobs/progress.py writes
// them: session, phase, step, fraction, trained_steps, losses, agreement, eta_seconds,
// estimated_at; a "<phase>_done" event per session with its losses, agreement, kept fraction
// and evaluation accuracy when the task has an evaluation set), drawn as it arrives.

import { LineChart } from "./chart.js";
import { h, fmt, statusPill, table, toast } from "./dom.js";
import { pollJob, streamJob } from "./events.js";
import { api } from "./api.js";

const DONE = "_done";

// The losses a phase reports: the labelled-set cross-entropy, or the KL to the teacher.
const LABELLED_PHASES = ["teacher", "labeled"];
const DISTILL_PHASES = ["distill", "reweight"];

/** Add a point to the series `name`, after a gap when it belongs to another session than the
 *  series' last point (so one line per phase never joins two sessions). */
function add(map, name, session, point) {
  if (!map.has(name)) map.set(name, { points: [], session });
  const series = map.get(name);
  if (series.session !== session && series.points.length) series.points.push(null);
  series.session = session;
  series.points.push(point);
}

function toSeries(map) {
  return [...map].map(([name, { points }]) => ({ name, points }));
}

/** Curves and per-session rows from a job's events (and its `sessions` once it has ended). */
export function trainingSeries(events, finalSessions = []) {
  const labelled = new Map();
  const distill = new Map();
  const agreement = new Map();
  const sessions = new Map();
  let latest = null;
  for (const event of events) {
    if (event.kind !== "progress" || !event.data) continue;
    const data = event.data;
    latest = data;
    if (typeof data.phase === "string" && data.phase.endsWith(DONE)) {
      sessions.set(data.session, {
        session: data.session,
        phase: data.phase.slice(0, -DONE.length),
        ...(data.losses || {}),
        evaluation_accuracy: data.evaluation_accuracy ?? null,
      });
      continue;
    }
    if (data.trained_steps === null || data.trained_steps === undefined) continue;
    const losses = data.losses || {};
    const step = data.trained_steps;
    if (LABELLED_PHASES.includes(data.phase) && losses.labeled_loss !== null && losses.labeled_loss !== undefined) {
      add(labelled, data.phase, data.session, [step, losses.labeled_loss]);
    }
    if (DISTILL_PHASES.includes(data.phase) && losses.kl !== null && losses.kl !== undefined) {
      add(distill, data.phase, data.session, [step, losses.kl]);
    }
    if (data.agreement !== null && data.agreement !== undefined) {
      add(agreement, `session ${data.session}`, data.session, [step, data.agreement]);
    }
  }
  for (const row of finalSessions) sessions.set(row.session, { ...sessions.get(row.session), ...row });
  const rows = [...sessions.values()].sort((a, b) => a.session - b.session);
  const accuracy = rows.filter((r) => r.evaluation_accuracy !== null && r.evaluation_accuracy !== undefined)
    .map((r) => [r.session, r.evaluation_accuracy]);
  return {
    loss: toSeries(labelled),
    kl: toSeries(distill),
    agreement: toSeries(agreement),
    accuracy: accuracy.length ? [{ name: "evaluation accuracy", points: accuracy }] : [],
    sessions: rows,
    latest,
  };
}

/** Seconds left by the latest estimate, aged by the time since it was made. */
export function etaNow(latest, nowSeconds = Date.now() / 1000) {
  if (!latest || latest.eta_seconds === null || latest.eta_seconds === undefined) return null;
  const age = latest.estimated_at ? nowSeconds - latest.estimated_at : 0;
  return Math.max(latest.eta_seconds - Math.max(age, 0), 0);
}

export class JobView {
  /** `admin`: read through the admin API (polling) and offer no cancel button. */
  constructor({ admin, onEnded }) {
    this.admin = admin;
    this.onEnded = onEnded;
    this.events = [];
    this.job = null;
    this.state = h("span", { class: "muted" });
    this.summary = h("ul", { class: "kv", id: "job-summary" });
    this.progress = h("progress", { max: "1", value: "0", "aria-label": "Training progress" });
    this.cancel = h("button", { type: "button", class: "secondary small", hidden: true, onclick: () => this.cancelJob() }, "Cancel job");
    this.loss = new LineChart({ id: "chart-loss", title: "Loss on the labelled examples, per phase (x: step)", yFormat: (v) => fmt.num(v, 2) });
    this.kl = new LineChart({ id: "chart-kl", title: "Distillation loss (KL to the teacher), per phase", yFormat: (v) => fmt.num(v, 4) });
    this.agreement = new LineChart({ id: "chart-agreement", title: "Pseudo-label agreement per session (x: step)", yFormat: fmt.pct, yMin: 0, yMax: 1 });
    this.accuracy = new LineChart({ id: "chart-accuracy", title: "Evaluation accuracy per session (x: session; 0 is the teacher)", yFormat: fmt.pct, xIntegers: true, yMin: 0, yMax: 1 });
    this.sessions = h("div");
    this.element = h("section", { "aria-labelledby": "job-heading", class: "job" },
      h("h2", { id: "job-heading" }, "Training"),
      h("div", { class: "actions" }, this.state, this.cancel),
      this.summary, this.progress,
      h("div", { class: "grid2" }, this.loss.element, this.kl.element, this.agreement.element, this.accuracy.element),
      this.sessions);
    this.timer = setInterval(() => this.renderSummary(), 1000);
  }

  /** Follow `job` (a job object from the API) until it ends or `signal` aborts. */
  async follow(job, signal) {
    this.job = job;
    this.events = [];
    this.render();
    signal.addEventListener("abort", () => clearInterval(this.timer), { once: true });
    const handlers = {
      onEvent: (event) => { this.events.push(event); this.scheduleRender(); },
      onEnd: (ended) => { this.job = ended; this.state.textContent = ""; this.render(); this.onEnded?.(ended); },
      onState: (state) => { this.state.textContent = state === "live" ? "Live" : state === "polling" ? "Updating every second" : "Reconnecting…"; },
    };
    try {
      await (this.admin ? pollJob : streamJob)(job.id, handlers, signal);
    } catch (error) {
      this.state.textContent = `Could not follow the job: ${error.message}`;
    }
  }

  scheduleRender() {
    if (this.pending) return;
    this.pending = requestAnimationFrame(() => { this.pending = null; this.render(); });
  }

  render() {
    const series = trainingSeries(this.events, this.job?.sessions || []);
    this.series = series;
    this.loss.update(series.loss);
    this.kl.update(series.kl);
    this.agreement.update(series.agreement);
    this.accuracy.update(series.accuracy);
    this.sessions.replaceChildren(this.sessionTable(series.sessions));
    this.renderSummary();
  }

  renderSummary() {
    const job = this.job;
    if (!job) return;
    const latest = this.series?.latest || job.progress;
    const running = ["queued", "running", "cancel_requested"].includes(job.status);
    const fraction = running ? latest?.fraction ?? 0 : job.status === "succeeded" ? 1 : latest?.fraction ?? 0;
    this.progress.value = fraction;
    this.cancel.hidden = this.admin || !["queued", "running"].includes(job.status);
    const phase = latest?.phase?.endsWith(DONE) ? `${latest.phase.slice(0, -DONE.length)} done` : latest?.phase;
    const where = phase ? `${phase}${latest.session ? `, session ${latest.session} of ${latest.sessions}` : ""}` : "–";
    const items = [
      ["Job", h("code", {}, job.id)],
      ["Kind", job.kind],
      ["Status", statusPill(job.status)],
      ["Phase", where],
      ["Done", fmt.pct(fraction)],
      ["Trained steps", latest?.trained_steps ?? job.trained_steps ?? "–"],
      ["ETA", running ? fmt.seconds(etaNow(latest)) : "–"],
    ];
    if (job.result) items.push(["Result", `version ${job.result.version}${job.result.promoted ? ", serving" : ", not promoted"}`]);
    if (job.error) items.push(["Error", `${job.error.type}: ${job.error.message}`]);
    this.summary.replaceChildren(...items.map(([k, v]) => h("li", {}, h("span", {}, k), v)));
  }

  sessionTable(rows) {
    if (!rows.length) return h("p", { class: "muted" }, "Per-session figures appear as each session ends (with an evaluation set, during training; otherwise when the job ends).");
    const cell = (value, format) => h("td", { class: "num" }, format(value));
    return table("Per session", ["Session", "Phase", "Labelled loss", "KL", "Agreement", "Kept fraction", "Evaluation accuracy"].map((c, i) => h("th", { scope: "col", class: i > 1 ? "num" : null }, c)),
      rows.map((r) => h("tr", {},
        h("td", {}, String(r.session)), h("td", {}, r.phase || "–"),
        cell(r.labeled_loss, (v) => fmt.num(v, 3)), cell(r.kl, (v) => fmt.num(v, 4)),
        cell(r.agreement, fmt.pct), cell(r.kept_fraction, fmt.pct), cell(r.evaluation_accuracy, fmt.pct))));
  }

  async cancelJob() {
    try {
      this.job = await api(`jobs/${encodeURIComponent(this.job.id)}/cancel`, { method: "POST" });
      toast("Cancel requested");
      this.renderSummary();
    } catch (error) {
      toast(`Could not cancel: ${error.message}`);
    }
  }
}
