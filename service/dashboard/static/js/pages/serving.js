// Serving (admin): rows/s, predict latency, batch sizes and the adapter cache over time (from
// the ring behind GET /admin/serving/history), and now: jobs, workers, per-task counts.

import { api } from "../api.js";
import { LineChart } from "../chart.js";
import { fmt, h, sleep, table } from "../dom.js";

const OVERVIEW_MS = 5000;
const MIN_POLL_MS = 1000;

/** The chart series of the samples (oldest first), keyed by chart. */
export function servingSeries(samples) {
  // A sample without the value (no request in it) is a gap in the line, not a slope across it.
  const pick = (key, scale = 1) => samples.map((s) => (s[key] === null || s[key] === undefined ? null : [s.at, s[key] * scale]));
  return {
    rows: [{ name: "rows/s", points: pick("rows_per_s") }],
    latency: [{ name: "p50", points: pick("latency_ms_p50") }, { name: "p99", points: pick("latency_ms_p99") }],
    batch: [{ name: "rows per forward", points: pick("mean_batch_rows") }, { name: "queued rows", points: pick("queued_rows") }],
    cacheBytes: [{ name: "cache MiB", points: pick("cache_bytes", 1 / 2 ** 20) }],
    hitRate: [{ name: "hit rate", points: pick("cache_hit_rate") }],
  };
}

function overviewView(now) {
  const jobs = now.jobs || {};
  const cache = now.adapter_cache || {};
  const batcher = now.batcher || {};
  const runner = now.runner || {};
  const workers = now.workers.length
    ? table(null, ["Lease owner", "Running jobs", "Last heartbeat", "Lease expires"].map((c) => h("th", { scope: "col" }, c)),
      now.workers.map((w) => h("tr", {}, h("td", {}, h("code", {}, w.owner)), h("td", { class: "num" }, String(w.running_jobs)), h("td", {}, fmt.when(w.last_heartbeat_at)), h("td", {}, fmt.when(w.lease_expires_at)))))
    : h("p", { class: "muted" }, "No job is running.");
  const tasks = now.tasks.length
    ? table("Texts classified per task by this process, most first", ["Task", "Tenant", "Texts"].map((c) => h("th", { scope: "col", class: c === "Texts" ? "num" : null }, c)),
      now.tasks.map((t) => h("tr", {}, h("td", {}, t.name || t.task_id, h("br"), h("code", { class: "muted" }, t.task_id)), h("td", {}, h("code", {}, t.tenant_id || "–")), h("td", { class: "num" }, String(t.predictions)))),
      { id: "task-counts" })
    : h("p", { class: "muted" }, "No prediction served yet.");
  return [
    h("ul", { class: "kv", id: "serving-now" },
      h("li", {}, h("span", {}, "Ready"), now.ready ? "yes" : `no (${now.status})`),
      h("li", {}, h("span", {}, "Jobs queued"), String(jobs.queued ?? 0)),
      h("li", {}, h("span", {}, "running"), String(jobs.running ?? 0)),
      h("li", {}, h("span", {}, "cancelling"), String(jobs.cancel_requested ?? 0)),
      h("li", {}, h("span", {}, "Runner"), `${runner.kind || "–"}${runner.broker_error ? ` (broker: ${runner.broker_error})` : ""}`),
      h("li", {}, h("span", {}, "Batching"), `${batcher.mode || "–"}, ${batcher.model_threads ?? "–"} model threads`),
      h("li", {}, h("span", {}, "Adapter cache"), `${cache.entries ?? 0} adapters, ${fmt.bytes(cache.bytes)} of ${fmt.bytes(cache.budget_bytes)}, hit rate ${fmt.pct(cache.hit_rate)}`)),
    h("h2", {}, "Workers"), workers,
    h("h2", {}, "Per task"), tasks,
  ];
}

export async function servingPage(main, { role, signal }) {
  if (role !== "admin") {
    main.replaceChildren(h("h1", { tabindex: "-1" }, "Serving"), h("p", {}, "Serving health is for the admin token."));
    return;
  }
  const clock = (v) => fmt.clock(v);
  const charts = {
    rows: new LineChart({ id: "chart-rows", title: "Rows per second", xFormat: clock, yFormat: (v) => fmt.num(v, 1), yMin: 0 }),
    latency: new LineChart({ id: "chart-latency", title: "Predict latency (ms)", xFormat: clock, yFormat: (v) => fmt.num(v, 1), yMin: 0 }),
    batch: new LineChart({ id: "chart-batch", title: "Batch sizes", xFormat: clock, yFormat: (v) => fmt.num(v, 1), yMin: 0 }),
    cacheBytes: new LineChart({ id: "chart-cacheBytes", title: "Adapter cache (MiB)", xFormat: clock, yFormat: (v) => fmt.num(v, 2), yMin: 0 }),
    hitRate: new LineChart({ id: "chart-hitRate", title: "Adapter cache hit rate", xFormat: clock, yFormat: fmt.pct, yMin: 0, yMax: 1 }),
  };
  const note = h("p", { class: "muted" });
  const now = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  main.replaceChildren(
    h("h1", { tabindex: "-1" }, "Serving"),
    now,
    h("h2", {}, "Over time"), note,
    h("div", { class: "grid2", id: "serving-charts" }, Object.values(charts).map((c) => c.element)));

  const samples = [];
  let interval = 5;
  let capacity = 720;
  const pollHistory = async () => {
    while (!signal.aborted) {
      try {
        const since = samples.length ? `?since=${samples[samples.length - 1].at}` : "";
        const history = await api(`admin/serving/history${since}`, { signal });
        ({ interval_seconds: interval, capacity } = history);
        samples.push(...history.samples);
        samples.splice(0, Math.max(samples.length - capacity, 0));
        const series = servingSeries(samples);
        for (const [key, chart] of Object.entries(charts)) chart.update(series[key]);
        note.textContent = `A sample every ${interval} s, the last ${capacity} kept (${fmt.seconds(interval * capacity)}); ${samples.length} so far.`;
      } catch (error) {
        if (signal.aborted) return;
        note.textContent = `Could not read the history: ${error.message}`;
      }
      await sleep(Math.max(interval * 1000, MIN_POLL_MS), signal);
    }
  };
  const pollOverview = async () => {
    while (!signal.aborted) {
      try {
        now.replaceChildren(...overviewView(await api("admin/serving", { signal })));
      } catch (error) {
        if (signal.aborted) return;
        now.replaceChildren(h("p", { class: "error-text" }, `Could not read serving health: ${error.message}`));
      }
      await sleep(OVERVIEW_MS, signal);
    }
  };
  await Promise.all([pollHistory(), pollOverview()]);
}
