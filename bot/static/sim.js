// The web simulator: each pane is one person on a simulated channel. What people type is
// only ever set as textContent (never innerHTML). New messages arrive by long-polling.
'use strict';

const WAIT = 20;  // seconds a long-poll may wait for news (the server allows up to 25)
let cast = {staff: [], residents_only: false, default_chief: null, pin: {lat: 30.2812, lon: 120.1195}};
let residents = 0;

function hhmm(date) {
  return (date || new Date()).toTimeString().slice(0, 5);
}

function staffAt(address) {
  return cast.staff.find((s) => s.address === address);
}

// Who a pane plays, in the words the pane's title and greeting use.
function roleOf(address, channel) {
  const via = channel === 'sim-sms' ? '短信 SMS（回复数字选择 / reply with numbers）' : 'Telegram（按钮 / buttons）';
  const staff = staffAt(address);
  if (staff) {
    const short = address.replace(/^web:/, '');
    return {
      title: `网格长 ${short} (${staff.scope_name})`,
      sub: `${staff.name || ''} · ${staff.scope} · ${via}`,
      greeting: `你好，${staff.name || short}！这个窗口扮演 网格长 ${short} (${staff.scope_name}，网格 ${staff.scope})。` +
        `该网格的新事件会发到这里；发送 /tasks 查看待办，/help 查看命令。\n` +
        `Hello! This pane plays the grid chief of ${staff.scope_name_en} (${staff.scope}): ` +
        `new cases of that grid arrive here. /tasks lists them, /help the commands.`,
    };
  }
  return {
    title: '居民 / resident',
    sub: `${address} · ${via}`,
    greeting: '你好！这个窗口扮演 居民 / resident。写下你看到的问题，例如「翠苑一区7幢门口垃圾堆了三天」，' +
      '或发送 /report；📍 发送位置，📷 发送照片。\n' +
      'Hello! This pane plays a resident: describe a problem (the example above), or send /report. ' +
      '/help lists the commands.',
  };
}

