// vramplan calculator page. Uses only this server's JSON API (/api/v1), so every number shown
// is the one `vramplan estimate --json` (or, in the plan panel, `vramplan plan --json`) prints
// for the same flags. No framework: the page is one
// form and a few hand-drawn SVG charts.
'use strict';

const API = '/api/v1';
const DEBOUNCE_MS = 250;
const SVG_NS = 'http://www.w3.org/2000/svg';
const GIB = 2 ** 30;

// Request fields with their own control in the main form; the rest of the API's fields
// (from the OpenAPI document) are drawn under "More options".
const MAIN_FIELDS = ['model', 'quant', 'kv_dtype', 'context', 'batch', 'gpu', 'gpus', 'engine'];
// The "memory fraction" control sets whichever of these the chosen engine reads.
const FRACTION_FIELDS = ['gpu_memory_utilization', 'mem_fraction_static'];
// Fields the page does not offer: the naive formula answers a different question (it is shown
// as a note under the figures instead), and `config` has its own box.
const HIDDEN_FIELDS = ['formula', 'config'];
// Engines to offer if the API takes an engine name without listing the choices.
const ENGINE_FALLBACK = ['generic', 'vllm', 'sglang', 'llamacpp', 'ollama'];

// Engine profiles name their assumptions in their own words (estimate JSON `assumptions`,
// field `figure`); these are the ones behind each figure of the page.
const FIGURE_ASSUMPTIONS = {
  weights: ['weights', 'model buffers'],
  kv_cache: ['kv_cache', 'kv_buffer', 'kv', 'token pool'],
  activations: ['activations', 'compute_buffer', 'graph'],
  overhead: ['overhead', 'non_torch', 'cuda_graphs', 'reserve'],
  usable: ['usable', 'free after weights'],
};

const PARTS = [
  { key: 'weights_bytes', figure: 'weights', label: 'weights', cls: 'seg-weights' },
  { key: 'kv_cache_bytes', figure: 'kv_cache', label: 'KV cache', cls: 'seg-kv' },
  { key: 'activation_bytes', figure: 'activations', label: 'activations', cls: 'seg-act' },
  { key: 'overhead_bytes', figure: 'overhead', label: 'overhead', cls: 'seg-over' },
];

// Formulas for the figures the estimator derives from the others (estimate.rs); the estimate's
// own `assumptions` cover the parts and replace these when they name the same figure.
const DERIVED = {
  params: { formula: 'sum of the elements of every weight tensor in the model\'s tensor inventory (from its config.json)', source: 'model.rs inventory; catalogue entries are checked against published totals' },
  total: { formula: 'weights + KV cache + activations + overhead, on the busiest GPU', source: 'estimate.rs Sizing::total_bytes' },
  margin: { formula: 'usable − total; the configuration fits when total ≤ usable', source: 'estimate.rs' },
  max_concurrency: { formula: 'largest n with weights + n × KV(context) + activations(n) + overhead ≤ usable, × data-parallel replicas (binary search)', source: 'estimate.rs Sizing::max_concurrency' },
  max_context: { formula: 'longest c with weights + batch × KV(c) + activations + overhead ≤ usable, capped at the model\'s max_position_embeddings', source: 'estimate.rs Sizing::max_context' },
  min_gpus: { formula: 'smallest tensor-parallel size (≤ 64, dividing the heads) at which the configuration fits on this GPU kind', source: 'estimate.rs min_gpus' },
};

const el = (id) => document.getElementById(id);
const page = {
  spec: {},        // EstimateRequest properties from the OpenAPI document
  models: [],
  gpus: [],
  state: {},       // field -> value as typed (strings), only fields the user set or the URL gave
  config: null,    // pasted config.json object, when used instead of a catalogue model
  generation: 0,   // newest update; older answers are dropped
  timer: null,
  last: null,      // last good estimate
  planSpec: null,  // PlanRequest properties from the OpenAPI document
  planGeneration: 0,
  planSent: null,  // the last plan request sent (JSON text), to tell when it is out of date
  planSeconds: 0,  // how long the last search took, as the page saw it
};

// ---------------------------------------------------------------- formatting (as the CLI)

// Rust's `{:.2}` rounds the exact binary value half-to-even; JavaScript's toFixed rounds exact
// ties up. Ties are exact multiples of 1/200, which only values like x.125 hit.
function fixed(v, digits) {
  const scale = 10 ** digits;
  const t = v * scale * 2;
  if (Number.isInteger(t) && Math.abs(t) % 2 === 1) {
    const lower = Math.floor(v * scale);
    const even = lower % 2 === 0 ? lower : lower + 1;
    return (even / scale).toFixed(digits);
  }
  return v.toFixed(digits);
}
const gb = (b) => `${fixed(b / 1e9, 2)} GB`;
const gib = (b) => `${fixed(b / GIB, 2)} GiB`;
const gbGib = (b) => `${gb(b)} (${gib(b)})`;
const thousands = (n) => String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
// A count with its noun in the right number, as the CLI prints it (units::count): 1 sequence, 2 sequences.
const count = (n, noun) => `${thousands(n)} ${noun}${Number(n) === 1 ? '' : 's'}`;
function paramsShort(n) {
  if (n >= 1e12) return `${fixed(n / 1e12, 2)}T`;
  if (n >= 1e9) return `${fixed(n / 1e9, 2)}B`;
  if (n >= 1e6) return `${fixed(n / 1e6, 1)}M`;
  return thousands(n);
}
function shortTokens(n) {
  if (n >= 1048576 && n % 1048576 === 0) return `${n / 1048576}M`;
  if (n >= 1024 && n % 1024 === 0) return `${n / 1024}K`;
  return thousands(n);
}

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

// ---------------------------------------------------------------- API

async function api(path, body) {
  const init = body === undefined ? {} : { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) };
  let res;
  try {
    res = await fetch(API + path, init);
  } catch (err) {
    return { ok: false, data: { error: `the server did not answer (${err.message}); is vramplan serve still running?`, field: null } };
  }
  let data;
  try {
    data = await res.json();
  } catch (err) {
    data = { error: `unreadable answer (HTTP ${res.status})`, field: null };
  }
  return { ok: res.ok, status: res.status, data };
}

// ---------------------------------------------------------------- state <-> request, URL

function fieldSpec(name) {
  return page.spec[name];
}

// The request body for the current state, with `over` replacing some fields.
function requestBody(over) {
  const s = Object.assign({}, page.state, over || {});
  const body = {};
  for (const [name, raw] of Object.entries(s)) {
    const spec = fieldSpec(name);
    if (!spec || raw === '' || raw === null || raw === undefined) continue;
    if (name === 'model' && page.config) continue;
    // A custom memory size stands for a card not in the catalogue: --gpu and --gpu-memory
    // are refused together.
    if (name === 'gpu' && s.gpu_memory !== '' && s.gpu_memory !== null && s.gpu_memory !== undefined) continue;
    const text = String(raw).trim();
    if (spec.type === 'integer') body[name] = /^\d+$/.test(text) ? Number(text) : text;
    else if (spec.type === 'number') body[name] = text !== '' && Number.isFinite(Number(text)) ? Number(text) : text;
    else if (spec.type === 'boolean') body[name] = raw === true || raw === 'true';
    else body[name] = text;
  }
  if (page.config) body.config = page.config;
  return body;
}

