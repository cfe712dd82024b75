// The home page: one card per provider, token expiry counting down, connect /
// disconnect, a call to the provider's API through the proxy, the background job's last
// results, the latest refresh events.
const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export function homePage({ providers, apiSamples, notices, signIn, expirable = [] }) {
  const cards = providers
    .map((name) => {
      const sample = apiSamples[name];
      return `<section class="card" data-provider="${escape(name)}">
  <h2>${escape(name)} <span class="badge" data-role="state">…</span></h2>
  <p data-role="expiry"></p>
  <p class="actions">
    <a class="button" data-role="connect" href="/auth/${escape(name)}?returnTo=%2F">${name === signIn ? 'Sign in' : 'Connect'}</a>
    <button data-role="disconnect" type="button">Disconnect</button>
    ${expirable.includes(name) ? '<button data-role="expire" type="button" title="The sandbox forgets this token: the next call is refused, and the keeper refreshes and retries">Expire at provider</button>' : ''}
    ${sample ? `<button data-role="call" type="button" data-method="${escape(sample.method)}" data-path="${escape(sample.path)}" data-body="${escape(sample.body ?? '')}">Call API</button>` : ''}
  </p>
  ${sample ? `<p class="sample"><code>${escape(sample.method)} ${escape(decodeURIComponent(sample.path))}</code>${sample.body ? ` <code>${escape(sample.body)}</code>` : ''}</p>` : ''}
  <pre data-role="answer" hidden></pre>
</section>`;
    })
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>oauth-keeper example</title>
<style>
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1b1f24;background:#f6f8fa}
header{display:flex;justify-content:space-between;align-items:center}
.notice{background:#fff8c5;border:1px solid #d4a72c;border-radius:6px;padding:.5rem .8rem;margin:.3rem 0;font-size:.9rem}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(17rem,1fr));gap:1rem;margin:1rem 0}
.card{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:1rem;min-width:0;overflow-wrap:anywhere}
.sample{font-size:.8rem;color:#57606a}
[hidden]{display:none!important}
.card h2{margin:.2rem 0 .6rem;font-size:1.2rem;display:flex;justify-content:space-between}
.badge{font-size:.8rem;padding:.1rem .5rem;border-radius:1rem;background:#eaeef2}
.badge.on{background:#dafbe1;color:#116329}.badge.off{background:#ffebe9;color:#a40e26}
.button,button{display:inline-block;font:inherit;font-size:.9rem;padding:.35rem .8rem;border-radius:6px;border:1px solid #d0d7de;background:#f6f8fa;color:inherit;text-decoration:none;cursor:pointer;margin:.15rem 0}
.button{background:#1f883d;color:#fff;border-color:#1a7f37}
pre{background:#0d1117;color:#e6edf3;padding:.6rem;border-radius:6px;overflow:auto;max-height:14rem;font-size:.8rem}
table{border-collapse:collapse;width:100%;background:#fff;font-size:.85rem}td,th{border:1px solid #d0d7de;padding:.3rem .5rem;text-align:left}
</style></head>
<body>
<header><h1>oauth-keeper example</h1>
<form method="post" action="/logout"><button type="submit" id="logout">Log out</button></form></header>
${notices.map((n) => `<p class="notice">${escape(n)}</p>`).join('\n')}
<p id="user">Not signed in.</p>
<p class="sample">${signIn ? `Sign in with <b>${escape(signIn)}</b>; ${escape(providers.filter((p) => p !== signIn).join(' and '))} are connected to the signed-in account and never replace who is signed in (the keeper's <code>logIn</code> option).` : ''}</p>
<div class="cards">
${cards}
</div>
<h2>Background job</h2>
<p class="sample">Every few seconds, without any browser, the app calls each connected provider's API for your account (<code>keeper.forOwner(account).fetch(...)</code>).</p>
<table><thead><tr><th>provider</th><th>last answer</th></tr></thead><tbody id="job"><tr><td colspan="2">no run yet</td></tr></tbody></table>
<p class="sample" id="job-at"></p>
<h2>Latest refresh events</h2>
<p class="sample">Sandbox access tokens live 90 seconds and are refreshed 60 seconds before they expire, so the background job's calls refresh them within a minute; <b>Expire at provider</b> makes the next call be refused instead, and the keeper refreshes and retries it once.</p>
<table><thead><tr><th>time</th><th>event</th><th>provider</th><th>details</th></tr></thead><tbody id="events"><tr><td colspan="4">none yet</td></tr></tbody></table>
<script>
let status = { providers: {}, events: [] };
const fmt = (ms) => { const s = Math.max(0, Math.round(ms / 1000)); const h = Math.floor(s / 3600); const m = Math.floor((s % 3600) / 60); return (h ? h + 'h ' : '') + m + 'm ' + String(s % 60).padStart(2, '0') + 's'; };
function render() {
  document.getElementById('user').textContent = status.user ? 'Signed in as ' + (status.user.displayName || status.user.id) + ' (' + status.user.provider + ')' : 'Not signed in.';
  for (const card of document.querySelectorAll('.card')) {
    const p = status.providers[card.dataset.provider] || { connected: false };
    const badge = card.querySelector('[data-role=state]');
    badge.textContent = p.connected ? 'connected' : 'not connected';
    badge.className = 'badge ' + (p.connected ? 'on' : 'off');
    card.querySelector('[data-role=connect]').hidden = p.connected;
    card.querySelector('[data-role=disconnect]').hidden = !p.connected;
    const expire = card.querySelector('[data-role=expire]'); if (expire) expire.hidden = !p.connected;
    const call = card.querySelector('[data-role=call]'); if (call) call.hidden = !p.connected;
    const expiry = card.querySelector('[data-role=expiry]');
    expiry.textContent = !p.connected ? '' : p.expiresAt ? 'Token expires in ' + fmt(new Date(p.expiresAt) - Date.now()) + ' (scope: ' + (p.scope || '—') + ')' : 'Token never expires (scope: ' + (p.scope || '—') + ')';
  }
  const rows = status.events.map((e) => '<tr><td>' + e.at.slice(11, 19) + '</td><td>' + e.event + '</td><td>' + e.provider + '</td><td>' + JSON.stringify(Object.fromEntries(Object.entries(e).filter(([k]) => !['at','event','provider'].includes(k)))) + '</td></tr>');
  document.getElementById('events').innerHTML = rows.join('') || '<tr><td colspan="4">none yet</td></tr>';
  const job = status.job;
  const jobRows = job ? Object.entries(job.calls).map(([name, c]) => {
    const cell = c.error ? c.error + (c.reconnect ? ' (connect again)' : '') : 'HTTP ' + c.status + ', ' + c.bytes + ' bytes';
    return '<tr data-provider="' + name + '"><td>' + name + '</td><td>' + cell + '</td></tr>';
  }) : [];
  document.getElementById('job').innerHTML = jobRows.join('') || '<tr><td colspan="2">no run yet</td></tr>';
  document.getElementById('job-at').textContent = job ? 'Last run at ' + job.at.slice(11, 19) : '';
}
async function refresh() { status = await (await fetch('/status', { headers: { accept: 'application/json' } })).json(); render(); document.body.dataset.ready = '1'; }
for (const card of document.querySelectorAll('.card')) {
  const name = card.dataset.provider;
  card.querySelector('[data-role=disconnect]').addEventListener('click', async () => { await fetch('/disconnect/' + name, { method: 'POST' }); await refresh(); });
  const expire = card.querySelector('[data-role=expire]');
  if (expire) expire.addEventListener('click', async () => { await fetch('/sandbox/' + name + '/expire', { method: 'POST' }); await refresh(); });
  const call = card.querySelector('[data-role=call]');
  if (call) call.addEventListener('click', async () => {
    const out = card.querySelector('[data-role=answer]');
    const init = { method: call.dataset.method, headers: { accept: 'application/json' } };
    if (call.dataset.body) { init.body = call.dataset.body; init.headers['content-type'] = 'application/json'; }
    const r = await fetch(call.dataset.path, init);
    const text = await r.text();
    let shown = text; try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch {}
    out.textContent = 'HTTP ' + r.status + '\\n' + shown; out.hidden = false; out.dataset.status = String(r.status);
    await refresh();
  });
}
refresh(); setInterval(render, 1000); setInterval(refresh, 5000);
</script>
</body></html>`;
}
