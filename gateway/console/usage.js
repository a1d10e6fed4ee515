// Usage: balance and holds, charges per operation over the last days as a chart, and the
// queue depth of each worker pool. The chart's buckets are one GET /v1/usage?from=&to= each.

import {getJSON} from './api.js';
import {el, money} from './dom.js';
import {stackedBars} from './chart.js';

const DAYS = 14;
const DAY = 86400;

function dollars(micros, id) {
  return el('span', {id, dataset: {micros}}, money(micros));
}

export async function showUsage(root, params, signal) {
  const now = Date.now() / 1000;
  const today = Math.floor(now / DAY) * DAY; // 00:00 UTC
  const starts = Array.from({length: DAYS}, (_, i) => today - (DAYS - 1 - i) * DAY);
  const usage = (from, to) => getJSON(`/v1/usage?from=${from}&to=${to}`, signal);
  const [total, days, pools] = await Promise.all([
    usage(starts[0], now),
    // a bucket ends a millisecond before the next starts: the ledger keeps milliseconds
    Promise.all(starts.map((start) => usage(start, Math.min(start + DAY - 0.001, now)))),
    getJSON('/v1/pools', signal),
  ]);

  const names = Object.keys(total.charges).sort();
  const label = (start) => new Date(start * 1000).toISOString().slice(5, 10);
  const buckets = days.map((day, i) => ({
    label: label(starts[i]),
    values: Object.fromEntries(Object.entries(day.charges).map(([op, c]) => [op, c.amount_micros])),
  }));

  root.append(
    el('h1', {}, 'Usage'),
    el('div', {class: 'cards'},
      el('div', {class: 'card'}, el('small', {}, 'Balance'), dollars(total.balance_micros, 'usage-balance')),
      el('div', {class: 'card'}, el('small', {}, 'Held'), dollars(total.held_micros, 'usage-held')),
      el('div', {class: 'card'}, el('small', {}, 'Available'), dollars(total.available_micros, 'usage-available')),
      el('div', {class: 'card'}, el('small', {}, `Charged, ${DAYS} days`), dollars(total.charged_micros, 'usage-charged'))),
    el('section', {}, el('h2', {}, 'Charges per operation'),
      stackedBars(buckets, names, `Charges per operation and UTC day, the last ${DAYS} days`),
      el('table', {id: 'usage-charges'},
        el('thead', {}, el('tr', {}, ['Operation', 'Jobs', 'Megapixels', 'Charged'].map((h) => el('th', {}, h)))),
        el('tbody', {}, names.map((op) => {
          const c = total.charges[op];
          return el('tr', {dataset: {op}}, el('td', {}, op), el('td', {}, c.jobs), el('td', {}, c.megapixels),
            el('td', {}, money(c.amount_micros)));
        })))),
    el('div', {class: 'columns'},
      el('section', {}, el('h2', {}, 'Open holds'),
        total.open_holds.length
          ? el('table', {id: 'usage-holds'}, el('tbody', {}, total.open_holds.map((h) => el('tr', {},
            el('td', {}, el('a', {href: `#/jobs/${h.job}`, class: 'mono'}, h.job)), el('td', {}, money(h.amount_micros))))))
          : el('p', {class: 'note'}, 'None: no job of yours is waiting or running.')),
      el('section', {}, el('h2', {}, 'Queues'),
        el('table', {id: 'usage-pools'},
          el('thead', {}, el('tr', {}, ['Pool', 'Waiting', 'Runs'].map((h) => el('th', {}, h)))),
          el('tbody', {}, pools.pools.map((p) => el('tr', {dataset: {pool: p.name}},
            el('td', {}, p.name), el('td', {class: 'queued'}, p.queued ?? 'n/a'),
            el('td', {class: 'ops'}, p.operations.join(', ') || 'webhook deliveries'))))))));
}