function writeUrl() {
  const q = new URLSearchParams();
  for (const [name, raw] of Object.entries(page.state)) {
    if (raw === '' || raw === null || raw === undefined || !fieldSpec(name)) continue;
    if (name === 'model' && page.config) continue;
    q.set(name, String(raw));
  }
  const url = `${location.pathname}${q.toString() ? '?' + q.toString() : ''}`;
  history.replaceState(null, '', url);
}

function readUrl() {
  const q = new URLSearchParams(location.search);
  for (const [name, value] of q.entries()) {
    if (fieldSpec(name) && !HIDDEN_FIELDS.includes(name)) page.state[name] = value;
  }
}

// ---------------------------------------------------------------- controls

function controlFor(name) {
  if (FRACTION_FIELDS.includes(name)) return el('fraction');
  return document.querySelector(`[data-field="${name}"]`) || el(name);
}

function engineName() {
  return String(page.state.engine || defaultOf('engine') || 'generic').toLowerCase();
}

// The request field the memory-fraction control sets for the chosen engine: SGLang's
// --mem-fraction-static, vLLM's (and the generic model's) --gpu-memory-utilization; none for
// llama.cpp and ollama, which take what the GPU has free.
function fractionField() {
  const engine = engineName();
  if (engine.includes('llama')) return null;
  if (engine.includes('sglang') && fieldSpec('mem_fraction_static')) return 'mem_fraction_static';
  return fieldSpec('gpu_memory_utilization') ? 'gpu_memory_utilization' : null;
}

function showFraction(e) {
  const c = el('fraction');
  const field = fractionField();
  c.disabled = !field;
  c.value = field && page.state[field] !== undefined ? page.state[field] : '';
  if (e) c.placeholder = field ? String(e.utilization) : 'all free memory';
  const hints = {
    gpu_memory_utilization: '--gpu-memory-utilization; empty: the engine\'s default, shown greyed.',
    mem_fraction_static: 'SGLang --mem-fraction-static; empty: its default for this TP size.',
  };
  el('fraction-hint').textContent = field ? hints[field] : 'llama.cpp and ollama use the memory the GPU has free.';
}

function setControl(name, value) {
  const c = controlFor(name);
  if (!c) return;
  if (c.type === 'checkbox') c.checked = value === true || value === 'true';
  else c.value = value === undefined || value === null ? '' : String(value);
}

function defaultOf(name) {
  const spec = fieldSpec(name);
  return spec && spec.default !== undefined ? spec.default : '';
}

function bindControl(c, name) {
  const handler = () => {
    page.state[name] = c.type === 'checkbox' ? c.checked : c.value;
    c.removeAttribute('aria-invalid');
    schedule();
  };
  c.addEventListener('input', handler);
  c.addEventListener('change', handler);
}

function buildMainControls() {
  const modelList = el('model-list');
  for (const m of page.models) {
    const o = document.createElement('option');
    o.value = m.id;
    o.label = `${m.aliases[0] || m.family} · ${paramsShort(m.params)} · ${m.quant}`;
    modelList.appendChild(o);
  }
  const gpuSelect = el('gpu');
  for (const g of page.gpus) {
    const o = document.createElement('option');
    o.value = g.id;
    o.textContent = `${g.name} (${gib(g.memory_bytes)})`;
    gpuSelect.appendChild(o);
  }
  // Engine: the API's choices when it has an engine field; otherwise show the one engine the
  // estimator uses, read from its answer.
  const engine = el('engine');
  const spec = fieldSpec('engine');
  if (spec) {
    for (const name of spec.enum || ENGINE_FALLBACK) {
      const o = document.createElement('option');
      o.value = name;
      o.textContent = name;
      engine.appendChild(o);
    }
  } else {
    engine.disabled = true;
    el('engine-hint').textContent = 'This build estimates with its generic engine profile (vLLM defaults).';
  }
  for (const name of MAIN_FIELDS) {
    const c = el(name);
    if (!c || !fieldSpec(name)) continue;
    const spec = fieldSpec(name);
    if (spec.description) c.title = spec.description;
    bindControl(c, name);
  }
  // A new engine starts from its own default memory fraction.
  engine.addEventListener('change', () => {
    for (const f of FRACTION_FIELDS) delete page.state[f];
    showFraction(null);
  });
  const fraction = el('fraction');
  const onFraction = () => {
    const field = fractionField();
    if (!field) return;
    if (fraction.value === '') delete page.state[field]; else page.state[field] = fraction.value;
    fraction.removeAttribute('aria-invalid');
    schedule();
  };
  fraction.addEventListener('input', onFraction);
  fraction.addEventListener('change', onFraction);
}

function buildAdvancedControls() {
  const box = el('advanced-fields');
  for (const [name, spec] of Object.entries(page.spec)) {
    if (MAIN_FIELDS.includes(name) || FRACTION_FIELDS.includes(name) || HIDDEN_FIELDS.includes(name) || spec.$ref) continue;
    const wrap = document.createElement('div');
    wrap.className = 'field';
    const id = `opt-${name}`;
    const label = document.createElement('label');
    label.htmlFor = id;
    label.textContent = name.replace(/_/g, ' ');
    let c;
    if (spec.enum) {
      c = document.createElement('select');
      const blank = document.createElement('option');
      blank.value = '';
      blank.textContent = `default (${spec.default !== undefined ? spec.default : 'none'})`;
      c.appendChild(blank);
      for (const v of spec.enum) {
        const o = document.createElement('option');
        o.value = v;
        o.textContent = v;
        c.appendChild(o);
      }
    } else if (spec.type === 'boolean') {
      c = document.createElement('input');
      c.type = 'checkbox';
    } else {
      c = document.createElement('input');
      c.type = spec.type === 'integer' || spec.type === 'number' ? 'number' : 'text';
      if (spec.type === 'integer') { c.min = '0'; c.step = '1'; }
      if (spec.type === 'number') c.step = 'any';
      c.placeholder = spec.default !== undefined ? `default ${spec.default}` : 'not set';
    }
    c.id = id;
    c.dataset.field = name;
    const hint = document.createElement('p');
    hint.className = 'hint';
    hint.id = `${id}-hint`;
    hint.textContent = (spec.description || '').replace(/ \(CLI: .*\)$/, '');
    c.setAttribute('aria-describedby', hint.id);
    wrap.append(label, c, hint);
    box.appendChild(wrap);
    bindControl(c, name);
  }
}

