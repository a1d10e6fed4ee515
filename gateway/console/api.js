// The public API, called with the signed-in key. The key lives in this tab's sessionStorage
// (gone when the tab closes, not shared with other tabs) and travels only in the
// Authorization header: never in a URL, so no log, history entry or Referer carries it.

import {sseParser} from './sse.js';

const KEY = 'imagefleet.apiKey';

export const session = {
  key: () => sessionStorage.getItem(KEY),
  signIn: (key) => sessionStorage.setItem(KEY, key),
  signOut: () => sessionStorage.removeItem(KEY),
};

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// Called when the API answers 401: the key was revoked or mistyped (console.js signs out).
let onUnauthorized = () => {};
export function whenUnauthorized(handler) {
  onUnauthorized = handler;
}

function headers(extra = {}) {
  return {Authorization: `Bearer ${session.key()}`, ...extra};
}

async function failure(response) {
  let code = `HTTP_${response.status}`;
  let message = response.statusText;
  try {
    const body = await response.json();
    code = body.error.code;
    message = body.error.message;
  } catch {
    // not the API's error envelope: keep the HTTP status
  }
  if (response.status === 401) onUnauthorized(message);
  return new ApiError(response.status, code, message);
}

async function send(method, path, {json, body, type, signal} = {}) {
  const extra = {};
  if (json !== undefined) {
    extra['Content-Type'] = 'application/json';
    body = JSON.stringify(json);
  } else if (type) extra['Content-Type'] = type;
  const response = await fetch(path, {method, headers: headers(extra), body, signal, cache: 'no-store'});
  if (!response.ok) throw await failure(response);
  return response;
}

export async function getJSON(path, signal) {
  return (await send('GET', path, {signal})).json();
}

export async function postJSON(path, json, signal) {
  const response = await send('POST', path, {json, signal});
  return {status: response.status, body: await response.json()};
}

export async function del(path) {
  return (await send('DELETE', path)).json();
}

// An object key as a path: each segment escaped, the slashes kept.
export function objectPath(key) {
  return `/v1/objects/${key.split('/').map(encodeURIComponent).join('/')}`;
}

export async function putObject(key, file) {
  const type = file.type || 'application/octet-stream';
  return (await send('PUT', objectPath(key), {body: file, type})).json();
}

// An object shown in an <img>: fetched with the key, then given a blob: URL that is revoked
// when `signal` aborts (the view that showed it was left).
export async function objectURL(key, signal) {
  const blob = await (await send('GET', objectPath(key), {signal})).blob();
  const url = URL.createObjectURL(blob);
  signal.addEventListener('abort', () => URL.revokeObjectURL(url), {once: true});
  return url;
}

// Follow a job's event stream until it ends or `signal` aborts: onJob(job) for each state
// change. Resolves when the stream ends; an abort rejects with an AbortError.
export async function followJob(jobId, onJob, signal) {
  const path = `/v1/jobs/${encodeURIComponent(jobId)}/events`;
  const response = await send('GET', path, {signal});
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  const parser = sseParser((event) => onJob(JSON.parse(event.data)));
  for (;;) {
    const {value, done} = await reader.read();
    if (done) return;
    parser.push(value);
  }
}

export function isAbort(error) {
  return error && error.name === 'AbortError';
}
