// Try an operation: upload an image, pick an operation, fill the form generated from its
// JSON schema, run it, and see the output and what it cost.

import {ApiError, followJob, getJSON, isAbort, postJSON, putObject} from './api.js';
import {TERMINAL, cost, el, fill, money, pretty, statusBadge} from './dom.js';
import {FormError, specForm} from './form.js';
import {outputKeys, picture} from './job.js';

const WAIT_SECONDS = 30; // POST /v1/jobs?wait=: the answer comes when the job ends, if it does by then

function priceText(price) {
  return price.kind === 'flat' ? `${money(price.flat_micros)} a job` : `${money(price.per_mp_micros)} per megapixel`;
}

// A key of its own for each upload, under console/, named after the file.
function uploadKey(file) {
  const name = file.name.replace(/[^A-Za-z0-9._-]+/g, '_').slice(-80) || 'image';
  return `console/${Date.now().toString(36)}-${name}`;
}

// The fields most operations that read an image have (format, quality, webhook_url...):
// those in at least half of them. Operation-specific ones (resize's width) are in few.
function sharedFields(operations) {
  const counts = new Map();
  const imageOps = operations
    .map((op) => op.schema.$defs[op.schema.$ref.split('/').pop()].properties || {})
    .filter((props) => 'input' in props);
  for (const props of imageOps) {
    for (const name of Object.keys(props)) counts.set(name, (counts.get(name) || 0) + 1);
  }
  return new Set([...counts].filter(([, n]) => n * 2 >= imageOps.length).map(([name]) => name));
}

export async function showTry(root, params, signal) {
  const {operations} = await getJSON('/v1/operations', signal);
  const byName = new Map(operations.map((op) => [op.name, op]));
  const file = el('input', {id: 'try-file', type: 'file', accept: 'image/*,.svg,.pdf,.heic,.jxl'});
  const choice = el('select', {id: 'try-op'},
    operations.map((op) => el('option', {value: op.name}, `${op.name} — ${priceText(op.price)}`)));
  const wanted = params.get('op');
  choice.value = byName.has(wanted) ? wanted : byName.has('resize') ? 'resize' : operations[0].name;
  const formBox = el('div', {id: 'try-form'});
  const run = el('button', {type: 'submit', id: 'try-run'}, 'Run');
  const error = el('p', {class: 'error', id: 'try-error', role: 'alert'});
  const output = el('div', {id: 'try-output'});
  const form = el('form', {class: 'try', autocomplete: 'off'},
    el('div', {class: 'field'}, el('label', {for: 'try-file'}, 'Image'), file,
      el('small', {class: 'hint'}, 'uploaded to your objects under console/ when you run')),
    el('div', {class: 'field'}, el('label', {for: 'try-op'}, 'Operation'), choice),
    formBox, run, error);
  root.append(el('h1', {}, 'Try an operation'), el('div', {class: 'columns'}, form, output));

  const shared = sharedFields(operations);
  let current;
  function pick() {
    current = specForm(byName.get(choice.value).schema, ['operation', 'input'], shared);
    formBox.replaceChildren(current.element);
  }
  choice.addEventListener('change', pick);
  pick();

  form.addEventListener('submit', async (event) => {
    event.preventDefault(); // nothing is submitted by the browser (the CSP forbids it anyway)
    error.textContent = '';
    run.disabled = true;
    try {
      await runJob();
    } catch (e) {
      fill(output); // no "Uploading…" or "Running…" left behind: the error says what happened
      if (!isAbort(e)) error.textContent = e instanceof ApiError ? `${e.code}: ${e.message}` : e.message;
    } finally {
      run.disabled = false;
    }
  });

  // The spec is checked by the gateway (POST /v1/jobs/validate: nothing stored or charged)
  // before the image is uploaded, so a refused spec uploads nothing.
  async function runJob() {
    const spec = {operation: choice.value, ...current.read()};
    const chosen = current.hasInput ? file.files[0] : undefined;
    if (chosen) spec.input = uploadKey(chosen);
    else if (current.needsInput) throw new FormError('choose an image first');
    fill(output, el('p', {class: 'note'}, 'Checking…'));
    await postJSON('/v1/jobs/validate', spec, signal);
    if (chosen) {
      fill(output, el('p', {class: 'note'}, 'Uploading…'));
      await putObject(spec.input, chosen);
    }
    fill(output, el('p', {class: 'note'}, 'Running…'));
    let {body: job} = await postJSON(`/v1/jobs?wait=${WAIT_SECONDS}`, spec, signal);
    if (!TERMINAL.has(job.status)) {
      await followJob(job.id, (changed) => (job = changed), signal);
      job = await getJSON(`/v1/jobs/${encodeURIComponent(job.id)}`, signal);
    }
    showResult(job);
  }

  function showResult(job) {
    const price = cost(job.billing);
    const outputs = job.status === 'succeeded' ? outputKeys(job.result) : [];
    fill(output,
      el('h2', {}, 'Result ', statusBadge(job.status)),
      el('p', {}, 'Cost: ', el('strong', {id: 'try-cost', dataset: {micros: price.micros}}, price.text),
        ' · ', el('a', {href: `#/jobs/${job.id}`, id: 'try-job'}, job.id)),
      job.error ? el('p', {class: 'error'}, `${job.error.code}: ${job.error.message}`) : null,
      el('div', {class: 'pictures'}, outputs.map((key, i) => picture(key, 'Output', signal, i ? null : 'try-image'))),
      job.result ? el('pre', {}, pretty(job.result)) : null);
  }
}
