// The console's entry point: sign-in, and the views behind #/jobs, #/jobs/<id>, #/try and
// #/usage. The fragment never holds the key; the views fetch what they show from the
// public API with the signed-in key, so a tenant sees what its key may see, nothing more.

import {ApiError, getJSON, isAbort, session, whenUnauthorized} from './api.js';
import {el} from './dom.js';
import {showJob} from './job.js';
import {showJobs} from './jobs.js';
import {showTry} from './try.js';
import {showUsage} from './usage.js';

const $ = (id) => document.getElementById(id);
let leaving = new AbortController(); // aborted when the view changes: streams and timers stop
let checking = false; // a key is being tried: its 401 is the sign-in form's to report

function signOut(message = '') {
  session.signOut();
  $('sign-in-error').textContent = message;
  route();
}

// Checks the key with a cheap authenticated call (usage over an empty range), which also
// names the account.
async function signIn(key) {
  session.signIn(key);
  checking = true;
  try {
    const now = Math.floor(Date.now() / 1000);
    const usage = await getJSON(`/v1/usage?from=${now}&to=${now}`);
    $('who').textContent = usage.account;
    return true;
  } catch (error) {
    session.signOut();
    $('sign-in-error').textContent =
      error instanceof ApiError && error.status === 401 ? 'That key is unknown or disabled.' : error.message;
    return false;
  } finally {
    checking = false;
  }
}

async function route() {
  leaving.abort();
  leaving = new AbortController();
  const signal = leaving.signal;
  const signedIn = Boolean(session.key());
  $('sign-in').hidden = signedIn;
  $('nav').hidden = !signedIn;
  $('sign-out').hidden = !signedIn;
  const view = $('view');
  view.replaceChildren();
  delete view.dataset.ready;
  view.hidden = !signedIn;
  if (!signedIn) {
    $('who').textContent = '';
    $('api-key').focus();
    return;
  }
  // #/jobs?status=running -> path "jobs", params status=running
  const [path, query = ''] = location.hash.replace(/^#\/?/, '').split('?');
  const params = new URLSearchParams(query);
  const parts = path.split('/');
  const name = parts[0] || 'jobs';
  for (const link of document.querySelectorAll('#nav a')) {
    link.classList.toggle('active', link.dataset.view === name);
  }
  try {
    if (name === 'jobs' && parts[1]) await showJob(view, decodeURIComponent(parts[1]), signal);
    else if (name === 'try') await showTry(view, params, signal);
    else if (name === 'usage') await showUsage(view, params, signal);
    else await showJobs(view, params, signal);
    if (!signal.aborted) view.dataset.ready = name; // the view drew what it fetched (tests wait on it)
  } catch (error) {
    if (!isAbort(error) && !signal.aborted) {
      view.append(el('p', {class: 'error', role: 'alert'}, error instanceof ApiError ? `${error.code}: ${error.message}` : error.message));
    }
  }
}

whenUnauthorized(() => checking || signOut('The API refused the key (401): sign in again.'));

$('sign-in-form').addEventListener('submit', async (event) => {
  event.preventDefault(); // the key is read here and never submitted by the browser
  const input = $('api-key');
  const key = input.value.trim();
  if (!key) return;
  if (await signIn(key)) {
    input.value = '';
    $('sign-in-error').textContent = '';
    if (!location.hash) location.hash = '#/jobs'; // its hashchange draws the jobs
    else route();
  }
});
$('sign-out').addEventListener('click', () => signOut());
window.addEventListener('hashchange', route);

if (session.key()) {
  signIn(session.key()).then(route);
} else {
  route();
}