// Controls show the state, or the CLI's default where the state is silent.
function showState() {
  for (const name of Object.keys(page.spec)) {
    if (HIDDEN_FIELDS.includes(name) || FRACTION_FIELDS.includes(name)) continue;
    const main = MAIN_FIELDS.includes(name);
    const v = page.state[name] !== undefined ? page.state[name] : (main ? defaultOf(name) : '');
    setControl(name, v);
  }
  if (page.state.gpus === undefined) setControl('gpus', '');
  el('gpus').placeholder = '1';
  showFraction(null);
  showModelInfo();
}

function modelRow(q) {
  const n = String(q || '').trim().toLowerCase();
  return page.models.find((m) => m.id.toLowerCase() === n || m.aliases.some((a) => a.toLowerCase() === n));
}

function showModelInfo() {
  const info = el('model-info');
  if (page.config) {
    info.textContent = 'Using the pasted config.json.';
    return;
  }
  const m = modelRow(page.state.model !== undefined ? page.state.model : defaultOf('model'));
  info.textContent = m ? `${m.id}: ${paramsShort(m.params)} parameters, ${m.quant} checkpoint, up to ${thousands(m.max_context)} tokens.` : '';
}

// ---------------------------------------------------------------- pasted config.json

function useConfigText(text, origin) {
  const status = el('config-status');
  let obj;
  try {
    obj = JSON.parse(text);
  } catch (err) {
    status.textContent = `That is not valid JSON: ${err.message}`;
    status.classList.add('bad');
    return;
  }
  if (!obj || typeof obj !== 'object' || Array.isArray(obj)) {
    status.textContent = 'A config.json is a JSON object ({…}).';
    status.classList.add('bad');
    return;
  }
  status.classList.remove('bad');
  status.textContent = `Using the ${origin}${obj._name_or_path ? ` (${obj._name_or_path})` : ''}.`;
  page.config = obj;
  el('model').disabled = true;
  el('config-box').open = true;
  showModelInfo();
  schedule(0);
}

function clearConfig() {
  page.config = null;
  el('model').disabled = false;
  el('config-status').textContent = 'Back to the catalogue model.';
  el('config-status').classList.remove('bad');
  showModelInfo();
  schedule(0);
}

function setupDrop() {
  document.addEventListener('dragover', (ev) => {
    ev.preventDefault();
    document.body.classList.add('dropping');
  });
  document.addEventListener('dragleave', (ev) => {
    if (!ev.relatedTarget) document.body.classList.remove('dropping');
  });
  document.addEventListener('drop', async (ev) => {
    ev.preventDefault();
    document.body.classList.remove('dropping');
    const file = ev.dataTransfer && ev.dataTransfer.files && ev.dataTransfer.files[0];
    if (!file) return;
    if (file.size > 64 * 1024) {
      el('config-status').textContent = `${file.name} is over 64 KiB: not a config.json.`;
      el('config-box').open = true;
      return;
    }
    const text = await file.text();
    el('config-text').value = text;
    useConfigText(text, `dropped file ${file.name}`);
  });
}

// ---------------------------------------------------------------- update cycle

// body[data-pending] while an update waits for the debounce, body[data-started] and
// body[data-generation] for the newest update begun and finished: tests (and anyone scripting
// the page) wait for pending to clear and the two generations to agree.
function schedule(delay) {
  document.body.dataset.pending = '1';
  clearTimeout(page.timer);
  page.timer = setTimeout(update, delay === undefined ? DEBOUNCE_MS : delay);
}

async function update() {
  const gen = ++page.generation;
  delete document.body.dataset.pending;
  document.body.dataset.started = String(gen);
  writeUrl();
  showModelInfo();
  showPlanInputs();
  el('busy').hidden = false;
  const res = await api('/estimate', requestBody());
  if (gen !== page.generation) return;
  if (!res.ok) {
    showError(res.data);
    el('busy').hidden = true;
    document.body.dataset.state = 'error';
    document.body.dataset.generation = String(gen);
    return;
  }
  clearError();
  page.last = res.data;
  render(res.data);
  await Promise.all([drawContextChart(res.data, gen), drawGpuTable(res.data, gen)]);
  if (gen !== page.generation) return;
  el('busy').hidden = true;
  // Tests wait for this marker: every figure on the page belongs to this configuration.
  document.body.dataset.state = 'ready';
  document.body.dataset.generation = String(gen);
}

function showError(data) {
  const st = el('status');
  const field = data.field ? `${data.field}: ` : '';
  st.textContent = `${field}${data.error}`;
  st.hidden = false;
  el('results').classList.add('stale');
  document.querySelectorAll('[aria-invalid]').forEach((n) => n.removeAttribute('aria-invalid'));
  const top = data.field ? data.field.split('.')[0] : null;
  const c = top === 'config' ? el('config-text') : (top ? controlFor(top) : null);
  if (c) c.setAttribute('aria-invalid', 'true');
}

function clearError() {
  el('status').hidden = true;
  el('status').textContent = '';
  el('results').classList.remove('stale');
  document.querySelectorAll('[aria-invalid]').forEach((n) => n.removeAttribute('aria-invalid'));
}

// ---------------------------------------------------------------- rendering

// The assumptions behind a figure: the estimate's own (every engine profile names its own),
// else the derivation the page knows.
function assumptionsFor(e, figure) {
  const names = FIGURE_ASSUMPTIONS[figure] || [figure];
  const own = (e.assumptions || []).filter((x) => names.includes(x.figure));
  if (own.length) return own;
  if (DERIVED[figure]) return [DERIVED[figure]];
  if (FIGURE_ASSUMPTIONS[figure]) return [{ formula: `as the ${e.engine} profile accounts it (all its assumptions are listed under the figures)`, source: `engine profile ${e.engine}` }];
  return [];
}

