// Building elements and formatting numbers. Text always goes in as text nodes, never as HTML,
// so nothing a task or a tenant named can run as script.

const SVG_NS = "http://www.w3.org/2000/svg";

function build(element, attrs, children) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else if (name === "text") {
      element.textContent = String(value);
    } else {
      element.setAttribute(name, value === true ? "" : String(value));
    }
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

/** An HTML element: h("button", {class: "small", onclick}, "Promote"). */
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/** An SVG element, same arguments as h. */
export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

let ids = 0;
/** A page-unique id for label/for and aria-describedby pairs. */
export function uid(prefix) {
  ids += 1;
  return `${prefix}-${ids}`;
}

export function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
  });
}

export const fmt = {
  pct(x) { return x === null || x === undefined ? "–" : `${(x * 100).toFixed(1)} %`; },
  num(x, digits = 3) {
    if (x === null || x === undefined || Number.isNaN(x)) return "–";
    return Number.isInteger(x) ? String(x) : x.toFixed(digits);
  },
  ms(x) { return x === null || x === undefined ? "–" : `${x.toFixed(1)} ms`; },
  bytes(n) {
    if (n === null || n === undefined) return "–";
    const units = ["B", "KiB", "MiB", "GiB"];
    let value = n;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
    return `${value.toFixed(unit ? 1 : 0)} ${units[unit]}`;
  },
  seconds(x) {
    if (x === null || x === undefined) return "–";
    if (x < 90) return `${Math.round(x)} s`;
    if (x < 5400) return `${Math.round(x / 60)} min`;
    return `${(x / 3600).toFixed(1)} h`;
  },
  when(iso) {
    if (!iso) return "–";
    const date = new Date(iso);
    return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
  },
  clock(unixSeconds) { return new Date(unixSeconds * 1000).toLocaleTimeString(); },
};

/** A status word as a pill (colour comes from the stylesheet, the word carries the meaning). */
export function statusPill(status) {
  return h("span", { class: `status ${status || "none"}` }, status || "–");
}

/** A table in a horizontally scrolling wrapper (wide tables never widen the page on a phone). */
export function table(caption, headers, rows, attrs = {}) {
  return h("div", { class: "table-wrap" },
    h("table", attrs,
      caption ? h("caption", { class: "muted" }, caption) : null,
      h("thead", {}, h("tr", {}, headers.map((cell) => (cell instanceof Node ? cell : h("th", { scope: "col" }, cell))))),
      h("tbody", {}, rows)));
}

/** Announce something briefly in the live region. */
export function toast(message) {
  const region = document.getElementById("toast");
  region.textContent = message;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { region.textContent = ""; }, 4000);
}
