// A stacked bar chart in SVG, drawn with DOM calls (no library, no inline style: colours
// come from the stylesheet's .series-N classes).

import {el, money, svg} from './dom.js';

const WIDTH = 760;
const HEIGHT = 240;
const PAD = {left: 80, right: 10, top: 10, bottom: 30};
const SERIES = 8; // colours in console.css; more operations than that reuse them

// buckets: [{label, values: {series name: micros}}]; names: the series, in legend order.
export function stackedBars(buckets, names, caption) {
  const totals = buckets.map((b) => names.reduce((sum, n) => sum + (b.values[n] || 0), 0));
  const top = Math.max(1, ...totals);
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const step = plotW / Math.max(1, buckets.length);
  const y = (micros) => PAD.top + plotH - (micros / top) * plotH;
  const chart = svg('svg', {viewBox: `0 0 ${WIDTH} ${HEIGHT}`, class: 'chart', role: 'img', 'aria-label': caption});
  for (const fraction of [0, 0.5, 1]) {
    const at = y(top * fraction);
    chart.append(
      svg('line', {x1: PAD.left, x2: WIDTH - PAD.right, y1: at, y2: at, class: 'grid'}),
      svg('text', {x: PAD.left - 6, y: at + 4, class: 'axis', 'text-anchor': 'end'}, money(Math.round(top * fraction))));
  }
  buckets.forEach((bucket, i) => {
    let base = 0;
    names.forEach((name, s) => {
      const value = bucket.values[name] || 0;
      if (!value) return;
      const bar = svg('rect', {x: PAD.left + i * step + step * 0.15, width: step * 0.7,
        y: y(base + value), height: y(base) - y(base + value), class: `series-${s % SERIES}`});
      bar.append(svg('title', {}, `${bucket.label} ${name}: ${money(value)}`));
      chart.append(bar);
      base += value;
    });
    if (buckets.length <= 16 || i % 2 === 0) {
      chart.append(svg('text', {x: PAD.left + (i + 0.5) * step, y: HEIGHT - 10, class: 'axis', 'text-anchor': 'middle'}, bucket.label));
    }
  });
  const legend = el('ul', {class: 'legend'},
    names.map((name, s) => el('li', {}, el('span', {class: `swatch series-${s % SERIES}`}), name)));
  return el('figure', {class: 'chart-box'}, chart, legend, el('figcaption', {}, caption));
}