function render(e) {
  const gpuName = (page.gpus.find((g) => g.id === e.gpu) || { name: e.gpu }).name;
  const split = e.gpus > 1 ? `; TP ${e.tp} × PP ${e.pp} × DP ${e.dp}, figures per GPU` : '';
  el('headline').textContent = `${e.model} on ${e.gpus} × ${gpuName}, engine ${e.engine}: weights ${e.quant}, KV cache ${e.kv_dtype}, ${thousands(e.batch)} × ${thousands(e.context)} tokens${split}.`;

  const v = el('verdict');
  v.className = `verdict ${e.fits ? 'fits' : 'nofit'}`;
  v.dataset.fits = String(e.fits);
  v.dataset.value = String(e.margin_bytes);
  v.textContent = e.fits
    ? `FITS, ${gbGib(Math.abs(e.margin_bytes))} to spare`
    : `DOES NOT FIT, short by ${gbGib(Math.abs(e.margin_bytes))}`;

  // On a phone the results are below the form: a bar pinned to the bottom keeps the answer in view.
  const mini = el('mini');
  mini.hidden = false;
  mini.className = `mini ${e.fits ? 'fits' : 'nofit'}`;
  mini.textContent = `${e.fits ? 'Fits' : 'Does not fit'} · max concurrency ${thousands(e.max_concurrency)} · total ${gib(e.total_bytes)} of ${gib(e.usable_bytes)}`;
  drawBar(e);
  drawFigures(e);
  // The decoder layers by kind (a hybrid model's recurrent state is constant per sequence) and
  // the vision/audio towers counted in the weights (estimate JSON `layers`, `towers`).
  const l = e.layers || { kinds: {} };
  const kinds = Object.entries(l.kinds).sort((a, b) => b[1] - a[1]).map(([k, c]) => `${c} ${k}`).join(', ');
  const state = l.state_bytes_per_sequence ? `; recurrent state ${gbGib(l.state_bytes_per_sequence)} per sequence, whatever the context` : '';
  const towers = (e.towers || []).map((t) => `${t.name}: ${thousands(t.params)} parameters`).join('; ');
  el('layers').textContent = kinds ? `Layers: ${kinds}${state}.${towers ? ` Towers: ${towers}.` : ''}` : '';
  const warn = el('warnings');
  warn.replaceChildren(...(e.warnings || []).map((w) => {
    const li = document.createElement('li');
    li.textContent = `Warning: ${w}`;
    return li;
  }));
  const n = e.naive;
  el('naive').textContent = n && n.kv_bytes_per_token !== e.kv_bytes_per_token
    ? `The seed articles' formula (2 × 2 × layers × hidden) gives ${thousands(n.kv_bytes_per_token)} B of KV per token, ${fixed(n.ratio, 1)}× this estimate: ${n.reason}.`
    : '';
  el('launch').textContent = launchCommand(e);
  showFraction(e);
  const engine = el('engine');
  if (engine.disabled && engine.value !== e.engine) {
    // No engine choice in this build: show the one the estimate used.
    const o = document.createElement('option');
    o.value = e.engine;
    o.textContent = e.engine;
    engine.replaceChildren(o);
  }
}

function drawBar(e) {
  const wrap = el('bar');
  wrap.replaceChildren();
  const W = 600, H = 64, top = 18, barH = 28;
  const scale = Math.max(e.total_bytes, e.gpu_memory_bytes, 1);
  const s = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-labelledby': 'bar-title', class: 'bar' });
  s.appendChild(svg('title', { id: 'bar-title' }, `Per GPU: total ${gbGib(e.total_bytes)} of ${gbGib(e.usable_bytes)} usable (${gib(e.gpu_memory_bytes)} on the card)`));
  s.appendChild(svg('rect', { x: 0, y: top, width: W * e.gpu_memory_bytes / scale, height: barH, class: 'seg-free' }));
  let x = 0;
  for (const p of PARTS) {
    const w = W * e[p.key] / scale;
    const r = svg('rect', { x, y: top, width: Math.max(w, 0), height: barH, class: p.cls, 'data-part': p.figure });
    r.appendChild(svg('title', {}, `${p.label}: ${gbGib(e[p.key])}`));
    s.appendChild(r);
    x += w;
  }
  const ux = W * e.usable_bytes / scale;
  s.appendChild(svg('line', { x1: ux, x2: ux, y1: 6, y2: top + barH + 4, class: 'usable-line' }));
  const anchor = ux > W - 120 ? 'end' : 'start';
  s.appendChild(svg('text', { x: anchor === 'end' ? ux - 4 : ux + 4, y: 13, class: 'bar-label', 'text-anchor': anchor }, `usable ${gib(e.usable_bytes)}`));
  s.appendChild(svg('text', { x: 2, y: H - 4, class: 'bar-label' }, `total ${gib(e.total_bytes)}`));
  wrap.appendChild(s);

  const legend = el('legend');
  legend.replaceChildren();
  for (const p of PARTS) {
    const li = document.createElement('li');
    const sw = document.createElement('span');
    sw.className = `swatch ${p.cls}`;
    li.append(sw, `${p.label} ${gib(e[p.key])}`);
    legend.appendChild(li);
  }
}

function figureRow(dl, id, label, valueText, raw, figure, e) {
  const dt = document.createElement('dt');
  dt.textContent = label;
  const found = figure ? assumptionsFor(e, figure) : [];
  const dd = document.createElement('dd');
  dd.id = `fig-${id}`;
  dd.dataset.figure = id;
  dd.dataset.value = String(raw);
  const val = document.createElement('span');
  val.className = 'value';
  val.textContent = valueText;
  dd.appendChild(val);
  if (found.length) {
    const tipId = `tip-${id}`;
    const btn = document.createElement('button');
    btn.type = 'button';
    btn.className = 'info';
    btn.setAttribute('aria-label', `How ${label} is computed`);
    btn.setAttribute('aria-describedby', tipId);
    btn.setAttribute('aria-expanded', 'false');
    btn.textContent = 'i';
    const tip = document.createElement('span');
    tip.className = 'tip';
    tip.id = tipId;
    tip.setAttribute('role', 'tooltip');
    for (const a of found) {
      const f = document.createElement('span');
      f.className = 'tip-formula';
      f.textContent = a.formula;
      const src = document.createElement('span');
      src.className = 'tip-source';
      src.textContent = `Source: ${a.source}`;
      tip.append(f, src);
    }
    // Hover and keyboard focus show it through CSS; a tap toggles it.
    btn.addEventListener('click', () => {
      const open = btn.getAttribute('aria-expanded') !== 'true';
      document.querySelectorAll('.info[aria-expanded="true"]').forEach((b) => b.setAttribute('aria-expanded', 'false'));
      btn.setAttribute('aria-expanded', String(open));
    });
    btn.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape') { btn.setAttribute('aria-expanded', 'false'); btn.blur(); }
    });
    dd.append(btn, tip);
  }
  dl.append(dt, dd);
}

