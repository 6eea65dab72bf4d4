// Line charts in plain SVG: a few series of [x, y] points (null: a gap in the line), axes with
// round ticks, a legend.
// No chart library: this is all the dashboard draws. Each chart says what it shows in its
// aria-label (series, points, latest values) and carries its point count in data-points.

import { h, s } from "./dom.js";

const WIDTH = 640;
const HEIGHT = 220;
const PAD = { left: 52, right: 12, top: 10, bottom: 26 };
const SERIES_CLASSES = 6;
const MAX_MARKERS = 60;

/** About `count` round tick values covering [low, high]. */
export function ticks(low, high, count = 4) {
  if (!(high > low)) return [low];
  const raw = (high - low) / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  // The round step (1, 2 or 5 times a power of ten) nearest the raw one, by ratio.
  const step = [1, 2, 5, 10].map((m) => m * power)
    .reduce((best, candidate) => (Math.abs(Math.log(candidate / raw)) < Math.abs(Math.log(best / raw)) ? candidate : best));
  const values = [];
  for (let v = Math.ceil(low / step) * step; v <= high + step * 1e-9; v += step) {
    values.push(Number(v.toPrecision(12)));
  }
  return values;
}

function extent(values, fixedLow, fixedHigh) {
  let low = fixedLow ?? Math.min(...values);
  let high = fixedHigh ?? Math.max(...values);
  if (low === high) { low -= low ? Math.abs(low) * 0.1 : 1; high += high ? Math.abs(high) * 0.1 : 1; }
  return [low, high];
}

export class LineChart {
  /** options: {id, title, yFormat(v), xFormat(v), yMin, yMax, xIntegers} */
  constructor(options) {
    this.options = { yFormat: (v) => String(v), xFormat: (v) => String(v), ...options };
    this.svg = s("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", "data-points": "0" });
    this.legend = h("ul", { class: "legend" });
    this.element = h("figure", { class: "chart", id: this.options.id }, h("figcaption", {}, this.options.title), this.svg, this.legend);
    this.update([]);
  }

  /** Redraw with `series`: [{name, points: [[x, y] or null, ...]}]. */
  update(series) {
    const { xFormat, yFormat, title } = this.options;
    const drawn = series.map((one) => ({ ...one, real: one.points.filter(Boolean) })).filter((one) => one.real.length);
    const points = drawn.reduce((n, one) => n + one.real.length, 0);
    this.svg.replaceChildren();
    this.legend.replaceChildren();
    this.svg.setAttribute("data-points", String(points));
    if (!points) {
      this.svg.append(s("text", { x: WIDTH / 2, y: HEIGHT / 2, "text-anchor": "middle", class: "empty" }, "No data yet"));
      this.svg.setAttribute("aria-label", `${title}: no data yet`);
      return;
    }
    const xs = drawn.flatMap((one) => one.real.map((p) => p[0]));
    const ys = drawn.flatMap((one) => one.real.map((p) => p[1]));
    const [x0, x1] = extent(xs);
    const [y0, y1] = extent(ys, this.options.yMin, this.options.yMax);
    const px = (x) => PAD.left + ((x - x0) / (x1 - x0)) * (WIDTH - PAD.left - PAD.right);
    const py = (y) => HEIGHT - PAD.bottom - ((y - y0) / (y1 - y0)) * (HEIGHT - PAD.top - PAD.bottom);
    for (const value of ticks(y0, y1)) {
      this.svg.append(
        s("line", { class: "axis", x1: PAD.left, x2: WIDTH - PAD.right, y1: py(value), y2: py(value) }),
        s("text", { class: "tick", x: PAD.left - 6, y: py(value) + 4, "text-anchor": "end" }, yFormat(value)));
    }
    const xTicks = ticks(x0, x1, 5).filter((v) => !this.options.xIntegers || Number.isInteger(v));
    for (const value of xTicks) {
      this.svg.append(s("text", { class: "tick", x: px(value), y: HEIGHT - 8, "text-anchor": "middle" }, xFormat(value)));
    }
    const summary = [];
    drawn.forEach((one, index) => {
      const css = `s${index % SERIES_CLASSES}`;
      let path = "";
      let gap = true;
      for (const point of one.points) {
        if (!point) { gap = true; continue; }
        path += `${gap ? "M" : "L"}${px(point[0]).toFixed(1)},${py(point[1]).toFixed(1)} `;
        gap = false;
      }
      this.svg.append(s("path", { class: `line ${css}`, d: path.trim() }));
      if (one.real.length <= MAX_MARKERS) {
        for (const [x, y] of one.real) this.svg.append(s("circle", { class: css, cx: px(x), cy: py(y), r: 2.5 }));
      }
      const latest = one.real[one.real.length - 1][1];
      this.legend.append(h("li", { class: css }, `${one.name}: ${yFormat(latest)}`));
      summary.push(`${one.name} latest ${yFormat(latest)}`);
    });
    this.svg.setAttribute("aria-label", `${title}: ${points} points; ${summary.join("; ")}`);
  }
}
