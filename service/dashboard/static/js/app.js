// The dashboard's shell: sign-in state, the header, and hash routes (#/tasks, #/tasks/<id>,
// #/serving). Each page gets an AbortSignal that fires when the user leaves it, so its
// streams and polls stop with it.

import { SIGNED_OUT, clearSession, session } from "./api.js";
import { toast } from "./dom.js";
import { signInPage } from "./pages/signin.js";
import { servingPage } from "./pages/serving.js";
import { taskPage } from "./pages/task.js";
import { tasksPage } from "./pages/tasks.js";

const ROUTES = [
  [/^#\/tasks\/([A-Za-z0-9_-]+)$/, taskPage, "#/tasks"],
  [/^#\/serving$/, servingPage, "#/serving"],
  [/^#\/tasks$/, tasksPage, "#/tasks"],
];
const main = document.getElementById("main");
let leaving = null;

function navigate(hash) {
  if (location.hash === hash) render();
  else location.hash = hash;
}

function header(current) {
  const signedIn = session();
  document.getElementById("nav").hidden = !signedIn;
  document.getElementById("nav-serving").hidden = signedIn?.role !== "admin";
  document.getElementById("signout").hidden = !signedIn;
  document.getElementById("who").textContent = signedIn ? (signedIn.role === "admin" ? "Admin" : "Tenant") : "";
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.getAttribute("href") === current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

function focusHeading() {
  const heading = main.querySelector("h1");
  if (heading && !main.contains(document.activeElement)) heading.focus();
}

async function render() {
  leaving?.abort();
  leaving = new AbortController();
  const signal = leaving.signal;
  const signedIn = session();
  if (!signedIn) {
    header(null);
    signInPage(main, { onSignedIn: () => navigate(ROUTES.some(([re]) => re.test(location.hash)) ? location.hash : "#/tasks") });
    return;
  }
  const hash = ROUTES.some(([re]) => re.test(location.hash)) ? location.hash : "#/tasks";
  if (hash !== location.hash) { history.replaceState(null, "", hash); }
  const [pattern, page, nav] = ROUTES.find(([re]) => re.test(hash));
  header(nav);
  const params = pattern.exec(hash).slice(1).map(decodeURIComponent);
  const started = page(main, { role: signedIn.role, signal, params, navigate });
  requestAnimationFrame(focusHeading);
  await started;
}

function signOut(message) {
  clearSession();
  render();
  if (message) toast(message);
}

document.getElementById("signout").addEventListener("click", () => signOut());
window.addEventListener(SIGNED_OUT, () => signOut("Your key was refused: sign in again."));
document.getElementById("skip").addEventListener("click", (event) => { event.preventDefault(); main.focus(); });
window.addEventListener("hashchange", () => { if (location.hash.startsWith("#/")) render(); });
render();