function drawFigures(e) {
  const dl = el('figures');
  dl.replaceChildren();
  const active = e.active_params !== e.params ? ` (${paramsShort(e.active_params)} active per token)` : '';
  figureRow(dl, 'params', 'parameters', `${paramsShort(e.params)}${active}`, e.params, 'params', e);
  figureRow(dl, 'weights', 'weights', gbGib(e.weights_bytes), e.weights_bytes, 'weights', e);
  figureRow(dl, 'kv_cache', 'KV cache', gbGib(e.kv_cache_bytes), e.kv_cache_bytes, 'kv_cache', e);
  figureRow(dl, 'activations', 'activations', gbGib(e.activation_bytes), e.activation_bytes, 'activations', e);
  figureRow(dl, 'overhead', 'overhead', gbGib(e.overhead_bytes), e.overhead_bytes, 'overhead', e);
  figureRow(dl, 'total', 'total', gbGib(e.total_bytes), e.total_bytes, 'total', e);
  figureRow(dl, 'usable', 'usable', `${gbGib(e.usable_bytes)} = ${gib(e.gpu_memory_bytes)} × ${e.utilization}`, e.usable_bytes, 'usable', e);
  figureRow(dl, 'margin', e.fits ? 'to spare' : 'short by', gbGib(Math.abs(e.margin_bytes)), e.margin_bytes, 'margin', e);
  figureRow(dl, 'max_concurrency', 'max concurrency', `${count(e.max_concurrency, 'sequence')} of ${thousands(e.context)} tokens`, e.max_concurrency, 'max_concurrency', e);
  const limit = e.max_context_limit === 'model' ? ' (the model\'s own limit)' : '';
  figureRow(dl, 'max_context', 'max context', `${thousands(e.max_context)} tokens at ${thousands(e.batch)} sequence(s)${limit}`, e.max_context, 'max_context', e);
  const minGpus = e.min_gpus === null || e.min_gpus === undefined
    ? (e.engine === 'generic' ? 'over 64' : 'not searched by this engine profile')
    : `${e.min_gpus} × ${e.gpu}`;
  figureRow(dl, 'min_gpus', 'fewest GPUs', minGpus, e.min_gpus === null || e.min_gpus === undefined ? 'null' : e.min_gpus, 'min_gpus', e);
  // Every assumption of the estimate, including those no single figure owns.
  const list = el('assumption-list');
  list.replaceChildren();
  for (const a of e.assumptions || []) {
    const li = document.createElement('li');
    const name = document.createElement('strong');
    name.textContent = `${a.figure}: `;
    const src = document.createElement('span');
    src.className = 'tip-source';
    src.textContent = `Source: ${a.source}`;
    li.append(name, a.formula, src);
    list.appendChild(li);
  }
  el('assumption-count').textContent = String((e.assumptions || []).length);
  const settings = el('settings');
  settings.replaceChildren();
  for (const st of e.engine_settings || []) {
    const li = document.createElement('li');
    li.textContent = `${st.name} = ${st.value} (${st.origin})`;
    settings.appendChild(li);
  }
  el('settings-box').hidden = !(e.engine_settings || []).length;
}

function chartContexts(e) {
  let maxCtx = 131072;
  if (page.config) maxCtx = Number(page.config.max_position_embeddings) || maxCtx;
  else {
    const m = modelRow(e.model);
    if (m) maxCtx = m.max_context;
  }
  const out = [];
  for (let c = 1024; c <= maxCtx && c <= 2 ** 24; c *= 2) out.push(c);
  if (out.length === 0) out.push(maxCtx);
  // Keep the chart readable: at most 10 bars, the longest contexts kept.
  return out.slice(-10);
}

async function drawContextChart(e, gen) {
  const contexts = chartContexts(e);
  const answers = await Promise.all(contexts.map((c) => api('/estimate', requestBody({ context: String(c) }))));
  if (gen !== page.generation) return;
  const points = contexts.map((c, i) => ({ c, n: answers[i].ok ? answers[i].data.max_concurrency : null }));
  const wrap = el('ctx-chart');
  wrap.replaceChildren();
  const W = 600, H = 220, left = 8, bottom = 36, top = 22;
  const maxN = Math.max(1, ...points.map((p) => p.n || 0));
  const bw = (W - left * 2) / points.length;
  const s = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-labelledby': 'ctx-title', class: 'ctx' });
  s.appendChild(svg('title', { id: 'ctx-title' }, `Max concurrency for contexts ${points.map((p) => `${shortTokens(p.c)}: ${p.n === null ? 'error' : p.n}`).join(', ')}`));
  s.appendChild(svg('line', { x1: left, x2: W - left, y1: H - bottom, y2: H - bottom, class: 'axis' }));
  points.forEach((p, i) => {
    const h = p.n ? (H - bottom - top) * p.n / maxN : 0;
    const x = left + i * bw + bw * 0.15;
    const g = svg('g', { 'data-context': p.c, 'data-value': p.n === null ? 'null' : p.n, class: p.c === e.context ? 'point current' : 'point' });
    g.appendChild(svg('rect', { x, y: H - bottom - h, width: bw * 0.7, height: Math.max(h, 0), class: 'ctx-bar' }));
    g.appendChild(svg('text', { x: x + bw * 0.35, y: H - bottom - h - 5, 'text-anchor': 'middle', class: 'ctx-value' }, p.n === null ? '–' : thousands(p.n)));
    g.appendChild(svg('text', { x: x + bw * 0.35, y: H - bottom + 16, 'text-anchor': 'middle', class: 'ctx-label' }, shortTokens(p.c)));
    g.appendChild(svg('title', {}, `${thousands(p.c)} tokens: ${p.n === null ? 'error' : count(p.n, 'sequence')}`));
    s.appendChild(g);
  });
  s.appendChild(svg('text', { x: W / 2, y: H - 4, 'text-anchor': 'middle', class: 'ctx-label' }, 'context length (tokens per sequence)'));
  wrap.appendChild(s);
}

async function drawGpuTable(e, gen) {
  const answers = await Promise.all(page.gpus.map((g) => api('/estimate', requestBody({ gpu: g.id, gpu_memory: '' }))));
  if (gen !== page.generation) return;
  const tbody = el('gpu-table').tBodies[0];
  tbody.replaceChildren();
  page.gpus.forEach((g, i) => {
    const tr = document.createElement('tr');
    tr.dataset.gpu = g.id;
    if (g.id === e.gpu) tr.className = 'current';
    const th = document.createElement('th');
    th.scope = 'row';
    th.textContent = g.name;
    const cells = [th];
    const cell = (text, value, cls) => {
      const td = document.createElement('td');
      td.textContent = text;
      if (value !== undefined) td.dataset.value = String(value);
      if (cls) td.className = cls;
      cells.push(td);
    };
    cell(gib(g.memory_bytes), g.memory_bytes);
    const a = answers[i];
    if (!a.ok) {
      const td = document.createElement('td');
      td.colSpan = 4;
      td.className = 'na';
      td.textContent = a.data.error;
      cells.push(td);
    } else {
      const r = a.data;
      cell(gib(r.total_bytes), r.total_bytes);
      cell(r.fits ? 'fits' : 'does not fit', r.fits, r.fits ? 'ok' : 'bad');
      cell(thousands(r.max_concurrency), r.max_concurrency);
      cell(r.min_gpus === null ? 'over 64' : String(r.min_gpus), r.min_gpus === null ? 'null' : r.min_gpus);
    }
    tr.append(...cells);
    tbody.appendChild(tr);
  });
}

// ---------------------------------------------------------------- launch command

function setting(e, name) {
  const st = (e.engine_settings || []).find((x) => x.name === name);
  return st ? st.value : null;
}

// The value of a request field the user set (in the form or the link), else null.
function given(name) {
  const v = page.state[name];
  return v === undefined || v === null || v === '' || v === false ? null : String(v);
}

