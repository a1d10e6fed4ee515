// The jobs list: the caller's jobs, newest first, filtered by status. Live two ways: the
// first page is read again every few seconds (new jobs appear), and each job on it that has
// not ended is followed on its event stream (its row changes as the job does).

import {followJob, getJSON, isAbort} from './api.js';
import {TERMINAL, ageOf, cost, el, statusBadge} from './dom.js';

const STATUSES = ['queued', 'running', 'succeeded', 'failed', 'canceled'];
const PAGE = 25;
const REFRESH_MS = 4000;
// Streams this page keeps open at once: the gateway allows 16 per key, and the job page
// or another tab may want some.
const MAX_STREAMS = 6;

export async function showJobs(root, params, signal) {
  const status = STATUSES.includes(params.get('status')) ? params.get('status') : '';
  const filter = el('select', {id: 'status-filter', 'aria-label': 'status'},
    el('option', {value: ''}, 'all'), STATUSES.map((s) => el('option', {value: s}, s)));
  filter.value = status;
  filter.addEventListener('change', () => {
    location.hash = filter.value ? `#/jobs?status=${filter.value}` : '#/jobs';
  });
  const body = el('tbody', {id: 'jobs-body'});
  const more = el('button', {type: 'button', id: 'more', hidden: true}, 'Older jobs');
  const note = el('p', {class: 'note', id: 'jobs-note'});
  root.append(
    el('div', {class: 'heading'}, el('h1', {}, 'Jobs'), el('label', {class: 'filter'}, 'Status ', filter)),
    el('table', {class: 'jobs'},
      el('thead', {}, el('tr', {}, ['Job', 'Operation', 'Status', 'Age', 'Cost'].map((h) => el('th', {}, h)))),
      body),
    more, note);

  const rows = new Map(); // job id -> {row, job}
  const streams = new Map(); // job id -> AbortController of its event stream
  let cursor = null; // where the older pages start; null once the last was read

  function cells(job) {
    const price = cost(job.billing);
    return [
      el('td', {}, el('a', {href: `#/jobs/${job.id}`, class: 'mono'}, job.id)),
      el('td', {}, job.operation),
      el('td', {}, statusBadge(job.status)),
      el('td', {class: 'age', dataset: {created: job.created_at}}, ageOf(job.created_at)),
      el('td', {class: 'cost', dataset: {micros: price.micros}}, price.text),
    ];
  }

  function show(job, where = 'end') {
    const known = rows.get(job.id);
    if (known && Date.parse(job.updated_at) < Date.parse(known.job.updated_at)) return; // stale
    if (known) {
      known.row.replaceChildren(...cells(job));
      known.job = job;
    } else {
      const row = el('tr', {dataset: {job: job.id}}, cells(job));
      if (where === 'start') body.prepend(row);
      else body.append(row);
      rows.set(job.id, {row, job});
    }
    follow(job);
  }

  function follow(job) {
    if (TERMINAL.has(job.status) || streams.has(job.id) || streams.size >= MAX_STREAMS) return;
    const stop = new AbortController();
    signal.addEventListener('abort', () => stop.abort(), {once: true});
    streams.set(job.id, stop);
    followJob(job.id, (changed) => rows.has(changed.id) && show(changed), stop.signal)
      .catch((error) => isAbort(error) || console.warn('event stream', job.id, error.message))
      .finally(() => streams.delete(job.id));
  }

  const query = (before) =>
    `/v1/jobs?limit=${PAGE}${status ? `&status=${status}` : ''}${before ? `&cursor=${before}` : ''}`;

  async function newest() {
    const page = await getJSON(query(null), signal);
    if (cursor === null && rows.size === 0) cursor = page.next_cursor;
    // Newer jobs go on top in order; known ones are brought up to date.
    for (const job of [...page.jobs].reverse()) show(job, 'start');
    note.textContent = rows.size ? '' : 'No jobs yet. Run one from “Try an operation”.';
    more.hidden = !cursor;
  }

  more.addEventListener('click', async () => {
    const page = await getJSON(query(cursor), signal);
    page.jobs.forEach((job) => show(job));
    cursor = page.next_cursor;
    more.hidden = !cursor;
  });

  await newest();
  const ages = setInterval(() => {
    for (const cell of body.querySelectorAll('td.age')) cell.textContent = ageOf(cell.dataset.created);
  }, 1000);
  const refresh = setInterval(() => newest().catch((e) => isAbort(e) || (note.textContent = e.message)), REFRESH_MS);
  signal.addEventListener('abort', () => {
    clearInterval(ages);
    clearInterval(refresh);
  }, {once: true});
}
