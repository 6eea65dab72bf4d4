// Sign in with a tenant key (its own tasks) or the admin token (every tenant, and serving).

import { ApiError, identify, saveSession } from "../api.js";
import { h } from "../dom.js";
import { Fields, field } from "../form.js";

export function signInPage(main, { onSignedIn }) {
  const key = field("key", "API key or admin token",
    h("input", { type: "password", autocomplete: "off", spellcheck: "false", required: true }),
    "A tenant key (lsk_…) shows that tenant's tasks; the admin token shows every tenant and serving health. It is kept in this tab only, until you sign out or close it.");
  const fields = new Fields([key]);
  const button = h("button", { type: "submit" }, "Sign in");
  const form = h("form", { class: "panel signin", novalidate: true },
    h("h1", { tabindex: "-1" }, "Sign in"), key.element, h("div", { class: "actions" }, button));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    fields.clear();
    const value = key.control.value.trim();
    if (!value) { fields.show("key", "Enter a key"); key.control.focus(); return; }
    button.disabled = true;
    try {
      const role = await identify(value);
      saveSession(value, role);
      key.control.value = "";
      onSignedIn(role);
    } catch (error) {
      const refused = error instanceof ApiError && [401, 503].includes(error.status);
      fields.show("key", refused ? "This is neither a tenant key nor the admin token" : `Could not sign in: ${error.message}`);
      key.control.focus();
    } finally {
      button.disabled = false;
    }
  });
  main.replaceChildren(form);
  key.control.focus();
}