const GGML_CACHE = { fp16: 'f16', bf16: 'bf16', fp32: 'f32', auto: 'f16' };

// The engine's own command for the configuration estimated (flag names: vLLM `vllm serve
// --help`, SGLang server_args.py, llama.cpp common/arg.cpp, ollama's FAQ for its variables).
// Only settings the estimate used are written; engine defaults are left to the engine.
function launchCommand(e) {
  const engine = engineName();
  const model = page.config ? (page.config._name_or_path || 'PATH/TO/MODEL') : e.model;
  const kvGiven = given('kv_dtype') || 'auto';
  const notes = [];
  if (engine.includes('ollama')) {
    const cache = setting(e, 'OLLAMA_KV_CACHE_TYPE') || e.kv_dtype;
    const fa = setting(e, 'OLLAMA_FLASH_ATTENTION') === 'true' ? '1' : '0';
    return `OLLAMA_CONTEXT_LENGTH=${e.context} OLLAMA_NUM_PARALLEL=${setting(e, 'OLLAMA_NUM_PARALLEL') || e.batch} OLLAMA_FLASH_ATTENTION=${fa} OLLAMA_KV_CACHE_TYPE=${GGML_CACHE[cache] || cache} ollama serve`;
  }
  if (engine.includes('llama')) {
    const file = `${model.split('/').pop()}-${e.quant.toUpperCase()}.gguf`;
    const tk = setting(e, 'type_k') || e.kv_dtype;
    const tv = setting(e, 'type_v') || e.kv_dtype;
    let cmd = `llama-server -m ${file} -c ${e.context} -np ${setting(e, 'n_seq_max') || e.batch} -ngl ${setting(e, 'n_gpu_layers') || 999}`;
    cmd += ` -ctk ${GGML_CACHE[tk] || tk} -ctv ${GGML_CACHE[tv] || tv} -fa ${setting(e, 'flash_attn') || 'auto'}`;
    if (given('batch_size')) cmd += ` -b ${given('batch_size')}`;
    if (given('ubatch_size')) cmd += ` -ub ${given('ubatch_size')}`;
    if (setting(e, 'kv_unified') === 'true') cmd += ' --kv-unified';
    if (setting(e, 'swa_full') === 'true') cmd += ' --swa-full';
    if (given('no_kv_offload')) cmd += ' --no-kv-offload';
    notes.push('# -c is shared by the -np slots');
    return [...notes, cmd].join('\n');
  }
  if (engine.includes('sglang')) {
    const fraction = setting(e, 'mem_fraction_static') || e.utilization;
    let cmd = `python -m sglang.launch_server --model-path ${model} --context-length ${e.context} --mem-fraction-static ${fraction} --tp-size ${e.tp}`;
    if (e.dp > 1) cmd += ` --dp-size ${e.dp}`;
    if (kvGiven === 'fp8') cmd += ' --kv-cache-dtype fp8_e5m2';
    else if (kvGiven !== 'auto' && kvGiven !== e.quant) notes.push(`# SGLang's --kv-cache-dtype takes auto or fp8 variants, not ${kvGiven}`);
    return [...notes, cmd].join('\n');
  }
  // vLLM, and the generic model (which follows vLLM's defaults).
  const utilization = setting(e, 'gpu_memory_utilization') || e.utilization;
  let cmd = `vllm serve ${model} --max-model-len ${e.context} --gpu-memory-utilization ${utilization} --tensor-parallel-size ${e.tp}`;
  if (e.pp > 1) cmd += ` --pipeline-parallel-size ${e.pp}`;
  if (e.dp > 1) cmd += ` --data-parallel-size ${e.dp}`;
  if (kvGiven === 'fp8' || kvGiven === 'auto') cmd += ` --kv-cache-dtype ${kvGiven}`;
  else notes.push(`# vLLM's --kv-cache-dtype takes auto (the model dtype) or fp8 variants, not ${kvGiven}`);
  const flags = { max_num_seqs: '--max-num-seqs', max_num_batched_tokens: '--max-num-batched-tokens', block_size: '--block-size', dtype: '--dtype' };
  for (const [field, flag] of Object.entries(flags)) if (given(field)) cmd += ` ${flag} ${given(field)}`;
  if (given('enforce_eager')) cmd += ' --enforce-eager';
  if (given('enable_expert_parallel')) cmd += ' --enable-expert-parallel';
  const quant = given('quant');
  const own = (modelRow(e.model) || {}).quant;
  if (quant && e.quant !== own) {
    if (e.quant === 'fp8') cmd += ' --quantization fp8';
    else notes.push(`# vLLM reads the weight format from the checkpoint: serve a ${e.quant} checkpoint of this model`);
  }
  return [...notes, cmd].join('\n');
}

// ---------------------------------------------------------------- plan a deployment

// The planner's engines, if the API lists none; an estimate engine that is not one of them (ollama)
// is planned with the planner's default engine.
const PLAN_ENGINE_FALLBACK = ['vllm', 'llamacpp', 'sglang', 'generic'];
// Request fields of a plan error, and the control on this page that sets each.
const PLAN_CONTROLS = { model: 'model', context: 'context', concurrency: 'batch', engine: 'engine', gpu: 'gpu', max_gpus: 'plan-max-gpus', gpu_memory_utilization: 'fraction' };

function planSpec(name) {
  return (page.planSpec || {})[name] || {};
}

// The planner's engine for the page's engine, and a note when they differ.
function planEngine() {
  const choices = planSpec('engine').enum || PLAN_ENGINE_FALLBACK;
  const engine = engineName();
  if (choices.includes(engine)) return { engine, note: '' };
  const fallback = planSpec('engine').default || choices[0];
  return { engine: fallback, note: ` (${engine} is not one of the planner's engines: planned with ${fallback})` };
}

// The plan request for the page's current inputs: its model, context, concurrent users, engine,
// memory fraction and vLLM release as the estimate uses them, and the panel's own options.
function planBody() {
  const est = requestBody();
  const value = (name, fallback) => (est[name] !== undefined ? est[name] : fallback);
  const body = {
    model: [value('model', defaultOf('model'))],
    context: value('context', defaultOf('context')),
    concurrency: value('batch', defaultOf('batch')),
    engine: planEngine().engine,
  };
  if (fractionField() && body.engine === engineName()) {
    const fraction = est[fractionField()];
    if (fraction !== undefined) body.gpu_memory_utilization = fraction;
  }
  if (body.engine === 'vllm' && est.vllm_version !== undefined && planSpec('vllm_version').type) body.vllm_version = est.vllm_version;
  const maxGpus = el('plan-max-gpus').value.trim();
  if (maxGpus !== '') body.max_gpus = /^\d+$/.test(maxGpus) ? Number(maxGpus) : maxGpus;
  if (el('plan-this-gpu').checked) body.gpu = [value('gpu', defaultOf('gpu'))];
  return body;
}