function addPane(name, channel) {
  const node = document.getElementById('pane').content.firstElementChild.cloneNode(true);
  const q = (selector) => node.querySelector(selector);
  const log = q('.log');
  let after = 0;
  let generation = 0;
  let controller = null;
  q('.who').value = name;
  q('.channel').value = channel;
  q('.lat').value = cast.pin.lat;
  q('.lon').value = cast.pin.lon;

  const target = () => ({channel: q('.channel').value, address: 'web:' + q('.who').value.trim()});

  // The log stays at its newest message while it is read there, also when the pane is
  // resized (a pane added beside it rewraps every bubble).
  let stuck = true;
  log.addEventListener('scroll', () => {
    stuck = log.scrollTop + log.clientHeight >= log.scrollHeight - 24;
  });
  new ResizeObserver(() => { if (stuck) log.scrollTop = log.scrollHeight; }).observe(log);

  // Again after the layout settled (buttons, fonts), so the newest message shows whole.
  function scrollDown() {
    stuck = true;
    log.scrollTop = log.scrollHeight;
    requestAnimationFrame(() => { log.scrollTop = log.scrollHeight; });
  }

  function bubble(cls, text, time) {
    const div = document.createElement('div');
    div.className = 'msg ' + cls;
    const body = document.createElement('div');
    body.className = 'body';
    body.textContent = text;
    div.appendChild(body);
    if (time !== null) {
      const stamp = document.createElement('time');
      stamp.textContent = time || hhmm();
      div.appendChild(stamp);
    }
    log.appendChild(div);
    scrollDown();
    return div;
  }

  function addImage(div, src, alt) {
    const img = document.createElement('img');
    img.src = src;
    img.alt = alt;
    img.onload = scrollDown;
    div.insertBefore(img, div.querySelector('time'));
  }

  // Only the newest menu can be pressed, as only it still means something to the bot.
  function disableOldButtons() {
    for (const b of log.querySelectorAll('.buttons button')) b.disabled = true;
  }

  function addButtons(div, buttons, requestLocation) {
    const row = document.createElement('div');
    row.className = 'buttons';
    for (const [label, data] of buttons) {
      const b = document.createElement('button');
      b.type = 'button';
      b.textContent = label;
      b.onclick = () => {
        for (const other of row.querySelectorAll('button')) other.disabled = true;
        b.classList.add('chosen');
        bubble('in', label);
        post({option: data});
      };
      row.appendChild(b);
    }
    if (requestLocation) {
      const b = document.createElement('button');
      b.type = 'button';
      b.textContent = '📍 发送位置 / send location';
      b.onclick = () => { b.disabled = true; sendLocation(); };
      row.appendChild(b);
    }
    div.insertBefore(row, div.querySelector('time'));
    scrollDown();
  }

  function show(m) {
    const place = m.location  // a case's place, sent to staff before the case text
      ? `📍 ${m.location.title} (${m.location.lat.toFixed(5)}, ${m.location.lon.toFixed(5)})\n` : '';
    const div = bubble('out', place + m.text, m.time);
    for (const [i, src] of (m.photo_urls || []).entries()) addImage(div, src, `照片 / photo ${i + 1}`);
    const buttons = m.buttons || [];
    if (buttons.length || m.request_location) {
      disableOldButtons();
      addButtons(div, buttons, m.request_location);
    }
  }

  async function complain(response) {
    let text = `HTTP ${response.status}`;
    try { text = (await response.json()).error || text; } catch (e) { /* not JSON */ }
    bubble('error', '⚠ ' + text);
  }

  async function post(body) {
    const r = await fetch('/sim/api/send', {method: 'POST', headers: {'Content-Type': 'application/json'},
      body: JSON.stringify(Object.assign(target(), body))});
    if (!r.ok) await complain(r);
  }

  function sendLocation() {
    const lat = q('.lat').value.trim();
    const lon = q('.lon').value.trim();
    bubble('in', `📍 ${lat}, ${lon}`);
    q('.loc').hidden = true;
    post({lat, lon});
  }

  async function listen(mine) {
    while (mine === generation && node.isConnected) {
      const t = target();
      controller = new AbortController();
      let r;
      try {
        r = await fetch('/sim/api/messages?' + new URLSearchParams(
          {channel: t.channel, address: t.address, after, wait: WAIT}), {signal: controller.signal});
      } catch (e) {
        if (mine !== generation) return;
        await new Promise((resolve) => setTimeout(resolve, 3000));  // the server is away
        continue;
      }
      if (mine !== generation) return;
      if (!r.ok) {
        await complain(r);
        if (r.status === 401 || r.status === 403) return;  // waiting will not help
        await new Promise((resolve) => setTimeout(resolve, 3000));
        continue;
      }
      for (const m of (await r.json()).messages) {
        after = Math.max(after, m.id);
        show(m);
      }
    }
  }

  function start() {
    generation += 1;
    if (controller) controller.abort();
    after = 0;
    log.textContent = '';
    const t = target();
    const role = roleOf(t.address, t.channel);
    q('.role').textContent = role.title;
    q('.sub').textContent = role.sub;
    bubble('system', role.greeting, null);
    listen(generation);
  }

  q('.compose').onsubmit = (event) => {
    event.preventDefault();
    const text = q('.text').value;
    if (!text.trim()) return;  // nothing to say: no empty bubble
    q('.text').value = '';
    bubble('in', text);
    post({text});
  };
  q('.pin').onclick = () => { q('.loc').hidden = !q('.loc').hidden; };
  q('.sendloc').onclick = sendLocation;
  q('.file').onchange = async () => {
    const input = q('.file');
    const file = input.files[0];
    if (!file) return;
    const div = bubble('in', '📷 ' + file.name);
    addImage(div, URL.createObjectURL(file), file.name);
    const form = new FormData();
    const t = target();
    form.append('channel', t.channel);
    form.append('address', t.address);
    form.append('file', file);
    input.value = '';  // choosing the same file again is a new photo, not a silent resend
    const r = await fetch('/sim/api/photo', {method: 'POST', body: form});
    if (!r.ok) await complain(r);
  };
  q('.who').onchange = q('.channel').onchange = start;
  q('.close').onclick = () => { generation += 1; if (controller) controller.abort(); node.remove(); };
  document.getElementById('panes').appendChild(node);
  start();
  return node;
}

async function main() {
  const notice = document.getElementById('notice');
  const r = await fetch('/sim/api/cast');
  if (!r.ok) {
    notice.hidden = false;
    notice.textContent = '⚠ ' + ((await r.json().catch(() => ({}))).error || `HTTP ${r.status}`);
    return;
  }
  cast = await r.json();
  const select = document.getElementById('add-staff');
  for (const s of cast.staff) {
    const option = document.createElement('option');
    option.value = s.address;
    option.textContent = `网格长 ${s.address.replace(/^web:/, '')} (${s.scope_name}) ${s.name || ''}`;
    select.appendChild(option);
  }
  select.hidden = !cast.staff.length;
  select.onchange = () => {
    if (select.value) addPane(select.value.replace(/^web:/, ''), 'sim-telegram');
    select.value = '';
  };
  if (cast.residents_only) {
    notice.hidden = false;
    notice.textContent = 'Telegram 或短信已接入：模拟器只扮演居民，真实事件只由真实工作人员处理。' +
      ' / A real channel is on: the simulator plays residents only.';
  }
  document.getElementById('add-resident').onclick = () => {
    residents += 1;
    addPane('resident-' + (residents + 1), 'sim-telegram');
  };
  addPane('resident', 'sim-telegram');
  if (cast.default_chief) addPane(cast.default_chief.replace(/^web:/, ''), 'sim-telegram');
}

main();
