// Ironcrest's page for users: one ES module, no dependencies. It calls the same JSON
// routes as every other client, authenticated by the server-side session's cookie; every
// state-changing call carries the session's CSRF token. Data from the cluster (file
// names, job output) is only ever put in the page as text (textContent), never as HTML.

const FINAL_STATES = new Set(['COMPLETED', 'FAILED', 'CANCELLED', 'TIMEOUT', 'OUT_OF_MEMORY',
  'NODE_FAIL', 'PREEMPTED', 'BOOT_FAIL', 'DEADLINE', 'F']);
const TRANSFER_JOB_NAMES = new Set(['MoveFiles', 'CopyFiles', 'DeleteFiles', 'CompressFiles',
  'IngressFileTransfer', 'OutgressFileTransfer']);
const REFRESH_MS = 3000;

const session = { user: null, csrfToken: null };
let systems = [];
// Timers of the current view, stopped when the view changes.
let timers = [];

// ---------- DOM helpers ----------

/** An element with attributes (`on*` functions become listeners) and children (strings become text). */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (key === 'class') el.className = value;
    else if (key === 'value') el.value = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const main = () => document.getElementById('main');

function show(title, ...content) {
  document.title = `${title} - Ironcrest`;
  main().replaceChildren(h('h1', {}, title), ...content.flat().filter((c) => c !== null && c !== undefined && c !== false));
}

function banner(message, isError = false) {
  const el = document.getElementById('banner');
  el.className = isError ? 'error' : '';
  el.textContent = message || '';
}

function formatSize(bytes) {
  const n = Number(bytes);
  if (!Number.isFinite(n)) return String(bytes);
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = n / 1024;
  let i = 0;
  while (value >= 1024 && i < units.length - 1) { value /= 1024; i += 1; }
  return `${value.toFixed(1)} ${units[i]}`;
}

const formatTime = (epoch) => (epoch ? new Date(epoch * 1000).toLocaleString() : '');
const joinPath = (dir, name) => (dir.endsWith('/') ? dir + name : `${dir}/${name}`);
const parentOf = (path) => path.replace(/\/[^/]+\/?$/, '') || '/';
const baseName = (path) => path.replace(/\/+$/, '').split('/').pop();

// ---------- the API ----------

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

