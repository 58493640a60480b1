"""The review page's style and keyboard script. Served (http:), each verdict is POSTed to the review
server, one at a time in order so the file's last line is the last key pressed; opened as a file,
verdicts stay in the page (and the browser's storage) until downloaded as verdicts.jsonl."""

REVIEW_CSS = """
header{position:sticky;top:0;z-index:2;display:flex;flex-wrap:wrap;gap:14px;align-items:center}
header input{width:110px} #progress{font-weight:bold;font-size:16px} #status.bad{color:#f99;font-weight:bold}
.keys{font-size:12px;color:#ddd} kbd{border:1px solid #888;border-radius:3px;padding:0 4px;background:#fff;color:#222}
.rv{margin:12px 0;padding:4px;border:3px solid transparent;border-radius:6px;width:fit-content;max-width:100%}
.rv.current{border-color:#36f;background:#e6edff}
.rvbar{font-size:15px;padding:4px 8px;background:#ddd;border-radius:4px;margin-bottom:4px}
.rv.v-keep .rvbar{background:#bfe6bf} .rv.v-reject .rvbar{background:#f3c0c0}
.rv-note input{width:640px;font-size:14px;margin-top:4px}
"""

REVIEW_SCRIPT = r"""
(function(){
  var data = JSON.parse(document.getElementById('review-data').textContent);
  var cards = [].slice.call(document.querySelectorAll('.rv'));
  var served = location.protocol === 'http:' || location.protocol === 'https:';
  var storeKey = 'review:' + data.run;
  var state = {};   // sample_id -> {verdict, score, note, at, reviewer}
  var current = 0;
  var queue = Promise.resolve();
  var reviewer = document.getElementById('reviewer');
  var statusLine = document.getElementById('status');
  try { reviewer.value = localStorage.getItem('review:reviewer') || ''; } catch (e) {}
  reviewer.addEventListener('change', function(){ try { localStorage.setItem('review:reviewer', reviewer.value); } catch (e) {} });
  reviewer.addEventListener('keydown', function(e){ if (e.key === 'Enter' || e.key === 'Escape') reviewer.blur(); });

  function indexOf(sid){ for (var i = 0; i < cards.length; i++) if (cards[i].dataset.sid === sid) return i; return -1; }
  function say(text, bad){ statusLine.textContent = text; statusLine.classList.toggle('bad', !!bad); }
  function line(sid){
    var s = state[sid];
    return {sample_id: sid, run: data.run, verdict: s.verdict, score: s.score == null ? null : s.score,
            note: s.note || '', task: cards[indexOf(sid)].dataset.task, reviewer: s.reviewer || null, at: s.at};
  }
  function render(i){
    var c = cards[i], s = state[c.dataset.sid] || {};
    c.classList.toggle('v-keep', s.verdict === 'keep');
    c.classList.toggle('v-reject', s.verdict === 'reject');
    var text = s.verdict ? s.verdict.toUpperCase() : 'not reviewed';
    if (s.score) text += ' · score ' + s.score;
    if (s.note) text += ' · note: ' + s.note;
    if (s.failed) text += ' · NOT SAVED';
    else if (s.pending) text += ' · saving';
    c.querySelector('.rv-state').textContent = text;
  }
  function progress(){
    var done = cards.filter(function(c){ var s = state[c.dataset.sid]; return s && s.verdict; }).length;
    document.getElementById('progress').textContent = 'reviewed ' + done + ' of ' + cards.length;
  }
  function focusCard(i, scroll){
    if (!cards.length) return;
    current = Math.max(0, Math.min(cards.length - 1, i));
    cards.forEach(function(c, j){ c.classList.toggle('current', j === current); });
    if (scroll !== false) cards[current].scrollIntoView({block: 'center'});
  }
  function persist(){
    if (served) return;   // served: the server's file is the record
    try { localStorage.setItem(storeKey, JSON.stringify(state)); } catch (e) {}
  }
  function send(sid){
    var s = state[sid], body = JSON.stringify(line(sid));
    s.pending = (s.pending || 0) + 1;
    queue = queue.then(function(){
      return fetch('verdicts', {method: 'POST', headers: {'Content-Type': 'application/json'}, body: body})
        .then(function(r){ return r.json().then(function(b){ if (!r.ok) throw new Error(b.error || ('HTTP ' + r.status)); }); })
        .then(function(){ s.failed = false; say('saved ' + sid); },
              function(e){ s.failed = true; say('NOT SAVED ' + sid + ': ' + e.message, true); })
        .then(function(){ s.pending -= 1; render(indexOf(sid)); });
    });
  }
  function record(changes){
    var sid = cards[current].dataset.sid, s = state[sid] || (state[sid] = {});
    for (var k in changes) s[k] = changes[k];
    s.at = new Date().toISOString();
    s.reviewer = reviewer.value.trim() || null;
    if (s.verdict && served) send(sid);   // a score or a note before the verdict waits for it
    render(current); progress(); persist();
  }
  function openNote(){
    var c = cards[current], box = c.querySelector('.rv-note'), input = box.querySelector('input');
    var s = state[c.dataset.sid] || {};
    box.classList.remove('hidden');
    input.value = s.note || '';
    input.focus();
  }
  cards.forEach(function(c, i){
    var box = c.querySelector('.rv-note'), input = box.querySelector('input');
    input.addEventListener('keydown', function(e){
      if (e.key === 'Enter') { record({note: input.value.trim()}); }
      else if (e.key !== 'Escape') return;
      e.preventDefault(); e.stopPropagation();
      box.classList.add('hidden'); input.blur(); focusCard(i, false);
    });
    c.addEventListener('click', function(e){ if (e.target !== input) focusCard(i, false); });
  });
  document.addEventListener('keydown', function(e){
    var tag = e.target.tagName, k = e.key;
    if (tag === 'INPUT' || tag === 'TEXTAREA' || e.ctrlKey || e.metaKey || e.altKey) return;
    if ((tag === 'BUTTON' || tag === 'SUMMARY') && (k === 'Enter' || k === ' ')) return;   // their own click
    if (k === 'j') focusCard(current + 1);
    else if (k === 'k') focusCard(current - 1);
    else if (k === 'y') record({verdict: 'keep'});
    else if (k === 'n') record({verdict: 'reject'});
    else if (k >= '1' && k <= '5') record({score: Number(k)});
    else if (k === '0') record({score: null});
    else if (k === 'c' || k === 'Enter') openNote();
    else if (k === 'g') { var d = cards[current].querySelector('details'); if (d) d.open = !d.open; }
    else return;
    e.preventDefault();
  });
  document.getElementById('download').addEventListener('click', function(){
    var lines = cards.map(function(c){ return c.dataset.sid; })
      .filter(function(sid){ return state[sid] && state[sid].verdict; })
      .map(function(sid){ return JSON.stringify(line(sid)) + '\n'; });
    var a = document.createElement('a');
    a.href = URL.createObjectURL(new Blob(lines, {type: 'application/x-ndjson'}));
    a.download = 'verdicts.jsonl';
    document.body.appendChild(a); a.click(); a.remove();
    this.blur();   // the keys go back to the cards
  });
  function start(){
    cards.forEach(function(c, i){ render(i); });
    progress();
    var open = cards.findIndex(function(c){ var s = state[c.dataset.sid]; return !(s && s.verdict); });
    focusCard(open < 0 ? 0 : open, open > 0);
    document.body.dataset.ready = '1';
  }
  function restore(text){   // the latest line per sample_id, as everywhere else
    text.split('\n').forEach(function(l){
      if (!l.trim()) return;
      try { var v = JSON.parse(l); } catch (e) { return; }
      if (v.run !== data.run || indexOf(v.sample_id) < 0) return;
      state[v.sample_id] = {verdict: v.verdict, score: v.score, note: v.note, at: v.at, reviewer: v.reviewer};
    });
  }
  if (served) {
    say('each verdict is saved to ' + data.verdicts);
    fetch('verdicts.jsonl', {cache: 'no-store'})
      .then(function(r){ return r.ok ? r.text() : ''; }, function(){ return ''; })
      .then(function(text){ restore(text); start(); });
  } else {
    say('opened as a file: verdicts stay in this page; download them, then `review import`');
    try { state = JSON.parse(localStorage.getItem(storeKey) || '{}') || {}; } catch (e) { state = {}; }
    start();
  }
})();
"""
