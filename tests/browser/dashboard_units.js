// The dashboard's view helpers, run in the page as the pages run them: test_dashboard.py
// evaluates this function with the URL of the page's scripts and checks what it returns.
async (base) => {
  const files = await import(`${base}files.js`);
  const events = await import(`${base}events.js`);
  const live = await import(`${base}live.js`);
  const chart = await import(`${base}chart.js`);
  const serving = await import(`${base}pages/serving.js`);

  const csv = files.parseCsv('text,label\n"a, ""quoted""\nline",pos\n\nplain,neg\n');
  const examples = files.parseExamples("x.csv", 'text,label\nfine,pos\n"two\nlines",neg\nlast,neg');
  let problem = null;
  try {
    files.parseExamples("x.jsonl", '{"text": "a", "label": "p"}\nnot json\n');
  } catch (error) {
    problem = error.message;
  }
  const sources = { examples: { input: "examples", name: "x.csv", lines: examples.lines } };
  const sse = events.parseSse(
    'retry: 1000\n\nid: 7\nevent: progress\ndata: {"a":\ndata: 1}\n\n: keep-alive\n\nid: 8\nda');

  const progress = (session, phase, step, value) => ({
    kind: "progress",
    data: { session, phase, trained_steps: step, losses: { labeled_loss: value } },
  });
  const series = live.trainingSeries([
    { kind: "started", data: {} },
    progress(0, "teacher", 1, 0.9),
    progress(0, "teacher", 2, 0.7),
    {
      kind: "progress",
      data: {
        session: 0, phase: "teacher_done", trained_steps: null,
        losses: { labeled_loss: 0.7 }, evaluation_accuracy: 0.5,
      },
    },
    {
      kind: "progress",
      data: { session: 1, phase: "distill", trained_steps: 3, losses: { kl: 0.2 }, agreement: 0.8 },
    },
    progress(1, "labeled", 4, 0.6),
    progress(2, "labeled", 6, 0.5),
  ], [{ session: 1, phase: "session", kept_fraction: 0.4, evaluation_accuracy: 0.75 }]);

  return {
    csv: csv.map((row) => [row.line, row.cells]),
    examples,
    problem,
    located: files.locateField("examples[1].text", "must not be empty", sources),
    labels: files.locateField("labels", "at least 2", sources),
    other: files.locateField("tuner", "unknown", sources),
    words: files.parseLabelWords("positive=great, negative = terrible"),
    unlabeled: files.parseUnlabeled("u.txt", "one\n\ntwo\n").items,
    sse,
    series: {
      loss: series.loss,
      kl: series.kl,
      agreement: series.agreement,
      accuracy: series.accuracy,
      sessions: series.sessions,
    },
    eta: live.etaNow({ eta_seconds: 30, estimated_at: 100 }, 110),
    ticks: chart.ticks(0, 1),
    serving: serving.servingSeries([
      { at: 1, rows_per_s: 5, latency_ms_p50: 2, latency_ms_p99: null, cache_bytes: 1048576 },
    ]),
  };
}
