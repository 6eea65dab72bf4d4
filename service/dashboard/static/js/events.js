// Following a job's events. A tenant reads the Server-Sent Events stream of
// `GET /jobs/{id}/events` (Accept: text/event-stream) through fetch, because EventSource cannot
// send an Authorization header and the key must not go in the URL; it resumes with
// Last-Event-ID whenever the server closes the stream. The admin API has no stream, so the
// admin's view pages through `GET /admin/jobs/{id}/events?after=N` once a second.

import { ApiError, SIGNED_OUT, api, apiUrl, session } from "./api.js";
import { sleep } from "./dom.js";

const FINAL = ["succeeded", "failed", "cancelled"];
const POLL_MS = 1000;

/** Split SSE text into complete events and the incomplete rest (kept for the next chunk). */
export function parseSse(text) {
  const blocks = text.replace(/\r\n?/g, "\n").split("\n\n");
  const rest = blocks.pop();
  const events = [];
  for (const block of blocks) {
    const event = { id: null, event: "message", data: [], retry: null };
    for (const line of block.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "data") event.data.push(value);
      else if (field === "event") event.event = value;
      else if (field === "id") event.id = value;
      else if (field === "retry" && /^\d+$/.test(value)) event.retry = Number(value);
    }
    events.push({ ...event, data: event.data.length ? event.data.join("\n") : null });
  }
  return { events, rest };
}

async function readStream(response, handlers, cursor) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return false;
    const parsed = parseSse(buffer + value);
    buffer = parsed.rest;
    for (const event of parsed.events) {
      if (event.retry) cursor.retry = event.retry;
      if (event.data === null) continue;
      if (event.event === "end") {
        handlers.onEnd(JSON.parse(event.data));
        return true;
      }
      if (event.id !== null) cursor.last = Number(event.id);
      handlers.onEvent(JSON.parse(event.data));
    }
  }
}

/** Stream a tenant's job until its `end` event (or `signal` aborts). */
export async function streamJob(jobId, handlers, signal) {
  const cursor = { last: 0, retry: POLL_MS };
  while (!signal.aborted) {
    try {
      const headers = { Accept: "text/event-stream", Authorization: `Bearer ${session().key}` };
      if (cursor.last) headers["Last-Event-ID"] = String(cursor.last);
      const response = await fetch(apiUrl(`jobs/${encodeURIComponent(jobId)}/events`), {
        headers, signal, cache: "no-store", credentials: "omit",
      });
      if (response.status === 401) window.dispatchEvent(new CustomEvent(SIGNED_OUT));
      if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null));
      handlers.onState?.("live");
      if (await readStream(response, handlers, cursor)) return;
      handlers.onState?.("resuming");
    } catch (error) {
      if (signal.aborted) return;
      if (error instanceof ApiError && error.status < 500 && error.status !== 429) throw error;
      handlers.onState?.("reconnecting");
    }
    await sleep(cursor.retry, signal);
  }
}

/** The admin's view of any job: event pages and the job's status, once a second. */
export async function pollJob(jobId, handlers, signal) {
  const id = encodeURIComponent(jobId);
  let last = 0;
  const drain = async () => {
    for (;;) {
      const page = await api(`admin/jobs/${id}/events?after=${last}&limit=1000`, { signal });
      for (const event of page.data) { last = event.id; handlers.onEvent(event); }
      if (!page.has_more) return;
    }
  };
  handlers.onState?.("polling");
  while (!signal.aborted) {
    try {
      await drain();
      const job = await api(`admin/jobs/${id}`, { signal });
      if (FINAL.includes(job.status)) {
        await drain(); // events written between the two reads
        handlers.onEnd(job);
        return;
      }
    } catch (error) {
      if (signal.aborted) return;
      throw error;
    }
    await sleep(POLL_MS, signal);
  }
}
