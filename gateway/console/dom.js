// DOM and formatting helpers shared by the views. Everything the API returns is put on the
// page as text (textContent, attributes), never parsed as HTML: a job's spec or error is
// data its owner wrote.

// el('a', {href: '#/jobs', class: 'link'}, 'text', child, ...): an element with attributes
// and children (strings become text nodes; null and false are skipped).
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === 'dataset') Object.assign(node.dataset, value);
    else if (name === 'on') {
      for (const [event, handler] of Object.entries(value)) node.addEventListener(event, handler);
    } else node.setAttribute(name, value === true ? '' : String(value));
  }
  append(node, children);
  return node;
}

export function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// Replace a node's children (null and false skipped, unlike replaceChildren's "null").
export function fill(node, ...children) {
  node.replaceChildren();
  return append(node, children);
}

// SVG elements need their namespace (the usage chart).
export function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  return append(node, children);
}

// Micro-dollars as dollars, exactly: integer arithmetic, six decimals ($0.000300).
export function money(micros) {
  const sign = micros < 0 ? '-' : '';
  const abs = Math.abs(micros);
  return `${sign}$${Math.floor(abs / 1e6)}.${String(abs % 1e6).padStart(6, '0')}`;
}

// A duration in seconds, short: 42 s, 5 min, 3 h, 2 d.
export function duration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h`;
  return `${Math.floor(s / 86400)} d`;
}

export function ageOf(isoTime) {
  return duration((Date.now() - Date.parse(isoTime)) / 1000);
}

export function when(isoTime) {
  return isoTime ? new Date(isoTime).toLocaleString() : '—';
}

// JSON for a <pre>, with inline image data shortened (it can be megabytes of base64).
export function pretty(value) {
  return JSON.stringify(
    value,
    (key, v) =>
      (key === 'data_base64' || key === 'inline') && typeof v === 'string' && v.length > 80
        ? `${v.slice(0, 40)}… (${v.length} characters)`
        : v,
    2,
  );
}

export const TERMINAL = new Set(['succeeded', 'failed', 'canceled']);

export function statusBadge(status) {
  return el('span', {class: `status status-${status}`, dataset: {status}}, status);
}

// What a job costs so far: the captured charge once it succeeded, the hold before.
export function cost(billing) {
  if (billing.state === 'captured') {
    return {micros: billing.charged_micros, text: money(billing.charged_micros)};
  }
  if (billing.state === 'held') {
    return {micros: billing.quoted_micros, text: `${money(billing.quoted_micros)} held`};
  }
  return {micros: 0, text: `${money(0)} (released)`};
}
