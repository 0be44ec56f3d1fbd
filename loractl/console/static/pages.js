// The console's pages: trainings, one training, new training, base models, datasets, one dataset.
// Each page function fills ``view`` and returns a function that stops its timers. Written for this
// console (MIT). Elements are built with h() (textContent only), never from HTML strings.
import { api, get, post, del, listAll, putBlob, inParallel, bytes, duration, dollars, when } from "./api.js";
import { readZip } from "./zip.js";

const TERMINAL = ["COMPLETED", "FAILED", "STOPPED"];
const JOB_STATUSES = ["PENDING", "QUEUED", "STARTING", "TRAINING", "UPLOADING", "STOPPING", ...TERMINAL];
const POLL_MS = 2000;
const PART_WORKERS = 4;
const FILE_WORKERS = 6;
const SYSTEM_FILES = /(^|\/)(\.DS_Store|Thumbs\.db|desktop\.ini|\._[^/]*)$/;
const IMAGE_FILE = /\.(png|jpe?g|webp|bmp)$/i;
// The local selection of each dataset uploaded in this tab: thumbnails with their captions.
const localPreviews = new Map();

export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value == null || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "text") element.textContent = value;
    else if (name === "style") element.style.cssText = value; // CSSOM: allowed by the CSP, unlike style=""
    else element.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child == null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

/** Replace ``node``'s children, skipping the null/false that ``cond && h(...)`` leaves. */
function fill(node, ...children) {
  node.replaceChildren(...children.flat().filter((c) => c != null && c !== false));
}

const statusBadge = (status) => h("span", { class: `status status-${status}` }, status);
const errorText = (error) =>
  [error.message, ...(error.details || []).map((d) => `${d.field}: ${d.problem}`)].join(" — ");

function poller(task) {
  let timer = null, stopped = false;
  const tick = async () => {
    try { if (await task() === false) return; } catch (error) { console.warn(error); }
    if (!stopped) timer = setTimeout(tick, POLL_MS);
  };
  tick();
  return () => { stopped = true; clearTimeout(timer); };
}

function field(id, labelText, control, help) {
  control.id = id;
  const describedBy = help ? `${id}-help` : null;
  if (describedBy) control.setAttribute("aria-describedby", describedBy);
  return h("div", { class: "field", "data-field": id },
    h("label", { for: id }, labelText), control, help && h("p", { class: "help", id: describedBy }, help));
}

// The deployment's model families, from the console server's session (loractl's FAMILIES).
function familyOptions() {
  return pages.session.families.map((f) => [f.fm_type, f.name]);
}

function select(options, value) {
  return h("select", {}, options.map(([v, text]) => h("option", { value: v, selected: String(v) === String(value) }, text)));
}

// --- trainings -------------------------------------------------------------------------------

function progressCell(job) {
  const p = job.progress || {};
  if (!p.total_steps) return h("td", { class: "muted" }, job.status === "COMPLETED" ? "done" : "—");
  const percent = Math.min(100, (100 * p.step) / p.total_steps);
  return h("td", {}, h("div", { class: "bar", role: "progressbar", "aria-valuenow": Math.round(percent), "aria-valuemin": 0, "aria-valuemax": 100 },
    h("span", { style: `width:${percent}%` })), h("span", { class: "muted" }, `step ${p.step} / ${p.total_steps}`));
}

async function trainings(view) {
  const filter = select([["", "all statuses"], ...JOB_STATUSES.map((s) => [s, s])], "");
  const body = h("tbody");
  view.append(
    h("h1", {}, "Trainings"),
    h("div", { class: "actions" }, field("status-filter", "Status", filter), h("a", { href: "#/new" }, "New training →")),
    h("div", { class: "table-wrap" }, h("table", { id: "trainings-table" },
      h("thead", {}, h("tr", {}, ["Name", "Status", "Progress", "Loss", "ETA", "Instance", "Created"].map((t, i) =>
        h("th", { class: i >= 5 ? "hide-narrow" : null }, t)))), body)),
  );
  const render = async () => {
    const query = filter.value ? `?status=${filter.value}` : "";
    const jobs = await listAll(`/trainings${query}`);
    fill(body, ...(jobs.length ? jobs.map((job) => h("tr", { "data-job": job.id },
      h("td", {}, h("a", { href: `#/trainings/${job.id}` }, job.name || job.id), h("div", { class: "muted mono hide-narrow" }, job.id)),
      h("td", {}, statusBadge(job.status)),
      progressCell(job),
      h("td", { class: "mono" }, job.progress?.loss != null ? job.progress.loss.toFixed(4) : (job.output?.final_loss?.toFixed?.(4) ?? "")),
      h("td", {}, TERMINAL.includes(job.status) ? "" : duration(job.progress?.eta_seconds)),
      h("td", { class: "hide-narrow" }, job.instance_type, job.use_spot ? " (spot)" : ""),
      h("td", { class: "hide-narrow" }, when(job.created_at)),
    )) : [h("tr", {}, h("td", { colspan: 7, class: "muted" }, "No trainings yet: start one from New training."))]));
  };
  filter.addEventListener("change", render);
  return poller(render);
}