async function api(method, path, { body, query } = {}) {
  const url = new URL(path, window.location.origin);
  for (const [key, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== '') url.searchParams.set(key, value);
  }
  const headers = { Accept: 'application/json' };
  if (method !== 'GET') headers['X-CSRF-Token'] = session.csrfToken;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(url, {
    method, headers, credentials: 'same-origin', body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (response.status === 401) {
    signedOut('Your session has ended. Sign in again.');
    throw new ApiError(401, data);
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

const enc = encodeURIComponent;
const fsPath = (system, op) => `/filesystem/${enc(system)}/${op}`;

/** An XMLHttpRequest, for its upload progress events (fetch has none). */
function send(method, url, body, { headers = {}, onProgress } = {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, url);
    for (const [key, value] of Object.entries(headers)) xhr.setRequestHeader(key, value);
    xhr.upload.addEventListener('progress', (e) => onProgress && e.lengthComputable && onProgress(e.loaded, e.total));
    xhr.addEventListener('load', () => {
      if (xhr.status >= 200 && xhr.status < 300) resolve(xhr);
      else {
        let data = null;
        try { data = JSON.parse(xhr.responseText); } catch { data = { message: xhr.statusText || `HTTP ${xhr.status}` }; }
        reject(new ApiError(xhr.status, data));
      }
    });
    xhr.addEventListener('error', () => reject(new ApiError(0, { message: 'network error' })));
    xhr.send(body);
  });
}

// ---------- session ----------

function signedOut(message) {
  session.user = null;
  stopTimers();
  document.getElementById('nav').replaceChildren();
  document.getElementById('account').replaceChildren();
  show('Ironcrest',
    message ? h('p', { role: 'alert' }, message) : null,
    h('p', {}, 'Use the HPC centre\'s systems from your browser: files, jobs and transfers.'),
    h('p', {}, h('a', { class: 'button', href: '/ui/login', id: 'sign-in' }, 'Sign in')));
}

async function loadSession() {
  const response = await fetch('/ui/session', { credentials: 'same-origin' });
  if (!response.ok) return false;
  const data = await response.json();
  session.user = data.user;
  session.csrfToken = data.csrfToken;
  return true;
}

async function logout() {
  const response = await fetch('/ui/logout', {
    method: 'POST', credentials: 'same-origin', headers: { 'X-CSRF-Token': session.csrfToken },
  });
  const data = response.ok ? await response.json() : {};
  signedOut('You are signed out.');
  if (data.endSessionUrl) {
    main().append(h('p', {}, h('a', { href: data.endSessionUrl, id: 'idp-sign-out' },
      'Also sign out at the identity provider')));
  }
}

function renderChrome(route) {
  const nav = document.getElementById('nav');
  const first = systems[0]?.name;
  const link = (href, label, name) => h('a', { href, 'aria-current': route === name ? 'page' : null }, label);
  nav.replaceChildren(link('#/systems', 'Systems', 'systems'), ...(first ? [
    link(`#/files/${enc(first)}`, 'Files', 'files'),
    link(`#/jobs/${enc(first)}`, 'Jobs', 'jobs'),
    link(`#/transfers/${enc(first)}`, 'Transfers', 'transfers'),
  ] : []));
  document.getElementById('account').replaceChildren(
    h('span', { id: 'user' }, session.user),
    h('button', { type: 'button', id: 'sign-out', onclick: logout }, 'Sign out'));
}

// ---------- routing ----------

function stopTimers() {
  for (const timer of timers) clearInterval(timer);
  timers = [];
}

function every(ms, fn) {
  timers.push(setInterval(() => { if (!document.hidden) fn(); }, ms));
}

function parseRoute() {
  const hash = window.location.hash.replace(/^#\/?/, '');
  const [pathPart, queryPart = ''] = hash.split('?');
  const segments = pathPart.split('/').filter(Boolean).map(decodeURIComponent);
  return { segments, query: new URLSearchParams(queryPart) };
}

function go(hash) {
  if (window.location.hash === hash) route();
  else window.location.hash = hash;
}

async function route() {
  stopTimers();
  banner('');
  if (!session.user) return;
  const { segments, query } = parseRoute();
  const [view = 'systems', system, rest] = segments;
  renderChrome(view);
  try {
    switch (view) {
      case 'files': await filesView(system, query); break;
      case 'view': await fileView(system, query.get('path')); break;
      case 'jobs': await jobsView(system, query); break;
      case 'job': await jobView(system, rest); break;
      case 'submit': await submitView(system); break;
      case 'transfers': await transfersView(system); break;
      default: await systemsView();
    }
  } catch (err) {
    if (err.status !== 401) showError(err);
  }
  main().focus({ preventScroll: true });
}

function showError(err) {
  if (err.status === 503 && err.body && err.body.reason === 'maintenance') {
    show('Maintenance', h('div', { class: 'maintenance', role: 'alert' },
      h('p', {}, 'This system is under maintenance.'), h('p', {}, err.message)));
  } else {
    banner(`Error: ${err.message}`, true);
  }
}

function systemSelect(current, view) {
  if (systems.length < 2) return null;
  return h('label', {}, 'System ',
    h('select', { onchange: (e) => go(`#/${view}/${enc(e.target.value)}`) },
      systems.map((s) => h('option', { value: s.name, selected: s.name === current }, s.name))));
}

// ---------- systems ----------

async function systemsView() {
  let list;
  try {
    list = (await api('GET', '/status/systems')).systems;
  } catch (err) {
    if (err.status === 503 && err.body?.reason === 'maintenance') return showError(err);
    throw err;
  }
  systems = list;
  renderChrome('systems');
  const rows = list.map((system) => {
    const health = system.servicesHealth || [];
    const healthy = health.length > 0 && health.every((s) => s.healthy);
    return h('div', { class: 'card' },
      h('h2', {}, system.name),
      h('p', {}, 'Health: ', health.length === 0 ? h('span', { class: 'warn' }, 'not checked yet')
        : h('span', { class: healthy ? 'ok' : 'bad' }, healthy ? 'healthy' : 'degraded'),
      system.lastHealthCheck ? ` (checked ${new Date(system.lastHealthCheck).toLocaleString()})` : ''),
      h('div', { class: 'table-wrap' }, h('table', {},
        h('thead', {}, h('tr', {}, h('th', {}, 'Service'), h('th', {}, 'State'), h('th', { class: 'num' }, 'Latency'), h('th', {}, 'Message'))),
        h('tbody', {}, health.map((s) => h('tr', {},
          h('td', {}, s.serviceType + (s.path ? ` ${s.path}` : '')),
          h('td', {}, h('span', { class: s.healthy ? 'ok' : 'bad' }, s.healthy ? 'healthy' : 'unhealthy')),
          h('td', { class: 'num' }, s.latency == null ? '' : `${Number(s.latency).toFixed(2)} s`),
          h('td', {}, s.message || '')))))),
      h('p', { class: 'toolbar' },
        h('a', { href: `#/files/${enc(system.name)}` }, 'Files'),
        h('a', { href: `#/jobs/${enc(system.name)}` }, 'Jobs'),
        h('a', { href: `#/submit/${enc(system.name)}` }, 'Submit a job'),
        h('a', { href: `#/transfers/${enc(system.name)}` }, 'Transfers')));
  });
  show('Systems', rows.length ? rows : h('p', {}, 'No systems are configured.'));
  every(15000, async () => {
    if (parseRoute().segments[0] && parseRoute().segments[0] !== 'systems') return;
    try { systems = (await api('GET', '/status/systems')).systems; } catch { /* shown on next visit */ }
  });
}

async function ensureSystems() {
  if (systems.length === 0) systems = (await api('GET', '/status/systems')).systems;
}

async function homeOf(system) {
  await ensureSystems();
  const config = systems.find((s) => s.name === system);
  if (!config) throw new ApiError(404, { message: `System ${system} not found` });
  const fs = config.fileSystems.find((f) => f.defaultWorkDir) || config.fileSystems[0];
  return { config, home: fs ? joinPath(fs.path, session.user) : '/' };
}

// ---------- files ----------

async function filesView(system, query) {
  const { config, home } = await homeOf(system);
  const path = query.get('path') || home;
  const hidden = query.get('hidden') === '1';
  const sort = query.get('sort') || 'name';
  const here = (changes) => {
    const q = new URLSearchParams({ path, hidden: hidden ? '1' : '0', sort, ...changes });
    return `#/files/${enc(system)}?${q}`;
  };
  const listing = (await api('GET', fsPath(system, 'ops/ls'), { query: { path, showHidden: hidden } })).output;
  const compare = {
    name: (a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
    size: (a, b) => Number(b.size) - Number(a.size),
    modified: (a, b) => (a.lastModified < b.lastModified ? 1 : -1),
  }[sort] || (() => 0);
  listing.sort((a, b) => (b.type === 'd') - (a.type === 'd') || compare(a, b));

  const refresh = () => route();
  const uploads = h('ul', { class: 'uploads', 'aria-live': 'polite' });
  const fileInput = h('input', { type: 'file', id: 'upload-input', multiple: true,
    onchange: (e) => uploadAll(system, config, path, [...e.target.files], uploads).then(refresh) });
  const dropzone = h('div', {
    class: 'dropzone', id: 'dropzone',
    ondragover: (e) => { e.preventDefault(); dropzone.classList.add('over'); },
    ondragleave: () => dropzone.classList.remove('over'),
    ondrop: (e) => {
      e.preventDefault();
      dropzone.classList.remove('over');
      uploadAll(system, config, path, [...e.dataTransfer.files], uploads).then(refresh);
    },
  }, h('label', { for: 'upload-input' }, 'Upload files: drop them here or choose them '), fileInput);

  const pathInput = h('input', { id: 'path', value: path, size: 40, 'aria-label': 'Path' });
  const rows = listing.map((file) => fileRow(system, path, file, refresh));
  show(`Files on ${system}`,
    systemSelect(system, 'files'),
    h('form', { class: 'toolbar', onsubmit: (e) => { e.preventDefault(); go(here({ path: pathInput.value })); } },
      pathInput, h('button', { type: 'submit' }, 'Go'),
      path !== '/' ? h('a', { href: here({ path: parentOf(path) }), id: 'up' }, 'Up') : null,
      h('a', { href: here({ path: home }) }, 'Home')),
    h('div', { class: 'toolbar' },
      h('label', {}, h('input', { type: 'checkbox', id: 'show-hidden', checked: hidden,
        onchange: (e) => go(here({ hidden: e.target.checked ? '1' : '0' })) }), ' Show hidden files'),
      h('label', {}, 'Sort by ', h('select', { id: 'sort', onchange: (e) => go(here({ sort: e.target.value })) },
        ['name', 'size', 'modified'].map((k) => h('option', { value: k, selected: k === sort }, k)))),
      h('button', { type: 'button', id: 'mkdir', class: 'secondary', onclick: () => mkdir(system, path, refresh) }, 'New folder')),
    dropzone, uploads,
    h('div', { class: 'table-wrap' }, h('table', { id: 'listing' },
      h('caption', { class: 'skip' }, `Contents of ${path}`),
      h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', { class: 'num' }, 'Size'),
        h('th', { class: 'optional' }, 'Modified'), h('th', { class: 'optional' }, 'Permissions'), h('th', {}, 'Actions'))),
      h('tbody', {}, rows))),
    listing.length === 0 ? h('p', {}, 'This folder is empty.') : null);
}

function fileRow(system, dir, file, refresh) {
  const full = joinPath(dir, file.name);
  const isDir = file.type === 'd';
  const name = isDir
    ? h('a', { class: 'name', href: `#/files/${enc(system)}?${new URLSearchParams({ path: full })}` }, `${file.name}/`)
    : h('a', { class: 'name', href: `#/view/${enc(system)}?${new URLSearchParams({ path: full })}` }, file.name);
  const act = (label, fn, cls = 'secondary') => h('button', { type: 'button', class: cls, 'aria-label': `${label} ${file.name}`,
    'data-action': label.toLowerCase(), onclick: () => fn().then(refresh, (err) => showError(err)) }, label);
  return h('tr', { 'data-name': file.name },
    h('td', {}, name, file.linkTarget ? ` → ${file.linkTarget}` : ''),
    h('td', { class: 'num', 'data-size': file.size }, isDir ? '' : formatSize(file.size)),
    h('td', { class: 'optional' }, file.lastModified),
    h('td', { class: 'optional' }, `${file.type}${file.permissions}`),
    h('td', {}, h('div', { class: 'actions' },
      isDir ? null : h('a', { class: 'button secondary', href: `${fsPath(system, 'ops/download')}?${new URLSearchParams({ path: full })}`,
        download: file.name, 'aria-label': `Download ${file.name}` }, 'Download'),
      act('Rename', () => moveOrCopy(system, full, 'mv')),
      act('Copy', () => moveOrCopy(system, full, 'cp')),
      act('Chmod', () => chmod(system, full, file)),
      act('Delete', () => remove(system, full, file.name), 'danger'))));
}

async function mkdir(system, dir, refresh) {
  const name = window.prompt('Name of the new folder');
  if (!name) return;
  try {
    await api('POST', fsPath(system, 'ops/mkdir'), { body: { path: joinPath(dir, name), parent: false } });
    refresh();
  } catch (err) { showError(err); }
}

async function remove(system, path, name) {
  if (!window.confirm(`Delete ${name}? This cannot be undone.`)) return;
  await api('DELETE', fsPath(system, 'ops/rm'), { query: { path } });
  banner(`Deleted ${name}.`);
}

async function chmod(system, path, file) {
  const mode = window.prompt(`New mode of ${file.name} (octal, e.g. 640)`, '');
  if (!mode) return;
  await api('PUT', fsPath(system, 'ops/chmod'), { body: { path, mode } });
}

/** Renames/moves or copies by a transfer job, waiting for it to end. */
async function moveOrCopy(system, path, op) {
  const verb = op === 'mv' ? 'Move or rename' : 'Copy';
  const target = window.prompt(`${verb} ${baseName(path)} to (a name in this folder or a full path)`, baseName(path));
  if (!target || target === baseName(path)) return;
  const targetPath = target.startsWith('/') ? target : joinPath(parentOf(path), target);
  const { transferJob } = await api('POST', fsPath(system, `transfer/${op}`), { body: { sourcePath: path, targetPath } });
  banner(`${verb}: job ${transferJob.jobId} submitted…`);
  const job = await waitForJob(system, transferJob.jobId);
  const state = job.status.state;
  banner(`${verb}: job ${transferJob.jobId} ${state}.`, state !== 'COMPLETED');
}

async function waitForJob(system, jobId, onState) {
  for (let i = 0; i < 600; i += 1) {
    try {
      const [job] = (await api('GET', `/compute/${enc(system)}/jobs/${enc(jobId)}`)).jobs;
      if (onState) onState(job.status.state);
      if (FINAL_STATES.has(job.status.state)) return job;
    } catch (err) {
      if (err.status !== 404) throw err;
    }
    await new Promise((resolve) => { setTimeout(resolve, 1000); });
  }
  throw new ApiError(0, { message: `job ${jobId} did not end` });
}

async function uploadAll(system, config, dir, files, list) {
  for (const file of files) {
    const progress = h('progress', { max: 100, value: 0, 'aria-label': `Upload of ${file.name}` });
    const status = h('span', {}, 'starting');
    list.append(h('li', {}, h('span', { class: 'name' }, file.name), ` (${formatSize(file.size)}) `, status, progress));
    const onProgress = (done, total) => { progress.value = Math.round((100 * done) / total); };
    try {
      const limit = Number(config.dataOperation?.max_ops_file_size ?? 0);
      if (file.size <= limit || !config.dataOperation?.data_transfer) {
        status.textContent = 'uploading';
        const form = new FormData();
        form.append('file', file, file.name);
        const url = `${fsPath(system, 'ops/upload')}?${new URLSearchParams({ path: dir })}`;
        await send('POST', url, form, { headers: { 'X-CSRF-Token': session.csrfToken }, onProgress });
      } else {
        await stagedUpload(system, joinPath(dir, file.name), file, onProgress, (text) => { status.textContent = text; });
      }
      progress.value = 100;
      status.textContent = 'done';
    } catch (err) {
      status.textContent = `failed: ${err.message}`;
      status.className = 'bad';
    }
  }
}

/**
 * A file larger than the ops limit goes as pyfirecrest sends it: the server presigns one
 * URL per part of the S3 staging area, the browser PUTs the parts and completes the
 * multipart upload, and a transfer job moves the object to the cluster.
 */
async function stagedUpload(system, target, file, onProgress, onStatus) {
  onStatus('staging');
  const answer = await api('POST', fsPath(system, 'transfer/upload'), {
    body: { path: target, transferDirectives: { transferMethod: 's3', fileSize: file.size } },
  });
  const { partsUploadUrls, completeUploadUrl, maxPartSize } = answer.transferDirectives;
  const parts = [];
  for (let i = 0; i < partsUploadUrls.length; i += 1) {
    const chunk = file.slice(i * maxPartSize, Math.min(file.size, (i + 1) * maxPartSize));
    const xhr = await send('PUT', partsUploadUrls[i], chunk, {
      onProgress: (done) => onProgress(i * maxPartSize + done, file.size),
    });
    parts.push({ number: i + 1, etag: xhr.getResponseHeader('ETag') });
  }
  const doc = document.implementation.createDocument(null, 'CompleteMultipartUpload');
  for (const part of parts) {
    const el = doc.createElement('Part');
    const number = doc.createElement('PartNumber');
    number.textContent = String(part.number);
    const etag = doc.createElement('ETag');
    etag.textContent = part.etag;
    el.append(number, etag);
    doc.documentElement.append(el);
  }
  await send('POST', completeUploadUrl, new XMLSerializer().serializeToString(doc), {
    headers: { 'Content-Type': 'application/xml' },
  });
  const jobId = answer.transferJob.jobId;
  onStatus(`transfer job ${jobId} moving it to the cluster`);
  const job = await waitForJob(system, jobId, (state) => onStatus(`transfer job ${jobId}: ${state}`));
  if (job.status.state !== 'COMPLETED') throw new ApiError(0, { message: `transfer job ${jobId} ${job.status.state}` });
}

async function fileView(system, path) {
  const content = (await api('GET', fsPath(system, 'ops/view'), { query: { path } })).output;
  show(baseName(path),
    h('p', { class: 'toolbar' },
      h('a', { href: `#/files/${enc(system)}?${new URLSearchParams({ path: parentOf(path) })}` }, 'Back to the folder'),
      h('a', { class: 'button secondary', href: `${fsPath(system, 'ops/download')}?${new URLSearchParams({ path })}`, download: baseName(path) }, 'Download')),
    h('p', { class: 'name' }, path),
    h('pre', { id: 'file-content' }, content));
}

// ---------- jobs ----------

function stateBadge(state) {
  const cls = state === 'COMPLETED' ? 'ok' : FINAL_STATES.has(state) ? 'bad' : 'warn';
  return h('span', { class: `${cls} state` }, state);
}

async function jobsView(system, query) {
  await ensureSystems();
  const all = query.get('all') === '1';
  const name = query.get('name') || '';
  const window_ = query.get('window') || '24h';
  const here = (changes) => `#/jobs/${enc(system)}?${new URLSearchParams({ all: all ? '1' : '0', name, window: window_, ...changes })}`;
  const tbody = h('tbody', {});
  const load = async () => {
    const jobs = (await api('GET', `/compute/${enc(system)}/jobs`, { query: { allusers: all, name, time_window: window_ } })).jobs;
    jobs.sort((a, b) => Number(b.jobId) - Number(a.jobId));
    tbody.replaceChildren(...jobs.map((job) => h('tr', { 'data-job': job.jobId },
      h('td', {}, h('a', { href: `#/job/${enc(system)}/${enc(job.jobId)}` }, job.jobId)),
      h('td', { class: 'name' }, job.name),
      h('td', {}, stateBadge(job.status.state)),
      h('td', { class: 'optional' }, job.user || ''),
      h('td', { class: 'optional' }, job.partition),
      h('td', { class: 'optional' }, formatTime(job.time.start)))));
  };
  await load();
  const nameInput = h('input', { id: 'job-name-filter', value: name });
  show(`Jobs on ${system}`,
    systemSelect(system, 'jobs'),
    h('p', {}, h('a', { class: 'button', href: `#/submit/${enc(system)}`, id: 'new-job' }, 'Submit a job')),
    h('form', { class: 'toolbar', onsubmit: (e) => { e.preventDefault(); go(here({ name: nameInput.value })); } },
      h('label', {}, h('input', { type: 'checkbox', checked: all, id: 'all-users', onchange: (e) => go(here({ all: e.target.checked ? '1' : '0' })) }), ' All users'),
      h('label', { for: 'job-name-filter' }, 'Name'), nameInput,
      h('label', {}, 'Since ', h('select', { onchange: (e) => go(here({ window: e.target.value })) },
        ['1h', '8h', '24h', '3d', '7d'].map((w) => h('option', { value: w, selected: w === window_ }, w)))),
      h('button', { type: 'submit', class: 'secondary' }, 'Filter')),
    h('div', { class: 'table-wrap' }, h('table', { id: 'jobs' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Id'), h('th', {}, 'Name'), h('th', {}, 'State'),
        h('th', { class: 'optional' }, 'User'), h('th', { class: 'optional' }, 'Partition'), h('th', { class: 'optional' }, 'Started'))),
      tbody)));
  every(5000, () => load().catch(() => {}));
}

async function tailOf(system, path) {
  try {
    return (await api('GET', fsPath(system, 'ops/tail'), { query: { path, lines: 100 } })).output.content;
  } catch (err) {
    return err.status === 404 ? '(not written yet)' : `(${err.message})`;
  }
}

async function jobView(system, jobId) {
  const [[job], [meta]] = await Promise.all([
    api('GET', `/compute/${enc(system)}/jobs/${enc(jobId)}`).then((r) => r.jobs),
    api('GET', `/compute/${enc(system)}/jobs/${enc(jobId)}/metadata`).then((r) => r.jobs),
  ]);
  const state = h('dd', { id: 'job-state' }, stateBadge(job.status.state));
  const stdout = h('pre', { id: 'job-stdout' }, '…');
  const stderr = h('pre', { id: 'job-stderr' }, '…');
  const cancel = h('button', { type: 'button', class: 'danger', id: 'cancel-job', onclick: async () => {
    if (!window.confirm(`Cancel job ${jobId}?`)) return;
    try { await api('DELETE', `/compute/${enc(system)}/jobs/${enc(jobId)}`); banner(`Job ${jobId} cancelled.`); } catch (err) { showError(err); }
  } }, 'Cancel job');
  const refresh = async () => {
    const [current] = (await api('GET', `/compute/${enc(system)}/jobs/${enc(jobId)}`)).jobs;
    state.replaceChildren(stateBadge(current.status.state),
      current.status.exitCode == null ? '' : ` (exit code ${current.status.exitCode})`);
    if (meta.standardOutput) stdout.textContent = await tailOf(system, meta.standardOutput);
    if (meta.standardError && meta.standardError !== meta.standardOutput) {
      stderr.textContent = await tailOf(system, meta.standardError);
    }
    cancel.hidden = FINAL_STATES.has(current.status.state);
    return FINAL_STATES.has(current.status.state);
  };
  show(`Job ${jobId}`,
    h('p', {}, h('a', { href: `#/jobs/${enc(system)}` }, 'All jobs')),
    h('dl', {},
      h('dt', {}, 'Name'), h('dd', { class: 'name' }, job.name),
      h('dt', {}, 'State'), state,
      h('dt', {}, 'User'), h('dd', {}, job.user || ''),
      h('dt', {}, 'Account'), h('dd', {}, job.account || ''),
      h('dt', {}, 'Partition'), h('dd', {}, job.partition),
      h('dt', {}, 'Nodes'), h('dd', {}, job.nodes),
      h('dt', {}, 'Working directory'), h('dd', {}, job.workingDirectory),
      h('dt', {}, 'Output'), h('dd', {}, meta.standardOutput || ''),
      h('dt', {}, 'Error'), h('dd', {}, meta.standardError || '')),
    cancel,
    h('h2', {}, 'Output (last 100 lines)'), stdout,
    meta.standardError && meta.standardError !== meta.standardOutput
      ? [h('h2', {}, 'Errors (last 100 lines)'), stderr] : null,
    h('h2', {}, 'Script'), h('pre', { id: 'job-script' }, meta.script || '(not available)'));
  if (!(await refresh())) {
    every(REFRESH_MS, async () => {
      try { if (await refresh()) stopTimers(); } catch { /* next tick */ }
    });
  }
}

async function submitView(system) {
  const { home } = await homeOf(system);
  const [partitions, userinfo] = await Promise.all([
    api('GET', `/status/${enc(system)}/partitions`).then((r) => r.partitions).catch(() => []),
    api('GET', `/status/${enc(system)}/userinfo`).catch(() => ({ accounts: [] })),
  ]);
  const field = (id, label, input) => h('div', { class: 'field' }, h('label', { for: id }, label), input);
  const name = h('input', { id: 'job-name', value: 'ui-job' });
  const workdir = h('input', { id: 'job-workdir', value: home });
  const partition = h('select', { id: 'job-partition' }, h('option', { value: '' }, '(default)'),
    partitions.map((p) => h('option', { value: p.name }, `${p.name} (${p.partition})`)));
  const accounts = userinfo.accounts || [];
  const account = h('select', { id: 'job-account' }, h('option', { value: '' }, '(default)'),
    accounts.map((a) => h('option', { value: a.name, selected: a.default }, a.name)));
  const script = h('textarea', { id: 'job-script-input', rows: 12, spellcheck: 'false' },
    '#!/bin/bash\n#SBATCH --time=00:05:00\necho "Hello from $(hostname)"\n');
  show(`Submit a job on ${system}`,
    h('form', { id: 'submit-form', onsubmit: async (e) => {
      e.preventDefault();
      const job = {
        name: name.value, workingDirectory: workdir.value, script: script.value,
        partition: partition.value || undefined, account: account.value || undefined,
      };
      try {
        const { jobId } = await api('POST', `/compute/${enc(system)}/jobs`, { body: { job } });
        go(`#/job/${enc(system)}/${enc(jobId)}`);
      } catch (err) { showError(err); }
    } },
    field('job-name', 'Name', name),
    field('job-workdir', 'Working directory', workdir),
    field('job-partition', 'Partition', partition),
    field('job-account', 'Account', account),
    field('job-script-input', 'Script', script),
    h('button', { type: 'submit', id: 'submit-job' }, 'Submit')));
}

// ---------- transfers ----------

async function transfersView(system) {
  await ensureSystems();
  const tbody = h('tbody', {});
  const load = async () => {
    const jobs = (await api('GET', `/compute/${enc(system)}/jobs`, { query: { time_window: '7d' } })).jobs
      .filter((job) => TRANSFER_JOB_NAMES.has(job.name))
      .sort((a, b) => Number(b.jobId) - Number(a.jobId));
    tbody.replaceChildren(...jobs.map((job) => h('tr', { 'data-job': job.jobId },
      h('td', {}, h('a', { href: `#/job/${enc(system)}/${enc(job.jobId)}` }, job.jobId)),
      h('td', {}, job.name),
      h('td', {}, stateBadge(job.status.state)),
      h('td', { class: 'optional' }, formatTime(job.time.start)),
      h('td', { class: 'optional' }, job.time.elapsed == null ? '' : `${job.time.elapsed} s`))));
  };
  await load();
  show(`Transfers on ${system}`,
    systemSelect(system, 'transfers'),
    h('p', {}, 'Moves, copies and staged uploads and downloads run as jobs; their output says how they went.'),
    h('div', { class: 'table-wrap' }, h('table', { id: 'transfers' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Job'), h('th', {}, 'Kind'), h('th', {}, 'State'),
        h('th', { class: 'optional' }, 'Started'), h('th', { class: 'optional' }, 'Elapsed'))),
      tbody)));
  every(5000, () => load().catch(() => {}));
}

// ---------- start ----------

async function start() {
  window.addEventListener('hashchange', route);
  if (!(await loadSession())) {
    signedOut(window.location.hash === '#signin-failed' ? 'Signing in failed. Try again.' : null);
    return;
  }
  try { await ensureSystems(); } catch (err) { if (err.status !== 401) showError(err); }
  if (!session.user) return;
  await route();
  performance.mark('ironcrest-ready');
  document.body.dataset.ready = 'true';
}

start();