// The panel's description of what a search will cover, and whether the plan shown is still the
// answer for the current inputs. Called after every estimate and on the panel's own inputs.
function showPlanInputs() {
  const panel = el('plan');
  if (!page.planSpec) return;
  if (page.config) {
    el('plan-workload').textContent = 'a catalogue model (the planner does not take a pasted config.json)';
    return;
  }
  const body = planBody();
  const gpus = body.gpu ? ` on ${body.gpu[0]} only` : '';
  el('plan-workload').textContent = `${body.model[0]}: ${thousands(body.concurrency)} concurrent × ${thousands(body.context)} tokens${gpus}`;
  el('plan-engine').textContent = `${body.engine}${planEngine().note}`;
  const stale = page.planSent !== null && JSON.stringify(body) !== page.planSent;
  panel.classList.toggle('stale', stale);
  if (stale && panel.dataset.state !== 'running') {
    el('plan-status').textContent = 'The inputs changed since this search: press "Find deployments" to search again.';
  }
}

async function runPlan() {
  const panel = el('plan');
  if (panel.dataset.state === 'running') return;
  const errorBox = el('plan-error');
  el('plan-max-gpus').removeAttribute('aria-invalid');
  if (page.config) {
    errorBox.textContent = 'The planner takes catalogue models only: press "Back to the catalogue" and pick a model to plan.';
    errorBox.hidden = false;
    panel.dataset.state = 'error';
    return;
  }
  const body = planBody();
  const gen = ++page.planGeneration;
  panel.dataset.state = 'running';
  panel.setAttribute('aria-busy', 'true');
  el('plan-run').setAttribute('aria-disabled', 'true');
  el('plan-status').textContent = `Searching deployments for ${body.model[0]}…`;
  const began = performance.now();
  const res = await api('/plan', body);
  if (gen !== page.planGeneration) return;
  page.planSeconds = (performance.now() - began) / 1000;
  panel.removeAttribute('aria-busy');
  el('plan-run').removeAttribute('aria-disabled');
  page.planSent = JSON.stringify(body);
  panel.classList.remove('stale');
  if (!res.ok) {
    errorBox.textContent = `${res.data.field ? `${res.data.field}: ` : ''}${res.data.error}`;
    errorBox.hidden = false;
    el('plan-found').hidden = true;
    el('plan-none').hidden = true;
    el('plan-status').textContent = 'No search: the request was refused.';
    if (res.data.field === 'max_gpus') el('plan-max-gpus').setAttribute('aria-invalid', 'true');
    panel.dataset.state = 'error';
  } else {
    errorBox.hidden = true;
    drawPlans(res.data, body);
    panel.dataset.state = 'ready';
  }
  panel.dataset.generation = String(gen);
}

function drawPlans(result, body) {
  const plans = result.plans || [];
  const shown = plans.slice(0, Number(planSpec('top').default) || 12);
  const workload = `${count(body.concurrency, 'concurrent sequence')} of ${thousands(body.context)} tokens`;
  el('plan-found').hidden = plans.length === 0;
  el('plan-none').hidden = plans.length !== 0;
  if (plans.length === 0) {
    el('plan-none-detail').textContent = (result.advice || []).length
      ? 'The smallest changes that would:'
      : 'The planner found no single change that would; allow more GPUs or other GPU kinds.';
    const list = el('plan-advice');
    list.replaceChildren();
    for (const a of result.advice || []) {
      const li = document.createElement('li');
      const change = document.createElement('strong');
      change.textContent = a.change;
      li.append(change, `: ${a.detail}`);
      list.appendChild(li);
    }
    el('plan-status').textContent = `No deployment serves ${workload} (searched in ${fixed(page.planSeconds, 1)} s).`;
    return;
  }
  const noun = plans.length === 1 ? 'deployment' : 'deployments';
  el('plan-summary').textContent = `${thousands(plans.length)} ${noun} serve ${workload} of ${plans[0].model}, cheapest first${plans.length > shown.length ? `; the first ${shown.length} shown` : ''}.`;
  el('plan-status').textContent = `Searched in ${fixed(page.planSeconds, 1)} s.`;
  const tbody = el('plan-table').tBodies[0];
  tbody.replaceChildren();
  shown.forEach((d, i) => {
    const tr = document.createElement('tr');
    tr.className = 'plan-row';
    tr.dataset.index = String(i);
    const th = document.createElement('th');
    th.scope = 'row';
    th.textContent = String(i + 1);
    tr.appendChild(th);
    const cell = (key, text, value, numeric) => {
      const td = document.createElement('td');
      td.dataset.key = key;
      td.dataset.value = String(value);
      td.textContent = text;
      if (numeric) td.className = 'num';
      tr.appendChild(td);
      return td;
    };
    // The same texts as the `vramplan plan` table (commands/plan.rs render).
    const gpu = page.gpus.find((g) => g.id === d.gpu);
    cell('gpus', `${d.gpus} × ${d.gpu}`, `${d.gpus} × ${d.gpu}`).title = gpu ? gpu.name : d.gpu;
    cell('quant', d.quant, d.quant);
    cell('kv_dtype', d.kv_dtype, d.kv_dtype);
    cell('parallel', `${d.tp}/${d.pp}/${d.replicas}`, `${d.tp}/${d.pp}/${d.replicas}`);
    cell('memory_per_gpu_bytes', `${gib(d.memory_per_gpu_bytes)} of ${gib(d.gpu_memory_bytes)}`, d.memory_per_gpu_bytes, true);
    cell('max_concurrency', thousands(d.max_concurrency), d.max_concurrency, true);
    cell('decode_tokens_per_s', thousands(fixed(d.decode_tokens_per_s, 0)), d.decode_tokens_per_s, true);
    cell('cost_per_hour', d.cost_per_hour === null ? 'no price' : `$${fixed(d.cost_per_hour, 2)}`, d.cost_per_hour === null ? 'null' : d.cost_per_hour, true);
    const launch = document.createElement('tr');
    launch.className = 'launch-row';
    launch.dataset.index = String(i);
    const td = document.createElement('td');
    td.colSpan = 9;
    const box = document.createElement('div');
    box.className = 'launch-cell';
    const code = document.createElement('code');
    code.className = 'plan-launch';
    code.textContent = d.launch;
    const copy = document.createElement('button');
    copy.type = 'button';
    copy.className = 'btn';
    copy.textContent = 'Copy';
    copy.setAttribute('aria-label', `Copy the launch command of plan ${i + 1}`);
    copy.addEventListener('click', async () => {
      const ok = await copyText(d.launch);
      const status = el('plan-status');
      status.dataset.copied = d.launch;
      status.textContent = ok ? `Launch command of plan ${i + 1} copied.` : 'Could not copy: select the command and copy it by hand.';
    });
    box.append(copy, code);
    td.appendChild(box);
    launch.appendChild(td);
    tbody.append(tr, launch);
  });
}

