"""HTML pieces of the run report: page frame, CSS/SVG charts, the card. Every text goes through
`esc`; nothing here reads the run folder."""

from __future__ import annotations

import html
import json
from typing import Any, Iterable

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#f3f3f3;color:#222}
header,main{padding:8px 16px} header{background:#223;color:#fff} header a{color:#bcf;margin-right:12px}
table{border-collapse:collapse;background:#fff;margin:6px 0} td,th{border:1px solid #ccc;padding:3px 7px;text-align:left}
pre{background:#fff;border:1px solid #ccc;padding:8px;overflow:auto;max-height:420px}
.bars{background:#fff;border:1px solid #ccc;padding:6px;margin:6px 0;max-width:640px}
.bar{display:flex;align-items:center;margin:2px 0} .bar span.l{width:150px;font-size:12px}
.bar span.b{background:#4a7;height:14px;display:inline-block;min-width:1px} .bar span.n{margin-left:6px;font-size:12px}
.hists{display:flex;flex-wrap:wrap;gap:10px}
.cards{display:flex;flex-wrap:wrap;gap:12px}
.card{background:#fff;border:1px solid #bbb;border-radius:4px;padding:8px;width:fit-content;max-width:100%}
.card.s-rejected{border-left:6px solid #d55} .card.s-ok{border-left:6px solid #4a7}
.card.s-error,.card.s-skipped{border-left:6px solid #999} .card.kept{outline:3px solid #fc3}
.imgs{display:flex;gap:6px;align-items:flex-start} .imgs figure{margin:0;font-size:11px;text-align:center}
.imgs img{max-width:256px;max-height:256px;display:block}
.ba{position:relative;display:inline-block;line-height:0}
.ba .before{position:absolute;top:0;left:0;width:50%;max-width:100%;height:100%;overflow:hidden;resize:horizontal;border-right:2px solid #fff}
.ba .before img{max-width:none}
.gates td{font-size:12px;padding:1px 5px} .fail{color:#c22;font-weight:bold} .pass{color:#272}
.nav a{margin-right:8px} .controls button{margin-right:4px} .hidden{display:none}
"""

# Filter and sort only the cards already on the page; the page reads fine without it.
SCRIPT = """
(function(){
  var box=document.querySelector('.cards'); if(!box) return;
  var cards=[].slice.call(box.querySelectorAll('.card'));
  document.querySelectorAll('.controls button[data-filter]').forEach(function(b){
    b.addEventListener('click',function(){
      var f=b.getAttribute('data-filter');
      cards.forEach(function(c){
        var show=f==='all'||c.classList.contains('s-'+f)||(f==='kept'&&c.classList.contains('kept'))||
          (f==='error'&&c.classList.contains('s-skipped'));
        c.classList.toggle('hidden',!show);
      });
    });
  });
  document.querySelectorAll('.controls button[data-sort]').forEach(function(b){
    b.addEventListener('click',function(){
      var dir=b.getAttribute('data-sort')==='desc'?-1:1;
      cards.sort(function(a,c){
        var x=parseFloat(a.getAttribute('data-score')), y=parseFloat(c.getAttribute('data-score'));
        if(isNaN(x)) return 1; if(isNaN(y)) return -1; return dir*(x-y);
      });
      cards.forEach(function(c){box.appendChild(c);});
    });
  });
})();
"""


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def page(title: str, nav: str, body: str, script: bool = False) -> str:
    tail = f"<script>{SCRIPT}</script>" if script else ""
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
        f"<header><b>{esc(title)}</b><div class='nav'>{nav}</div></header><main>{body}</main>{tail}</body></html>"
    )


def table(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def bar_chart(title: str, items: list[tuple[str, float]]) -> str:
    top = max([v for _, v in items] + [1])
    bars = "".join(
        f"<div class='bar'><span class='l'>{esc(label)}</span>"
        f"<span class='b' style='width:{400 * value / top:.1f}px'></span><span class='n'>{esc(value)}</span></div>"
        for label, value in items
    )
    return f"<div class='bars'><b>{esc(title)}</b>{bars}</div>"


def histogram_svg(title: str, values: list[float], bins: int = 20, width: int = 300, height: int = 120) -> str:
    if not values:
        return f"<div class='bars'><b>{esc(title)}</b><br>no scores</div>"
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, int((v - low) / span * bins))] += 1
    top = max(counts)
    step = width / bins
    rects = "".join(
        f"<rect x='{i * step:.1f}' y='{height - 20 - (height - 35) * c / top:.1f}' width='{step - 1:.1f}' "
        f"height='{(height - 35) * c / top:.1f}' fill='#47a'><title>{c}</title></rect>"
        for i, c in enumerate(counts)
    )
    labels = (
        f"<text x='0' y='{height - 5}' font-size='10'>{low:.3g}</text>"
        f"<text x='{width}' y='{height - 5}' font-size='10' text-anchor='end'>{high:.3g}</text>"
        f"<text x='0' y='11' font-size='11'>{esc(title)} (n={len(values)})</text>"
    )
    return f"<svg width='{width}' height='{height}' style='background:#fff'>{rects}{labels}</svg>"


def _gates_table(scores: dict[str, Any]) -> str:
    gates = scores.get("gates") or {}
    if not gates:
        return ""
    rows = []
    for name in sorted(gates):
        g = gates[name] if isinstance(gates[name], dict) else {"value": gates[name]}
        verdict = g.get("passed")
        css = "pass" if verdict else "fail" if verdict is False else ""
        word = "pass" if verdict else "FAIL" if verdict is False else "?"
        rows.append(
            f"<tr><td>{esc(name)}</td><td>{esc(g.get('value'))}</td><td>{esc(g.get('direction', ''))} "
            f"{esc(g.get('threshold'))}</td><td class='{css}'>{word}</td></tr>"
        )
    return f"<table class='gates'><tr><th>gate</th><th>value</th><th>threshold</th><th>verdict</th></tr>{''.join(rows)}</table>"


def card(row: dict[str, Any], thumbs: dict[str, str], score: float | None, selected: bool) -> str:
    scores = _loads(row.get("scores"))
    judge = _loads(row.get("judge"))
    status = row.get("status") or ""
    imgs = ""
    if thumbs.get("source") and thumbs.get("target"):
        imgs = (
            "<div class='imgs'>"
            f"<figure><img src='{esc(thumbs['source'])}' alt='source' loading='lazy'><figcaption>source</figcaption></figure>"
            f"<figure><img src='{esc(thumbs['target'])}' alt='target' loading='lazy'><figcaption>target</figcaption></figure>"
            f"<figure><img src='{esc(thumbs.get('overlay', thumbs['source']))}' alt='mask' loading='lazy'><figcaption>mask</figcaption></figure>"
            # drag the corner of the source layer to wipe between before and after (CSS resize, no script)
            f"<figure><div class='ba'><img src='{esc(thumbs['target'])}' alt='after'>"
            f"<div class='before'><img src='{esc(thumbs['source'])}' alt='before'></div></div>"
            "<figcaption>before / after (drag corner)</figcaption></figure></div>"
        )
    judge_text = ", ".join(f"{k}={judge[k]}" for k in ("state", "sc", "pq", "o", "model", "ranked_by") if k in judge)
    classes = f"card s-{esc(status)}" + (" kept" if selected else "")
    data_score = "" if score is None else f"{score:.6g}"
    return (
        f"<div class='{classes}' data-score='{esc(data_score)}' id='{esc(row.get('sample_id'))}'>"
        f"{imgs}<div><b>{esc(status)}</b>{' · kept' if selected else ''} · <code>{esc(row.get('sample_id'))}</code>"
        f" · {esc(row.get('source_uri'))}</div>"
        f"<div>EN: {esc(row.get('instruction_en'))}</div><div>ZH: {esc(row.get('instruction_zh'))}</div>"
        f"<div>instruction by: {esc(row.get('instruction_source') or '-')} ({esc(row.get('instruction_register') or '-')})</div>"
        f"<div>reason: {esc(row.get('reason') or '-')}</div>"
        f"<div>gate_score: {esc(scores.get('gate_score'))} · judge: {esc(judge_text or '-')}</div>"
        f"<details><summary>gates</summary>{_gates_table(scores)}</details></div>"
    )


def _loads(value: Any) -> dict[str, Any]:
    if not value:
        return {}
    try:
        out = json.loads(value)
    except (TypeError, ValueError):
        return {}
    return out if isinstance(out, dict) else {}
