// A form generated from an operation's JSON schema (GET /v1/operations), read back into a
// job spec. Each field becomes one widget: a select for an enum, a checkbox for a boolean,
// a number box for a number, a fieldset for a nested object (crop's rect), a text box for a
// string or an object key; anything richer (a pipeline's steps) is a JSON text area.
// A field left empty is left out of the spec, so the server's default applies.

import {el} from './dom.js';

export class FormError extends Error {}

function resolve(root, schema) {
  while (schema && schema.$ref) schema = root.$defs[schema.$ref.split('/').pop()];
  return schema || {};
}

const SCALARS = new Set(['string', 'integer', 'number']);

// The widget a property's schema calls for: {kind, ...what the widget needs}.
export function widgetOf(root, schema) {
  schema = resolve(root, schema);
  let options = [schema];
  if (schema.anyOf) {
    options = schema.anyOf.map((o) => resolve(root, o)).filter((o) => o.type !== 'null');
  }
  // An input: an object key, or {inline}/{inputKey}; the console names keys.
  if (options.some((o) => o.title === 'InputRef')) return {kind: 'key'};
  if (options.length === 1) {
    const only = options[0];
    if (only.enum) return {kind: 'enum', values: only.enum};
    if (only.type === 'boolean') return {kind: 'boolean'};
    if (only.type === 'integer' || only.type === 'number') {
      return {kind: 'number', integer: only.type === 'integer', min: only.minimum, max: only.maximum};
    }
    if (only.type === 'string') return {kind: 'text', pattern: only.pattern};
    if (only.type === 'object' && only.properties) return {kind: 'object', schema: only};
    if (only.type === 'array') {
      const of = widgetOf(root, only.items).kind;
      if (['enum', 'text', 'number', 'key'].includes(of)) return {kind: 'list', of};
    }
  } else if (options.some((o) => o.enum || SCALARS.has(o.type))) {
    // e.g. quality: 1 to 100 or "auto"; background: "#rrggbb" or {r, g, b, alpha}
    return {kind: 'mixed'};
  }
  return {kind: 'json'};
}

