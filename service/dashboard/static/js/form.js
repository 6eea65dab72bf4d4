// Form fields with their label, hint and error line wired together (label/for,
// aria-describedby, aria-invalid), so errors are read out at the field they belong to.

import { h, uid } from "./dom.js";

export function field(name, labelText, control, hint) {
  const id = uid(name);
  const hintId = hint ? `${id}-hint` : null;
  const errorId = `${id}-error`;
  control.id = id;
  control.name = name;
  control.setAttribute("aria-describedby", [hintId, errorId].filter(Boolean).join(" "));
  const error = h("div", { class: "error", id: errorId, role: "alert" });
  const element = h("div", { class: "field", "data-field": name },
    h("label", { for: id }, labelText), control, hint ? h("div", { class: "hint", id: hintId }, hint) : null, error);
  return { element, control, error, name };
}

export class Fields {
  constructor(fields) {
    this.byName = new Map(fields.map((f) => [f.name, f]));
  }

  clear() {
    for (const f of this.byName.values()) {
      f.error.textContent = "";
      f.control.removeAttribute("aria-invalid");
    }
  }

  /** Show `message` at the field `name` (or at `fallback` when there is no such field). */
  show(name, message, fallback) {
    const f = this.byName.get(name) || this.byName.get(fallback);
    f.error.textContent = f.error.textContent ? `${f.error.textContent}\n${message}` : message;
    f.control.setAttribute("aria-invalid", "true");
    return f;
  }
}