// --- one training ----------------------------------------------------------------------------

function lineChart(title, points, key, format) {
  const values = points.filter((p) => p[key] != null);
  const width = 480, height = 220, pad = 44;
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("class", "chart");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `${title} by step`);
  const add = (tag, attributes, text) => {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attributes)) node.setAttribute(k, v);
    if (text != null) node.textContent = text;
    svg.append(node);
    return node;
  };
  add("text", { x: pad, y: 16 }, title);
  if (!values.length) { add("text", { x: pad, y: height / 2 }, "no points yet"); return svg; }
  const xs = values.map((p) => p.step), ys = values.map((p) => p[key]);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)], [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  const sx = (x) => pad + ((x - x0) / (x1 - x0 || 1)) * (width - pad - 12);
  const sy = (y) => height - 28 - ((y - y0) / (y1 - y0 || 1)) * (height - 58);
  add("line", { x1: pad, y1: height - 28, x2: width - 12, y2: height - 28, stroke: "#b8c0cc" });
  add("line", { x1: pad, y1: 26, x2: pad, y2: height - 28, stroke: "#b8c0cc" });
  add("text", { x: 2, y: sy(y1) + 4 }, format(y1));
  add("text", { x: 2, y: sy(y0) + 4 }, format(y0));
  add("text", { x: pad, y: height - 10 }, `step ${x0}`);
  add("text", { x: width - 70, y: height - 10 }, `step ${x1}`);
  add("polyline", { fill: "none", stroke: "#1f5fbf", "stroke-width": 2, points: values.map((p) => `${sx(p.step)},${sy(p[key])}`).join(" ") });
  for (const p of values) add("circle", { cx: sx(p.step), cy: sy(p[key]), r: 2.5, fill: "#1f5fbf" });
  return svg;
}

function sampleGrid(job) {
  const samples = job.samples || [];
  if (!samples.length) return h("p", { class: "muted" }, job.sample_prompts?.length ? "No samples yet: they are rendered at each saved epoch." : "No sample prompts were given for this training.");
  const epochs = [...new Set(samples.map((s) => s.epoch))].sort((a, b) => a - b);
  const prompts = [...new Set(samples.map((s) => s.prompt_index))].sort((a, b) => a - b);
  const promptText = (i) => samples.find((s) => s.prompt_index === i)?.prompt || `prompt ${i + 1}`;
  const grid = h("div", { class: "samples", id: "sample-grid", style: `grid-template-columns: 80px repeat(${prompts.length}, 128px)` },
    h("div", {}), prompts.map((i) => h("div", { class: "head" }, promptText(i))));
  for (const epoch of epochs) {
    grid.append(h("div", { class: "head" }, `epoch ${epoch}`));
    for (const i of prompts) {
      const sample = samples.find((s) => s.epoch === epoch && s.prompt_index === i);
      grid.append(sample ? h("img", { src: sample.download_url, alt: `epoch ${epoch}: ${sample.prompt}` }) : h("div"));
    }
  }
  return grid;
}