// A text box's words as a JSON value: a number if it reads as one, JSON if it looks like
// an object or array, else the text itself (`auto`, `#ff8800`).
function loose(text) {
  if (/^-?\d+(\.\d+)?$/.test(text)) return Number(text);
  if (/^[[{]/.test(text)) return JSON.parse(text);
  return text;
}

function hint(schema, widget) {
  const parts = [];
  if (widget.kind === 'number') {
    if (widget.min !== undefined && widget.max !== undefined && widget.max < 1e9) {
      parts.push(`${widget.min} to ${widget.max}`);
    } else if (widget.min !== undefined) parts.push(`at least ${widget.min}`);
  }
  if (widget.kind === 'list') parts.push('comma-separated');
  if (widget.kind === 'key') parts.push('an object key');
  if (widget.kind === 'json') parts.push('JSON');
  if (widget.kind === 'mixed') parts.push('a number, a word or JSON');
  if (schema.default !== undefined && schema.default !== null) {
    parts.push(`default ${JSON.stringify(schema.default)}`);
  }
  return parts.join('; ');
}

// One field: its row element and read(), which gives the value or undefined (left out).
function field(root, name, schema, path, required) {
  const widget = widgetOf(root, schema);
  const id = `f-${path.join('-')}`;
  const where = `$.${path.join('.')}`;
  const label = el('label', {for: id}, name, required ? el('span', {class: 'req'}, ' *') : null);
  const help = el('small', {class: 'hint'}, hint(resolve(root, schema), widget));

  if (widget.kind === 'object') {
    const inner = fields(root, widget.schema, path);
    const box = el('fieldset', {id}, el('legend', {}, name), inner.element);
    const read = () => {
      const value = inner.read();
      return Object.keys(value).length ? value : undefined;
    };
    return {element: box, read};
  }

  let input;
  let read;
  if (widget.kind === 'enum') {
    input = el('select', {id, name: where},
      el('option', {value: ''}, required ? '(choose)' : '(default)'),
      widget.values.map((v, i) => el('option', {value: String(i)}, String(v))));
    read = () => (input.value === '' ? undefined : widget.values[Number(input.value)]);
  } else if (widget.kind === 'boolean') {
    const initial = resolve(root, schema).default === true;
    input = el('input', {id, name: where, type: 'checkbox', checked: initial});
    read = () => (input.checked === initial ? undefined : input.checked);
  } else if (widget.kind === 'number') {
    input = el('input', {id, name: where, type: 'number', step: widget.integer ? 1 : 'any',
      min: widget.min, max: widget.max});
    read = () => {
      if (input.value.trim() === '') return undefined;
      const value = Number(input.value);
      if (!Number.isFinite(value) || (widget.integer && !Number.isInteger(value))) {
        throw new FormError(`${where} is ${widget.integer ? 'a whole number' : 'a number'}`);
      }
      return value;
    };
  } else if (widget.kind === 'json') {
    input = el('textarea', {id, name: where, rows: 3, spellcheck: 'false'});
    read = () => {
      const text = input.value.trim();
      if (!text) return undefined;
      try {
        return JSON.parse(text);
      } catch {
        throw new FormError(`${where} is not valid JSON`);
      }
    };
  } else {
    input = el('input', {id, name: where, type: 'text', spellcheck: 'false', pattern: widget.pattern});
    read = () => {
      const text = input.value.trim();
      if (!text) return undefined;
      if (widget.kind === 'list') {
        const items = text.split(',').map((s) => s.trim()).filter(Boolean);
        return widget.of === 'number' ? items.map(Number) : items;
      }
      if (widget.kind === 'mixed') {
        try {
          return loose(text);
        } catch {
          throw new FormError(`${where} is not valid JSON`);
        }
      }
      return text;
    };
  }
  const row = el('div', {class: `field field-${widget.kind}`}, label, input, help);
  return {element: row, read};
}

// The fields of an object schema, in the schema's order (required ones first).
function fields(root, schema, path, keep = () => true) {
  const required = new Set(schema.required || []);
  const names = Object.keys(schema.properties || {}).filter(keep);
  names.sort((a, b) => Number(required.has(b)) - Number(required.has(a)));
  const made = names.map((name) => [name, field(root, name, schema.properties[name], [...path, name], required.has(name))]);
  const element = el('div', {class: 'fields'}, made.map(([, f]) => f.element));
  const read = () => {
    const value = {};
    for (const [name, f] of made) {
      const v = f.read();
      if (v !== undefined) value[name] = v;
    }
    return value;
  };
  return {element, read};
}

// A docstring's `code` spans as <code>, the rest as text.
function prose(text) {
  return text.split('`').map((part, i) => (i % 2 ? el('code', {}, part) : part));
}

// The form of an operation's spec, without the fields in `skip` (the caller fills them).
// Optional fields in `shared` (output format, quality, webhook...: the same in every
// operation) are tucked under a disclosure, so the operation's own fields come first.
export function specForm(rootSchema, skip, shared = new Set()) {
  const spec = resolve(rootSchema, rootSchema);
  const required = new Set(spec.required || []);
  const tucked = (name) => shared.has(name) && !required.has(name);
  const own = fields(rootSchema, spec, [], (n) => !skip.includes(n) && !tucked(n));
  const more = fields(rootSchema, spec, [], (n) => !skip.includes(n) && tucked(n));
  const element = el('div', {class: 'spec-form'},
    spec.description ? el('p', {class: 'description'}, prose(spec.description)) : null, own.element,
    more.element.childElementCount
      ? el('details', {class: 'more'}, el('summary', {}, 'Output and shared options'), more.element)
      : null);
  return {element, read: () => ({...own.read(), ...more.read()}),
    hasInput: 'input' in (spec.properties || {}), needsInput: required.has('input')};
}