function setupPlan() {
  const panel = el('plan');
  if (!page.planSpec) {
    // A server without the planner: no panel.
    panel.hidden = true;
    return;
  }
  panel.dataset.state = 'idle';
  const maxGpus = el('plan-max-gpus');
  maxGpus.placeholder = String(planSpec('max_gpus').default || 8);
  el('plan-max-gpus-hint').textContent = `--max-gpus: GPUs in total, all replicas (empty: ${maxGpus.placeholder}).`;
  el('plan-run').addEventListener('click', runPlan);
  // Enter in the panel's number field searches, as in a form.
  maxGpus.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter') { ev.preventDefault(); runPlan(); }
  });
  for (const c of [maxGpus, el('plan-this-gpu')]) {
    c.addEventListener('input', showPlanInputs);
    c.addEventListener('change', showPlanInputs);
  }
}

// ---------------------------------------------------------------- what fits

/// The fit request: the GPU, context and sequences of the main form, the panel's count and engine.
function fitBody() {
  const body = {
    gpu: String(page.state.gpu || defaultOf('gpu')),
    gpus: Number(el('fit-gpus').value) || el('fit-gpus').value,
    context: Number(page.state.context || defaultOf('context')),
    concurrency: Number(page.state.batch || defaultOf('batch')),
  };
  if (el('fit-engine').value) body.engine = [el('fit-engine').value];
  return body;
}

async function runFit() {
  const panel = el('fit');
  if (panel.dataset.state === 'running') return;
  const body = fitBody();
  panel.dataset.state = 'running';
  panel.setAttribute('aria-busy', 'true');
  el('fit-status').textContent = `Checking every catalogue model on ${body.gpus} × ${body.gpu}…`;
  const res = await api('/fit', body);
  panel.removeAttribute('aria-busy');
  const errorBox = el('fit-error');
  if (!res.ok) {
    errorBox.textContent = `${res.data.field ? `${res.data.field}: ` : ''}${res.data.error}`;
    errorBox.hidden = false;
    el('fit-found').hidden = true;
    el('fit-status').textContent = 'No answer: the request was refused.';
    panel.dataset.state = 'error';
    return;
  }
  errorBox.hidden = true;
  const out = res.data;
  const runs = out.models.filter((m) => m.fits);
  const misses = out.models.filter((m) => !m.fits);
  el('fit-summary').textContent = `${count(runs.length, 'model')} run on ${out.hardware.gpus} × ${out.hardware.gpu_name} at ${count(out.concurrency, 'sequence')} of ${thousands(out.context)} tokens, largest first`;
  const tbody = el('fit-table').querySelector('tbody');
  tbody.replaceChildren();
  for (const m of runs) {
    const tr = document.createElement('tr');
    tr.className = 'fit-row';
    tr.dataset.model = m.model;
    for (const v of [m.model, paramsShort(m.params), m.engine, m.quant, m.kv_dtype, gib(m.memory_per_gpu_bytes),
      thousands(m.max_context), thousands(m.max_concurrency)]) {
      const td = document.createElement('td');
      td.textContent = v;
      tr.appendChild(td);
    }
    tbody.appendChild(tr);
  }
  el('fit-misses-summary').textContent = `Does not run: ${count(misses.length, 'model')}`;
  const list = el('fit-miss-list');
  list.replaceChildren();
  for (const m of misses) {
    const li = document.createElement('li');
    li.dataset.model = m.model;
    li.textContent = `${m.model} (${paramsShort(m.params)}, ${m.engine}): ${m.reason}`;
    list.appendChild(li);
  }
  el('fit-found').hidden = false;
  el('fit-status').textContent = '';
  panel.dataset.state = 'done';
}

function setupFit() {
  el('fit-run').addEventListener('click', runFit);
}

// ---------------------------------------------------------------- copy, share, theme

async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch (err) {
    // Clipboard API refused (permissions, non-secure origin): the selection fallback.
    const t = document.createElement('textarea');
    t.value = text;
    t.setAttribute('readonly', '');
    t.className = 'offscreen';
    document.body.appendChild(t);
    t.select();
    let ok = false;
    try { ok = document.execCommand('copy'); } catch (e2) { ok = false; }
    t.remove();
    return ok;
  }
}

function setupButtons() {
  el('copy-launch').addEventListener('click', async () => {
    const text = el('launch').textContent;
    const ok = await copyText(text);
    el('copied').dataset.copied = text;
    el('copied').textContent = ok ? 'Launch command copied.' : 'Could not copy: select the command and copy it by hand.';
  });
  el('share').addEventListener('click', async () => {
    writeUrl();
    const ok = await copyText(location.href);
    el('copied').dataset.copied = location.href;
    el('copied').textContent = ok ? `Link copied: ${location.href}` : `Copy this link: ${location.href}`;
  });
  el('config-use').addEventListener('click', () => useConfigText(el('config-text').value, 'pasted config.json'));
  el('config-clear').addEventListener('click', clearConfig);
  el('controls').addEventListener('submit', (ev) => { ev.preventDefault(); schedule(0); });
}

function applyTheme(theme) {
  const root = document.documentElement;
  const dark = theme === 'dark' || (theme !== 'light' && matchMedia('(prefers-color-scheme: dark)').matches);
  if (theme) root.dataset.theme = theme; else delete root.dataset.theme;
  const btn = el('theme');
  btn.setAttribute('aria-pressed', String(dark));
  btn.textContent = dark ? 'Light theme' : 'Dark theme';
}

function setupTheme() {
  let saved = null;
  try { saved = localStorage.getItem('vramplan-theme'); } catch (err) { saved = null; }
  applyTheme(saved);
  el('theme').addEventListener('click', () => {
    const dark = el('theme').getAttribute('aria-pressed') === 'true';
    const next = dark ? 'light' : 'dark';
    try { localStorage.setItem('vramplan-theme', next); } catch (err) { /* private mode: not remembered */ }
    applyTheme(next);
  });
  matchMedia('(prefers-color-scheme: dark)').addEventListener('change', () => applyTheme(document.documentElement.dataset.theme || null));
}

// ---------------------------------------------------------------- start

async function start() {
  setupTheme();
  const [doc, models, gpus] = await Promise.all([api('/openapi.json'), api('/models'), api('/gpus')]);
  if (!doc.ok || !models.ok || !gpus.ok) {
    showError({ error: 'could not load the catalogue from the server', field: null });
    return;
  }
  page.spec = doc.data.components.schemas.EstimateRequest.properties;
  const planRequest = doc.data.components.schemas.PlanRequest;
  page.planSpec = planRequest ? planRequest.properties : null;
  page.models = models.data;
  page.gpus = gpus.data;
  buildMainControls();
  buildAdvancedControls();
  readUrl();
  showState();
  setupButtons();
  setupDrop();
  setupPlan();
  setupFit();
  await update();
}

document.addEventListener('DOMContentLoaded', start);