async function training(view, jobId) {
  const head = h("div"), overview = h("section", { class: "card" }), charts = h("div", { class: "charts", id: "charts" });
  const grid = h("div"), history = h("tbody"), downloads = h("div", { id: "downloads" }), log = h("pre", { class: "log", id: "log", tabindex: 0 });
  const message = h("p", { role: "status" });
  view.append(head, message, overview, h("h2", {}, "Loss and learning rate"), charts, h("h2", {}, "Samples (epochs × prompts)"), grid,
    h("h2", {}, "LoRA files"), downloads, h("h2", {}, "Status history"),
    h("div", { class: "table-wrap" }, h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Status"), h("th", {}, "At"), h("th", {}, "Cause"))), history)),
    h("h2", {}, "Log (newest lines)"), log);
  let logToken = null, lastSamples = "", finalRendered = false;

  const act = async (what, run) => {
    message.textContent = `${what} …`;
    try { await run(); message.textContent = `${what}: done`; } catch (error) { message.textContent = `${what} failed: ${errorText(error)}`; message.className = "error"; }
  };

  const render = async () => {
    const job = await get(`/trainings/${jobId}`);
    const terminal = TERMINAL.includes(job.status);
    fill(head, h("h1", {}, job.name || job.id, " ", statusBadge(job.status)),
      h("div", { class: "actions" },
        !terminal && h("button", { class: "danger", id: "stop", onclick: () => act("Stop", () => post(`/trainings/${jobId}/stop`)) }, "Stop training"),
        terminal && h("button", { class: "danger", id: "delete", onclick: () => {
          if (confirm("Delete this training? Its LoRA is kept unless you delete the model too.")) act("Delete", async () => { await del(`/trainings/${jobId}`); location.hash = "#/trainings"; });
        } }, "Delete training")));
    const p = job.progress || {}, plan = job.plan || {};
    fill(overview, h("div", { class: "plan" },
      h("div", {}, "Step", h("b", { id: "step" }, p.total_steps ? `${p.step} / ${p.total_steps}` : (job.output?.steps ?? "—"))),
      h("div", {}, "Epoch", h("b", {}, p.total_epochs ? `${p.epoch} / ${p.total_epochs}` : "—")),
      h("div", {}, "Loss", h("b", {}, p.loss != null ? p.loss.toFixed(4) : (job.output?.final_loss?.toFixed?.(4) ?? "—"))),
      h("div", {}, "ETA", h("b", {}, terminal ? "—" : duration(p.eta_seconds) || "—")),
      h("div", {}, "Instance", h("b", {}, job.instance_type), job.use_spot ? "spot" : "on demand"),
      h("div", {}, "Plan", h("b", {}, `${plan.total_steps ?? "?"} steps`), `${duration(plan.estimated_seconds)} · ${dollars(job.use_spot ? plan.estimated_spot_cost_usd : plan.estimated_cost_usd)}`)),
      job.failure_reason && h("p", { class: "error" }, job.failure_reason),
      job.status === "QUEUED" && h("p", { id: "queue-reason" }, `Waiting: ${job.queue_reason || "in the training queue"} (priority ${job.priority ?? 0})`),
      h("p", { class: "muted mono", id: "job-inputs" }, `id ${job.id} · base model ${job.base_model_id} · dataset ${job.dataset_id} · ${job.fm_type}`,
        ...Object.entries(job.components || {}).map(([role, id]) => ` · ${role} ${id}`)));
    fill(history, ...(job.history || []).map((c) => h("tr", {}, h("td", {}, statusBadge(c.status)), h("td", {}, when(c.at)), h("td", {}, c.cause))));
    const metrics = await get(`/trainings/${jobId}/metrics`);
    fill(charts, lineChart("loss", metrics.points || [], "loss", (v) => v.toFixed(3)),
      lineChart("learning rate", metrics.points || [], "learning_rate", (v) => v.toExponential(1)));
    const sampleKey = JSON.stringify((job.samples || []).map((s) => [s.epoch, s.prompt_index]));
    if (sampleKey !== lastSamples) { fill(grid, sampleGrid(job)); lastSamples = sampleKey; }
    const output = job.output;
    if (output?.lora_model_id && !finalRendered) {
      const epochs = output.epochs?.length ? output.epochs : [null];
      fill(downloads, h("ul", {}, epochs.map((epoch) => h("li", {},
        h("a", { href: `/console/download/models/${output.lora_model_id}${epoch ? `?epoch=${epoch}` : ""}`, download: "", "data-epoch": epoch ?? "final" },
          epoch ? `LoRA after epoch ${epoch}` : "LoRA"), epoch === epochs[epochs.length - 1] ? " (final)" : ""))),
        h("p", { class: "muted" }, `${bytes(output.lora_size_bytes)} · model ${output.lora_model_id}`));
      finalRendered = terminal;
    } else if (!output) fill(downloads, h("p", { class: "muted" }, "The LoRA appears here when the training completes."));
    const page = await get(`/trainings/${jobId}/logs?limit=200${logToken ? `&next_token=${encodeURIComponent(logToken)}` : ""}`);
    if (page.lines?.length) {
      log.textContent += page.lines.map((l) => l.message).join("\n") + "\n";
      log.scrollTop = log.scrollHeight;
    }
    if (page.next_token) logToken = page.next_token;
    return !(terminal && !page.lines?.length && finalRendered);
  };
  return poller(render);
}

// --- new training ----------------------------------------------------------------------------

function parameterControl(parameter, value) {
  const current = value ?? "";
  if (parameter.type === "bool") return select([["", "(not set)"], ["true", "true"], ["false", "false"]], current === "" ? "" : String(current));
  if (parameter.choices?.length) return select([["", "(not set)"], ...parameter.choices.map((c) => [c, c])], current);
  const attributes = { name: parameter.name, value: Array.isArray(current) ? current.join(", ") : current };
  if (parameter.type === "int" || parameter.type === "float") {
    Object.assign(attributes, { type: "number", step: parameter.type === "int" ? 1 : "any", min: parameter.minimum, max: parameter.maximum });
  }
  return h("input", attributes);
}

function parameterValue(parameter, raw) {
  const text = raw.trim();
  if (text === "") return undefined;
  switch (parameter.type) {
    case "bool": return text === "true";
    case "int": case "int_choice": return Number.isInteger(Number(text)) ? Number(text) : text;
    case "float": return Number.isNaN(Number(text)) ? text : Number(text);
    case "network_args": case "optimizer_args": return text.split(/[,\s]+/).filter(Boolean);
    default: return text;
  }
}

function rangeHelp(parameter) {
  const range = parameter.minimum != null || parameter.maximum != null ? ` Range ${parameter.minimum ?? "…"} – ${parameter.maximum ?? "…"}.` : "";
  return `${parameter.help}${range}`;
}

async function newTraining(view) {
  const session = pages.session;
  const [models, datasets] = await Promise.all([listAll("/models?kind=checkpoint&status=ready"), listAll("/datasets?status=ready")]);
  const family = select(familyOptions(), models[0]?.fm_type || familyOptions()[0][0]);
  const model = h("select"), dataset = select(datasets.map((d) => [d.id, `${d.name} (${d.manifest?.image_count ?? "?"} images)`]), "");
  const instance = h("select");
  const componentBox = h("div", { class: "grid", id: "components" });
  const name = h("input", { name: "name", placeholder: "my-lora" });
  const spot = h("input", { type: "checkbox", name: "use_spot" });
  const prompts = h("textarea", { name: "sample_prompts", placeholder: "one prompt per line, rendered at each saved epoch" });
  const sampleSize = h("input", { type: "number", name: "sample_size", min: 64, step: 8, placeholder: "the family's (512 / 1024)" });
  const sampleSteps = h("input", { type: "number", name: "sample_steps", min: 1, max: 150, placeholder: "20" });
  const parameterBox = h("div", { class: "grid", id: "parameters" }), moreBox = h("div", { class: "grid" });
  const planBox = h("div", { id: "plan", "aria-live": "polite" }), message = h("p", { role: "status" });
  let parameters = [], familyDefaults = {}, submitting = false;
  // One key per visit of this form: a double click, or a resend after a lost answer, starts one
  // job (POST /trainings is idempotent on Idempotency-Key); a new visit is a new request.
  const idempotencyKey = crypto.randomUUID();

  const fillModels = () => {
    const ofFamily = models.filter((m) => m.fm_type === family.value && !m.component);
    fill(model, ...ofFamily.map((m) => h("option", { value: m.id }, `${m.name} (${bytes(m.size_bytes)})`)));
    if (!ofFamily.length) model.append(h("option", { value: "" }, "no ready base model of this family: upload one"));
    const minimum = session.min_gpu_memory_gb[family.value];
    fill(instance, ...session.instances.filter((i) => i.families.includes(family.value)).map((i) =>
      h("option", { value: i.name, selected: i.name === "ml.g5.xlarge" }, `${i.name} — ${i.gpu_count}× ${i.gpu} ${i.gpu_memory_gb} GB · ${i.memory_gib} GiB RAM · ${dollars(i.price_per_hour_usd)}/h list`)));
    instance.title = `${family.value} needs at least ${minimum} GB of GPU memory`;
    fillComponents();
  };
  // FLUX.1 / SD 3.5: one field per component file the family takes (session.families[].components).
  // Shared files (CLIP-L, T5-XXL) may come from an upload made for the other family; the API checks.
  const componentSlots = () => session.families.find((f) => f.fm_type === family.value)?.components || [];
  const fillComponents = () => {
    fill(componentBox, ...componentSlots().map((slot) => {
      const ofRole = models.filter((m) => m.component === slot.role).map((m) => [m.id, `${m.name} (${m.fm_type}, ${bytes(m.size_bytes)})`]);
      const none = slot.required ? (ofRole.length ? [] : [["", `no ready ${slot.role} upload: upload one`]]) : [["", "(in the base checkpoint)"]];
      return field(`component-${slot.role}`, `${slot.role}: ${slot.description}`, select([...none, ...ofRole], ofRole[0]?.[0] && slot.required ? ofRole[0][0] : ""));
    }));
    componentBox.hidden = !componentSlots().length;
  };
  const components = () => Object.fromEntries(componentSlots()
    .map((slot) => [slot.role, document.getElementById(`component-${slot.role}`).value]).filter(([, id]) => id));
  const fillParameters = async () => {
    const response = await get(`/configs/defaults?fm_type=${family.value}`);
    parameters = response.parameters;
    familyDefaults = response.defaults;
    fill(parameterBox); fill(moreBox);
    for (const parameter of parameters) {
      const box = parameter.name in response.defaults ? parameterBox : moreBox;
      box.append(field(`param-${parameter.name}`, parameter.name, parameterControl(parameter, response.defaults[parameter.name]), rangeHelp(parameter)));
    }
  };
  // An emptied field that had the family's default sends null: the API then drops that default and
  // sd-scripts' own applies (kohya_params: "explicit null"); leaving the key out would bring it back.
  const config = () => {
    const result = {};
    for (const parameter of parameters) {
      const value = parameterValue(parameter, document.getElementById(`param-${parameter.name}`).value);
      if (value !== undefined) result[parameter.name] = value;
      else if (parameter.name in familyDefaults) result[parameter.name] = null;
    }
    return result;
  };
  const clearProblems = () => {
    for (const node of view.querySelectorAll(".field.has-problem")) {
      node.classList.remove("has-problem");
      node.querySelector(".problem")?.remove();
      node.querySelector("input, select, textarea")?.removeAttribute("aria-invalid");
    }
  };
  const showProblems = (details) => {
    const unplaced = [];
    for (const detail of details) {
      const key = String(detail.field).replace(/^config\./, "param-").replace(/^components\./, "component-").replace(/\[.*$/, "");
      const ids = { base_model_id: "model", dataset_id: "dataset", instance_type: "instance", fm_type: "family", name: "name" };
      const target = view.querySelector(`[data-field="${ids[key] || key}"]`);
      if (!target) { unplaced.push(`${detail.field}: ${detail.problem}`); continue; }
      target.classList.add("has-problem");
      target.querySelector("input, select, textarea")?.setAttribute("aria-invalid", "true");
      target.append(h("p", { class: "problem" }, detail.problem));
      target.closest("details")?.setAttribute("open", "");
    }
    view.querySelector(".has-problem input, .has-problem select")?.focus();
    return unplaced;
  };
  const validate = async () => {
    clearProblems();
    message.className = ""; message.textContent = "Validating …";
    try {
      const result = await post("/configs/validate", { fm_type: family.value, config: config(), dataset_id: dataset.value || null, instance_type: instance.value });
      const plan = result.plan;
      fill(planBox, plan ? h("div", { class: "plan" },
        h("div", {}, "Steps", h("b", {}, plan.total_steps), `${plan.epochs} epochs × ${plan.steps_per_epoch}`),
        h("div", {}, "Images / epoch", h("b", {}, plan.images_per_epoch)),
        h("div", {}, "Time", h("b", {}, duration(plan.estimated_seconds))),
        h("div", {}, "On demand", h("b", { id: "cost-on-demand" }, dollars(plan.estimated_cost_usd)), `${dollars(plan.price_per_hour_usd)}/h`),
        h("div", {}, "Spot", h("b", { id: "cost-spot" }, dollars(plan.estimated_spot_cost_usd)))) : h("p", { class: "muted" }, "Pick a dataset to see the plan."),
        ...(result.warnings || []).map((w) => h("p", { class: "notice" }, `${w.field}: ${w.warning}`)));
      message.textContent = "The parameters are valid.";
      return true;
    } catch (error) {
      const rest = showProblems(error.details || []);
      message.className = "error";
      message.textContent = `${error.details?.length || 1} problem(s): ${rest.length ? rest.join("; ") : "see the fields marked below"}`;
      fill(planBox);
      return false;
    }
  };
  const submit = async (event) => {
    event.preventDefault();
    if (submitting) return;
    submitting = true;
    view.querySelector("#submit").disabled = true;
    try { await startTraining(); } finally { submitting = false; view.querySelector("#submit").disabled = false; }
  };
  const startTraining = async () => {
    if (!(await validate())) return;
    message.textContent = "Starting …";
    const body = { fm_type: family.value, base_model_id: model.value, dataset_id: dataset.value, instance_type: instance.value,
      config: config(), name: name.value || null, use_spot: spot.checked,
      sample_prompts: prompts.value.split("\n").map((p) => p.trim()).filter(Boolean).map((prompt) => ({
        prompt, width: Number(sampleSize.value) || null, height: Number(sampleSize.value) || null, steps: Number(sampleSteps.value) || null })) };
    if (Object.keys(components()).length) body.components = components();
    try {
      const created = await post("/trainings", body, { "Idempotency-Key": idempotencyKey });
      location.hash = `#/trainings/${(created.job || created).id}`;
    } catch (error) {
      const rest = showProblems(error.details || []);
      message.className = "error";
      message.textContent = `Not started: ${error.message}${rest.length ? ` — ${rest.join("; ")}` : ""}`;
    }
  };

  family.addEventListener("change", async () => { fillModels(); await fillParameters(); });
  view.append(h("h1", {}, "New training"),
    h("form", { id: "new-training", onsubmit: submit, novalidate: true },
      h("section", { class: "card" }, h("div", { class: "grid" },
        field("family", "Family", family), field("model", "Base model", model), field("dataset", "Dataset", dataset, datasets.length ? null : "no ready dataset: upload one"),
        field("instance", "Instance (GPU, memory, list price)", instance), field("name", "Name", name),
        h("div", { class: "field" }, h("label", {}, spot, " Managed spot (cheaper, may be interrupted and resumed)")),
        field("prompts", "Sample prompts", prompts, "Rendered after each saved epoch (save_every_n_epochs)."),
        field("sample-size", "Sample size (px, square)", sampleSize, "Empty: the family's native size."),
        field("sample-steps", "Sample steps", sampleSteps, "Empty: 20.")),
        componentBox),
      h("section", { class: "card" }, h("h2", {}, "Parameters"), h("p", { class: "muted" }, "The family's recommended values. An empty field is not passed to sd-scripts, whose own default applies."), parameterBox,
        h("details", {}, h("summary", {}, "More parameters"), moreBox)),
      h("section", { class: "card" }, h("h2", {}, "Plan"), planBox, message,
        h("div", { class: "actions" }, h("button", { type: "button", class: "secondary", id: "validate", onclick: validate }, "Validate"),
          h("button", { type: "submit", id: "submit" }, "Start training")))));
  fillModels();
  await fillParameters();
  return null;
}

// --- base models -----------------------------------------------------------------------------

/** A local file name as the API stores it (CreateModelRequest.filename:
 * ^[A-Za-z0-9][A-Za-z0-9._-]*\.safetensors$, at most 128 characters), as loractl's stored_filename. */
export function storedFilename(name) {
  let stem = name.replace(/\.safetensors$/i, "").replace(/[^A-Za-z0-9._-]+/g, "-");
  if (!/^[A-Za-z0-9]/.test(stem)) stem = "m" + stem;
  return stem.slice(0, 128 - ".safetensors".length) + ".safetensors";
}

async function uploadModel(file, form, onProgress) {
  if (!/\.safetensors$/i.test(file.name)) throw new Error(`${file.name}: only .safetensors files are accepted`);
  const created = await post("/models", { name: form.name || file.name.replace(/\.safetensors$/i, ""), kind: form.kind, fm_type: form.fm_type, filename: storedFilename(file.name), size_bytes: file.size, component: form.component });
  const { part_size: partSize, parts } = created.upload;
  const etags = await inParallel(parts, PART_WORKERS, async (part) => {
    const start = (part.part_number - 1) * partSize;
    const etag = await putBlob(part.url, file.slice(start, Math.min(file.size, start + partSize)), {}, onProgress);
    if (!etag) throw new Error("the storage answered without an ETag (bucket CORS must expose it)");
    return { part_number: part.part_number, etag };
  });
  return post(`/models/${created.model.id}/complete`, { parts: etags });
}

async function models(view) {
  const body = h("tbody"), message = h("p", { role: "status" }), progress = h("progress", { max: 1, value: 0, hidden: true, id: "model-progress" });
  const file = h("input", { type: "file", accept: ".safetensors" });
  const fmType = select(familyOptions(), familyOptions()[0][0]), kind = select([["checkpoint", "checkpoint"], ["lora", "LoRA"]], "checkpoint");
  const name = h("input", { name: "name" });
  const url = h("input", { type: "url", name: "url", placeholder: "https://…/model.safetensors" });
  const urlFm = select(familyOptions(), familyOptions()[0][0]), sha = h("input", { name: "sha256", placeholder: "optional" });
  const urlKind = select([["checkpoint", "checkpoint"], ["lora", "LoRA"]], "checkpoint");
  // FLUX.1 / SD 3.5 files other than the main checkpoint name their role (POST /models component).
  const roles = () => select([["", "main checkpoint"], ...pages.session.component_roles.map((role) => [role, role])], "");
  const component = roles(), urlComponent = roles();
  const render = async () => {
    const items = await listAll("/models");
    fill(body, ...items.map((m) => h("tr", { "data-model": m.id },
      h("td", {}, m.name, h("div", { class: "muted mono" }, m.id)), h("td", {}, m.component ? `${m.kind}: ${m.component}` : m.kind), h("td", {}, m.fm_type), h("td", {}, bytes(m.size_bytes)),
      h("td", {}, statusBadge(m.status), m.failure_reason && h("div", { class: "error" }, m.failure_reason)),
      h("td", {}, m.status === "ready" && h("a", { href: `/console/download/models/${m.id}`, download: "" }, "download"), " ",
        h("button", { class: "danger", onclick: async () => { if (confirm(`Delete ${m.name}?`)) { await del(`/models/${m.id}`); render(); } } }, "delete")))));
  };
  const upload = async (event) => {
    event.preventDefault();
    const chosen = file.files[0];
    if (!chosen) { message.textContent = "Choose a .safetensors file."; message.className = "error"; return; }
    progress.hidden = false; progress.max = chosen.size; progress.value = 0; message.className = "";
    message.textContent = `Uploading ${chosen.name} …`;
    try {
      const model = await uploadModel(chosen, { name: name.value, kind: kind.value, fm_type: fmType.value, component: component.value || undefined }, (n) => { progress.value += n; });
      message.textContent = `Uploaded: ${model.name || chosen.name} is ${model.status}.`;
      await render();
    } catch (error) { message.className = "error"; message.textContent = `Upload failed: ${errorText(error)}`; }
  };
  const importUrl = async (event) => {
    event.preventDefault();
    try {
      const created = await post("/models", { name: url.value.split("/").pop().replace(/\.safetensors.*$/i, "") || "imported", kind: urlKind.value, fm_type: urlFm.value, source_url: url.value, sha256: sha.value || null, component: urlComponent.value || undefined });
      message.className = ""; message.textContent = `Importing: ${(created.model || created).id} (the service fetches it; the list updates).`;
      await render();
    } catch (error) { message.className = "error"; message.textContent = `Import refused: ${errorText(error)}`; }
  };
  view.append(h("h1", {}, "Base models"),
    h("div", { class: "grid" },
      h("form", { class: "card", id: "model-upload", onsubmit: upload }, h("h2", {}, "Upload a .safetensors file"),
        field("model-file", "File", file), field("model-fm", "Family", fmType), field("model-kind", "Kind", kind), field("model-component", "Component (FLUX.1 / SD 3.5)", component), field("model-name", "Name (default: file name)", name),
        h("div", { class: "actions" }, h("button", { type: "submit" }, "Upload")), progress),
      h("form", { class: "card", id: "model-import", onsubmit: importUrl }, h("h2", {}, "Import from a URL"),
        field("import-url", "https URL", url), field("import-fm", "Family", urlFm), field("import-kind", "Kind", urlKind), field("import-component", "Component (FLUX.1 / SD 3.5)", urlComponent),
        field("import-sha", "SHA-256", sha, "A mismatch fails the import."),
        h("div", { class: "actions" }, h("button", { type: "submit" }, "Import")))),
    message,
    h("div", { class: "table-wrap" }, h("table", { id: "models-table" }, h("thead", {}, h("tr", {}, ["Name", "Kind", "Family", "Size", "Status", ""].map((t) => h("th", {}, t)))), body)));
  return poller(render);
}

// --- datasets --------------------------------------------------------------------------------

/** The chosen folder's or zip's files as [{path, size, blob()}], paths relative to the dataset root. */
async function chosenFiles(folderInput, zipInput) {
  let entries;
  if (zipInput.files[0]) entries = await readZip(zipInput.files[0]);
  else entries = [...folderInput.files].map((f) => ({ path: f.webkitRelativePath || f.name, size: f.size, blob: async () => f }));
  entries = entries.filter((e) => !SYSTEM_FILES.test(e.path));
  // A folder chooser (and most zips) put everything under one top folder: the dataset's root.
  const tops = new Set(entries.map((e) => e.path.split("/")[0]));
  if (tops.size === 1 && entries.every((e) => e.path.split("/").length > 2)) {
    entries = entries.map((e) => ({ ...e, path: e.path.split("/").slice(1).join("/") }));
  }
  return entries.sort((a, b) => a.path.localeCompare(b.path));
}

async function previews(entries) {
  const figures = [];
  for (const entry of entries.filter((e) => IMAGE_FILE.test(e.path)).slice(0, 48)) {
    const captionEntry = entries.find((e) => e.path === entry.path.replace(/\.[^.]+$/, ".txt"));
    const caption = captionEntry ? await (await captionEntry.blob()).text() : "(no caption)";
    figures.push({ src: URL.createObjectURL(await entry.blob()), path: entry.path, caption });
  }
  return figures;
}

const thumbGrid = (figures) => h("div", { class: "thumbs", id: "thumbnails" },
  figures.map((f) => h("figure", {}, h("img", { src: f.src, alt: f.caption }), h("figcaption", {}, h("b", {}, f.path), h("br"), f.caption))));

async function uploadDataset(name, entries, onProgress) {
  const created = await post("/datasets", { name, files: entries.map((e) => ({ path: e.path, size_bytes: e.size })) });
  const id = created.dataset.id, byPath = new Map(entries.map((e) => [e.path, e]));
  let batch = created.uploads, given = new Set(batch.map((u) => u.path));
  while (batch.length) {
    await inParallel(batch, FILE_WORKERS, async (u) => putBlob(u.url, await byPath.get(u.path).blob(), u.headers, onProgress));
    const rest = entries.map((e) => e.path).filter((p) => !given.has(p)).slice(0, 500);
    batch = rest.length ? (await post(`/datasets/${id}/uploads`, { paths: rest })).uploads : [];
    batch.forEach((u) => given.add(u.path));
  }
  let dataset = await post(`/datasets/${id}/complete`);
  while ((dataset.dataset || dataset).status === "validating") {
    await new Promise((r) => setTimeout(r, 1000));
    dataset = await get(`/datasets/${id}`);
  }
  return dataset.dataset || dataset;
}

async function datasets(view) {
  const body = h("tbody"), message = h("p", { role: "status" }), preview = h("div");
  const progress = h("progress", { max: 1, value: 0, hidden: true, id: "dataset-progress" });
  const folder = h("input", { type: "file", webkitdirectory: true, multiple: true });
  const zip = h("input", { type: "file", accept: ".zip,application/zip" });
  const name = h("input", { name: "name" });
  let entries = [];
  const choose = async () => {
    try {
      entries = await chosenFiles(folder, zip);
      fill(preview, h("p", {}, `${entries.length} files, ${bytes(entries.reduce((s, e) => s + e.size, 0))}`), thumbGrid(await previews(entries)));
      if (!name.dataset.typed) name.value = (zip.files[0]?.name.replace(/\.zip$/i, "")) || (folder.files[0]?.webkitRelativePath.split("/")[0]) || "";
    } catch (error) { message.className = "error"; message.textContent = error.message; }
  };
  name.addEventListener("input", () => { name.dataset.typed = "yes"; }); // a typed name is kept
  folder.addEventListener("change", () => { zip.value = ""; choose(); });
  zip.addEventListener("change", () => { folder.value = ""; choose(); });
  const render = async () => {
    const items = await listAll("/datasets");
    fill(body, ...items.map((d) => h("tr", {},
      h("td", {}, h("a", { href: `#/datasets/${d.id}` }, d.name), h("div", { class: "muted mono" }, d.id)), h("td", {}, statusBadge(d.status)),
      h("td", {}, d.manifest?.image_count ?? ""), h("td", {}, d.file_count), h("td", {}, bytes(d.total_bytes)), h("td", { class: "hide-narrow" }, when(d.created_at)))));
  };
  const upload = async (event) => {
    event.preventDefault();
    if (!entries.length) { message.className = "error"; message.textContent = "Choose a folder or a zip first."; return; }
    progress.hidden = false; progress.max = entries.reduce((s, e) => s + e.size, 0) || 1; progress.value = 0;
    message.className = ""; message.textContent = `Uploading ${entries.length} files …`;
    try {
      const dataset = await uploadDataset(name.value || "dataset", entries, (n) => { progress.value += n; });
      localPreviews.set(dataset.id, await previews(entries));
      location.hash = `#/datasets/${dataset.id}`;
    } catch (error) { message.className = "error"; message.textContent = `Upload refused: ${errorText(error)}`; }
  };
  view.append(h("h1", {}, "Datasets"),
    h("form", { class: "card", id: "dataset-upload", onsubmit: upload }, h("h2", {}, "Upload a dataset"),
      h("p", { class: "muted" }, "Kohya layout: <repeats>_<concept>/ folders holding images with .txt captions of the same name."),
      h("div", { class: "grid" }, field("dataset-folder", "Folder", folder), field("dataset-zip", "…or a .zip", zip), field("dataset-name", "Name", name)),
      h("div", { class: "actions" }, h("button", { type: "submit" }, "Upload")), progress, preview),
    message,
    h("div", { class: "table-wrap" }, h("table", { id: "datasets-table" }, h("thead", {}, h("tr", {}, ["Name", "Status", "Images", "Files", "Size", "Created"].map((t, i) => h("th", { class: i === 5 ? "hide-narrow" : null }, t)))), body)));
  return poller(render);
}

async function dataset(view, datasetId) {
  const content = h("div"), message = h("p", { role: "status" });
  const width = h("input", { type: "number", min: 64, step: 8, name: "width", placeholder: "e.g. 512" });
  const height = h("input", { type: "number", min: 64, step: 8, name: "height", placeholder: "default: the width" });
  const mode = select([["center", "center"], ["smart", "smart (keep the busiest part)"]], "center");
  const upscale = h("input", { type: "checkbox" }), cropName = h("input", { name: "crop-name" });
  const cropFamily = select([["", "(use the width)"], ...pages.session.families.map((f) => [f.fm_type, `${f.name}: ${f.native_side} px`])], "");
  const crop = async (event) => {
    event.preventDefault();
    try {
      const created = await post(`/datasets/${datasetId}/crop`, { name: cropName.value || undefined, width: Number(width.value) || null, height: Number(height.value) || null, fm_type: cropFamily.value || null, mode: mode.value, upscale: upscale.checked });
      location.hash = `#/datasets/${(created.dataset || created).id}`;
    } catch (error) { message.className = "error"; message.textContent = `Crop refused: ${errorText(error)}`; }
  };
  view.append(content, message, h("form", { class: "card", id: "crop", onsubmit: crop }, h("h2", {}, "Crop into a new dataset"),
    h("div", { class: "grid" }, field("crop-width", "Width (px)", width), field("crop-height", "Height (px)", height), field("crop-family", "…or the family's side", cropFamily), field("crop-mode", "Mode", mode),
      field("crop-name", "New name", cropName), h("div", { class: "field" }, h("label", {}, upscale, " Enlarge smaller images"))),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Crop"))));
  const render = async () => {
    const d = await get(`/datasets/${datasetId}`);
    const manifest = d.manifest || {};
    const problems = [...(manifest.problems || []), ...(d.file_errors || []).map((e) => (typeof e === "string" ? e : `${e.path || e.field}: ${e.problem || e.error || JSON.stringify(e)}`))];
    fill(content, h("h1", {}, d.name, " ", statusBadge(d.status)),
      h("p", { class: "muted mono" }, `${d.id} · ${d.file_count} files · ${bytes(d.total_bytes)}`, d.crop ? ` · cropped ${d.crop.width}x${d.crop.height} from ${d.crop.source_dataset_id}` : ""),
      d.failure_reason && h("p", { class: "error" }, d.failure_reason),
      h("section", { class: "card", id: "manifest" }, h("h2", {}, "Manifest"),
        h("p", {}, `${manifest.image_count ?? 0} images, ${manifest.captioned_count ?? 0} with captions`),
        h("div", { class: "table-wrap" }, h("table", {}, h("thead", {}, h("tr", {}, ["Folder", "Concept", "Repeats", "Images", "Captioned"].map((t) => h("th", {}, t)))),
          h("tbody", {}, (manifest.concepts || []).map((c) => h("tr", {}, h("td", { class: "mono" }, c.folder), h("td", {}, c.concept), h("td", {}, c.repeats), h("td", {}, c.image_count), h("td", {}, c.captioned_count)))))),
        h("h2", {}, `Problems (${problems.length})`),
        problems.length ? h("ul", { class: "error", id: "problems" }, problems.map((p) => h("li", {}, p))) : h("p", { class: "muted", id: "problems" }, "None: ready to train.")),
      localPreviews.has(datasetId) ? h("section", { class: "card" }, h("h2", {}, "Images and captions (from your upload)"), thumbGrid(localPreviews.get(datasetId)))
        : h("p", { class: "muted" }, "Thumbnails show for datasets uploaded from this tab (the API keeps images private to training)."));
    return ["validating", "processing", "uploading"].includes(d.status);
  };
  return poller(render);
}

export const pages = { trainings, training, newTraining, models, datasets, dataset, session: null };
