// The console's entry: the hash router and the header. Pages live in pages.js. Written for this console (MIT).
import { pages } from "./pages.js";

const routes = [
  [/^#\/trainings\/([A-Za-z0-9]+)$/, pages.training],
  [/^#\/trainings$/, pages.trainings],
  [/^#\/new$/, pages.newTraining],
  [/^#\/models$/, pages.models],
  [/^#\/datasets\/([A-Za-z0-9]+)$/, pages.dataset],
  [/^#\/datasets$/, pages.datasets],
];

let stopCurrent = null;

async function route() {
  if (stopCurrent) stopCurrent();
  stopCurrent = null;
  const hash = location.hash || "#/trainings";
  const view = document.getElementById("view");
  view.replaceChildren();
  for (const link of document.querySelectorAll("header nav a")) {
    const current = hash === link.getAttribute("href") || hash.startsWith(link.getAttribute("href") + "/");
    if (current) link.setAttribute("aria-current", "page"); else link.removeAttribute("aria-current");
  }
  for (const [pattern, page] of routes) {
    const match = hash.match(pattern);
    if (match) {
      try {
        stopCurrent = await page(view, ...match.slice(1));
      } catch (error) {
        view.append(Object.assign(document.createElement("p"), { className: "error", textContent: error.message }));
      }
      return;
    }
  }
  location.hash = "#/trainings";
}

async function start() {
  const session = await (await fetch("/console/session")).json();
  pages.session = session;
  document.getElementById("endpoint").textContent =
    `${session.endpoint} (${session.auth === "sigv4" ? "signed with your AWS credentials" : "local runtime token"})`;
  window.addEventListener("hashchange", route);
  await route();
}

start();
