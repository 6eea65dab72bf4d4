// A task's versions side by side, and the evaluation report (per-label figures, confusion
// matrix) of the one chosen.

import { fmt, h, table } from "../dom.js";

const ROWS = [
  ["Created", (v) => fmt.when(v.created_at)],
  ["Method", (v) => v.method || "–"],
  ["Tuner", (v) => v.tuner || "–"],
  ["Optimiser steps", (v) => fmt.num(v.metrics.steps)],
  ["Training time", (v) => fmt.seconds(v.metrics.train_seconds)],
  ["Labelled examples", (v) => fmt.num(v.metrics.labeled_examples)],
  ["Unlabelled texts", (v) => fmt.num(v.metrics.unlabeled_examples)],
  ["Evaluation accuracy", (v) => fmt.pct(v.metrics.evaluation_accuracy)],
  ["Evaluation macro-F1", (v) => fmt.pct(v.metrics.evaluation?.macro_f1)],
];

/** `onPromote(version)` null: read-only (the admin's view). */
export function versionsTable(versions, onPromote) {
  if (!versions.length) return h("p", { class: "muted" }, "No version yet: the first one is registered when training succeeds.");
  const head = [h("th", { scope: "col" }, "Version"), ...versions.map((v) => h("th", { scope: "col", class: v.serving ? "serving" : null }, `v${v.version}${v.serving ? " (serving)" : ""}`))];
  const rows = ROWS.map(([label, value]) => h("tr", {}, h("th", { scope: "row" }, label), versions.map((v) => h("td", { class: v.serving ? "serving" : null }, value(v)))));
  if (onPromote) {
    rows.push(h("tr", {}, h("th", { scope: "row" }, "Serve"), versions.map((v) => h("td", { class: v.serving ? "serving" : null },
      v.serving ? "serving now" : h("button", { type: "button", class: "small", "data-promote": String(v.version), onclick: (e) => onPromote(v.version, e.currentTarget) }, `Promote v${v.version}`)))));
  }
  return table("Versions, newest first", head, rows, { id: "versions-table" });
}

function matrixTable(report) {
  const { labels, matrix } = report.confusion_matrix;
  const most = Math.max(1, ...matrix.flat());
  const head = [h("th", { scope: "col" }, "gold \\ predicted"), ...labels.map((l) => h("th", { scope: "col", class: "num" }, l))];
  const rows = matrix.map((row, i) => h("tr", {}, h("th", { scope: "row" }, labels[i]),
    row.map((count, j) => h("td", { class: `num${i === j ? " diag" : ""}${count / most >= 0.5 ? " hot" : ""}` }, String(count)))));
  return table("Confusion matrix: rows are the gold labels, columns the predicted ones", head, rows, { class: "matrix", id: "confusion-matrix" });
}

function perLabelTable(report) {
  const labels = Object.keys(report.per_label || {});
  const head = ["Label", "Precision", "Recall", "F1", "Support"].map((c, i) => h("th", { scope: "col", class: i ? "num" : null }, c));
  const rows = labels.map((label) => {
    const r = report.per_label[label];
    return h("tr", {}, h("th", { scope: "row" }, label), [r.precision, r.recall, r.f1].map((x) => h("td", { class: "num" }, fmt.pct(x))), h("td", { class: "num" }, String(r.support)));
  });
  return table("Per label", head, rows);
}

/** The evaluation section: a version picker and that version's report. */
export function evaluationSection(versions) {
  const reported = versions.filter((v) => v.metrics.evaluation && v.metrics.evaluation.confusion_matrix);
  const body = h("div");
  const section = h("section", { "aria-labelledby": "evaluation-heading" }, h("h2", { id: "evaluation-heading" }, "Evaluation set"));
  if (!reported.length) {
    section.append(h("p", { class: "muted" }, "No version has an evaluation report: give the task an evaluation set (it is scored for every version, never trained on)."));
    return section;
  }
  const picker = h("select", { id: "evaluation-version" },
    reported.map((v) => h("option", { value: String(v.version), selected: v.serving }, `v${v.version}${v.serving ? " (serving)" : ""}`)));
  const show = () => {
    const version = reported.find((v) => String(v.version) === picker.value) || reported[0];
    const report = version.metrics.evaluation;
    body.replaceChildren(
      h("p", {}, `${report.examples} examples, accuracy ${fmt.pct(report.accuracy)}, macro-F1 ${fmt.pct(report.macro_f1)}`),
      h("div", { class: "grid2" }, matrixTable(report), perLabelTable(report)));
  };
  picker.addEventListener("change", show);
  section.append(h("div", { class: "field" }, h("label", { for: "evaluation-version" }, "Version"), picker), body);
  show();
  return section;
}
