// One job: its state, billing, input and output images side by side, spec, result and
// webhook deliveries. A job that has not ended is followed on its event stream.

import {ApiError, del, followJob, getJSON, isAbort, objectURL, postJSON} from './api.js';
import {TERMINAL, cost, el, fill, money, pretty, statusBadge, when} from './dom.js';

// The object keys a spec reads: `input`, composite's `overlay`, contact-sheet's `files`;
// each a key or {"inputKey": key} (inline inputs were stored under a key at submission).
export function inputKeys(spec) {
  const sources = [spec.input, spec.overlay, ...(Array.isArray(spec.files) ? spec.files : [])];
  return sources
    .map((s) => (typeof s === 'string' ? s : s && s.inputKey))
    .filter((key) => typeof key === 'string');
}

// The object keys a result names as outputs (`output`, at any depth: variants have several).
export function outputKeys(result, found = []) {
  if (result && typeof result === 'object') {
    for (const [name, value] of Object.entries(result)) {
      if (name === 'output' && typeof value === 'string') found.push(value);
      else outputKeys(value, found);
    }
  }
  return found.slice(0, 8);
}

// A captioned image of an object, loaded with the key; its natural size in the caption.
export function picture(key, label, signal, id) {
  const img = el('img', {alt: `${label}: ${key}`, id});
  const size = el('span', {class: 'size'});
  const figure = el('figure', {class: 'picture'}, img,
    el('figcaption', {}, el('strong', {}, label), ' ', el('code', {}, key), ' ', size));
  img.addEventListener('load', () => (size.textContent = `${img.naturalWidth}×${img.naturalHeight}`));
  img.addEventListener('error', () => (size.textContent = '(the browser cannot show this format)'));
  objectURL(key, signal).then((url) => (img.src = url)).catch((error) => {
    if (!isAbort(error)) size.textContent = `(${error.message})`;
  });
  return figure;
}

function facts(pairs) {
  return el('dl', {class: 'facts'}, pairs.filter(([, v]) => v !== null && v !== undefined)
    .map(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
}

function deliveries(webhook) {
  if (!webhook) return el('p', {class: 'note'}, 'No webhook.');
  const rows = webhook.deliveries.map((d) => el('tr', {},
    el('td', {}, d.attempt), el('td', {}, new Date(d.at * 1000).toLocaleString()),
    el('td', {}, d.status ?? '—'), el('td', {}, `${Math.round(d.latency_ms)} ms`), el('td', {}, d.error ?? '')));
  return el('div', {},
    facts([['URL', el('code', {}, webhook.url)], ['State', webhook.state]]),
    rows.length
      ? el('table', {class: 'deliveries'},
        el('thead', {}, el('tr', {}, ['Attempt', 'At', 'HTTP status', 'Latency', 'Error'].map((h) => el('th', {}, h)))),
        el('tbody', {}, rows))
      : el('p', {class: 'note'}, 'No delivery attempt yet.'));
}

export async function showJob(root, jobId, signal) {
  let job;
  try {
    job = await getJSON(`/v1/jobs/${encodeURIComponent(jobId)}`, signal);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      root.append(el('h1', {}, 'No such job'),
        el('p', {class: 'error', id: 'job-missing'}, `No job ${jobId} in this account.`));
      return;
    }
    throw error;
  }
  const page = el('div', {id: 'job'});
  root.append(page);
  let images = null; // drawn once the job ended (its output exists then), not on every event

  function render() {
    const price = cost(job.billing);
    const actions = [];
    if (!TERMINAL.has(job.status)) {
      actions.push(el('button', {type: 'button', on: {click: () => del(`/v1/jobs/${job.id}`).then(update)}}, 'Cancel'));
    } else if (job.webhook) {
      actions.push(el('button', {type: 'button', on: {click: () => postJSON(`/v1/jobs/${job.id}/webhook/redeliver`)}},
        'Send the webhook again'));
    }
    if (TERMINAL.has(job.status) && !images) {
      const outputs = job.status === 'succeeded' ? outputKeys(job.result) : [];
      images = el('div', {class: 'pictures', id: 'job-images'},
        inputKeys(job.spec).map((key, i) => picture(key, 'Input', signal, i ? null : 'job-input')),
        outputs.map((key, i) => picture(key, 'Output', signal, i ? null : 'job-output')));
    }
    fill(page,
      el('div', {class: 'heading'}, el('h1', {}, job.operation, ' ', el('code', {class: 'mono'}, job.id)),
        statusBadge(job.status), ...actions),
      el('div', {class: 'columns'},
        el('section', {}, el('h2', {}, 'Job'), facts([
          ['Status', job.status], ['Created', when(job.created_at)], ['Started', when(job.started_at)],
          ['Finished', when(job.finished_at)], ['Attempts', job.attempts],
          ['Error', job.error ? `${job.error.code}: ${job.error.message}` : null]])),
        el('section', {}, el('h2', {}, 'Billing'), facts([
          ['Cost', el('span', {id: 'job-cost', dataset: {micros: price.micros}}, price.text)],
          ['Megapixels', job.billing.megapixels ?? 'flat price'],
          ['Quoted', money(job.billing.quoted_micros)], ['Charged', money(job.billing.charged_micros)],
          ['State', job.billing.state]]))),
      images || el('p', {class: 'note'}, 'The images appear when the job ends.'),
      el('div', {class: 'columns'},
        el('section', {}, el('h2', {}, 'Spec'), el('pre', {id: 'job-spec'}, pretty(job.spec))),
        el('section', {}, el('h2', {}, 'Result'), el('pre', {id: 'job-result'}, job.result ? pretty(job.result) : '—'))),
      el('section', {}, el('h2', {}, 'Webhook'), deliveries(job.webhook)));
  }

  function update(changed) {
    job = changed;
    render();
    // The webhook is sent after the job ends: look again until its attempts settle.
    const unsettled = job.webhook && ['pending', 'retrying'].includes(job.webhook.state);
    if (TERMINAL.has(job.status) && unsettled && !signal.aborted) {
      setTimeout(() => getJSON(`/v1/jobs/${encodeURIComponent(job.id)}`, signal).then(update)
        .catch((error) => isAbort(error) || console.warn('job', error.message)), 2000);
    }
  }

  update(job);
  if (!TERMINAL.has(job.status)) {
    followJob(job.id, update, signal)
      .then(() => getJSON(`/v1/jobs/${encodeURIComponent(job.id)}`, signal)) // the final record
      .then(update)
      .catch((error) => isAbort(error) || console.warn('event stream', error.message));
  }
}
