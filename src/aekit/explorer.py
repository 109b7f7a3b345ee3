"""Self-contained HTML pages over codes: the latent-space explorer and search results.

Everything (data, thumbnails as PNG data URIs, script, style) is inlined: the page opens from
disk with no network. The explorer draws a 2-D map of the codes on a canvas (UMAP when the
``umap-learn`` package is installed, else PCA), coloured by label or cluster; hovering a point
shows its image, clicking lists its nearest neighbours (in code space, precomputed here).
"""

from __future__ import annotations

import base64
import html
import io
import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from aekit.data.arrays import label_range
from aekit.io import write_text_atomic

#: thumbnails are shrunk to fit this many pixels a side
THUMB_MAX = 48


def make_thumbnails(images: np.ndarray, max_side: int = THUMB_MAX) -> np.ndarray:
    """(N, C, H, W) floats in [0, 1] → (N, h, w, C) uint8, shrunk to fit ``max_side``."""
    from PIL import Image

    x = np.clip(np.asarray(images, dtype=np.float32), 0, 1)
    n, c, h, w = x.shape
    u8 = (x.transpose(0, 2, 3, 1) * 255 + 0.5).astype(np.uint8)
    if max(h, w) <= max_side:
        return u8
    s = max_side / max(h, w)
    th, tw = max(1, round(h * s)), max(1, round(w * s))
    out = np.empty((n, th, tw, c), dtype=np.uint8)
    for i in range(n):
        im = Image.fromarray(u8[i, ..., 0] if c == 1 else u8[i])
        out[i] = np.asarray(im.resize((tw, th), Image.LANCZOS)).reshape(th, tw, c)
    return out


def png_data_uri(thumb: np.ndarray) -> str:
    """(h, w, C) uint8 → ``data:image/png;base64,…``."""
    from PIL import Image

    arr = thumb[..., 0] if thumb.shape[-1] == 1 else thumb
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def project_2d(codes: np.ndarray, seed: int = 0) -> tuple[np.ndarray, str]:
    """2-D map of the codes: UMAP if installed, else PCA. Returns (coords (N, 2), method)."""
    x = np.asarray(codes, dtype=np.float32).reshape(len(codes), -1)
    if len(x) >= 16:
        try:
            import umap  # type: ignore[import-not-found]

            reducer = umap.UMAP(n_components=2, random_state=seed)
            return np.asarray(reducer.fit_transform(x), dtype=np.float32), "UMAP"
        except ImportError:
            pass
    from sklearn.decomposition import PCA

    if x.shape[1] < 2 or len(x) < 2:
        pad = np.zeros((len(x), 2), dtype=np.float32)
        pad[:, : min(1, x.shape[1])] = x[:, :1]
        return pad, "raw"
    with warnings.catch_warnings():  # identical codes: a zero total variance to divide by
        warnings.simplefilter("ignore", RuntimeWarning)
        return PCA(2, random_state=seed).fit_transform(x).astype(np.float32), "PCA"


def _json_for_script(obj: Any) -> str:
    # a JSON island inside <script>: no "<" at all, so neither "</script>" nor "<!--"
    # (which switches the HTML parser into a script-escape state) can occur in it
    return json.dumps(obj, separators=(",", ":")).replace("<", "\\u003c")


_STYLE = """
body{font:14px system-ui,sans-serif;margin:0;display:flex;height:100vh;color:#222}
#main{flex:1;position:relative}#side{width:300px;overflow:auto;border-left:1px solid #ccc;padding:8px}
canvas{display:block;cursor:crosshair}h1{font-size:16px;margin:4px 0}
#tip{position:absolute;display:none;pointer-events:none;background:#fff;border:1px solid #888;
padding:4px;box-shadow:0 2px 6px #0004}
img.t{image-rendering:pixelated;width:64px;height:64px;object-fit:contain;background:#eee}
.nb{display:flex;align-items:center;gap:6px;margin:2px 0}.legend span{margin-right:8px}
.sw{display:inline-block;width:10px;height:10px;margin-right:3px}
"""

_SCRIPT = r"""
(function(){
const D=JSON.parse(document.getElementById('aekit-data').textContent);
const cv=document.getElementById('map'),ctx=cv.getContext('2d'),tip=document.getElementById('tip');
const pal=['#1f77b4','#ff7f0e','#2ca02c','#d62728','#9467bd','#8c564b','#e377c2','#7f7f7f',
'#bcbd22','#17becf','#393b79','#637939','#8c6d31','#843c39','#7b4173','#3182bd'];
// real-valued labels (D.scale = [lo, hi]): a viridis ramp and a lo…hi legend, not one
// recycled palette colour per distinct value
const ramp=['#440154','#3b528b','#21918c','#5ec962','#fde725'];
function rampAt(t){t=Math.min(1,Math.max(0,t))*(ramp.length-1);const k=Math.min(ramp.length-2,Math.floor(t)),f=t-k;
 const a=parseInt(ramp[k].slice(1),16),b=parseInt(ramp[k+1].slice(1),16);
 const c=s=>Math.round(((a>>s)&255)*(1-f)+((b>>s)&255)*f);return 'rgb('+c(16)+','+c(8)+','+c(0)+')';}
// classes in sorted order (numbers as numbers), so class 2 has the same colour as in the
// other figures, not the colour of the order the points happen to come in
const byValue=(a,b)=>{const x=+a,y=+b;return isNaN(x)||isNaN(y)?(a<b?-1:a>b?1:0):x-y;};
const groups=D.scale?[]:[...new Set(D.color)].sort(byValue);
const col=D.scale?(g=>rampAt((+g-D.scale[0])/((D.scale[1]-D.scale[0])||1))):(g=>pal[groups.indexOf(g)%pal.length]);
let W,H,S=[];const pad=20;
const xs=D.xy.map(p=>p[0]),ys=D.xy.map(p=>p[1]);
// a loop: spreading every point into Math.min overflows the call stack above ~125,000
const lo=a=>a.reduce((m,v)=>v<m?v:m,Infinity),hi=a=>a.reduce((m,v)=>v>m?v:m,-Infinity);
const x0=lo(xs),x1=hi(xs),y0=lo(ys),y1=hi(ys);
function layout(){const m=document.getElementById('main');W=cv.width=m.clientWidth;H=cv.height=m.clientHeight;
 S=D.xy.map(p=>[pad+(p[0]-x0)/((x1-x0)||1)*(W-2*pad),H-pad-(p[1]-y0)/((y1-y0)||1)*(H-2*pad)]);draw(-1);}
function draw(sel){ctx.clearRect(0,0,W,H);S.forEach((s,i)=>{ctx.fillStyle=col(D.color[i]);
 ctx.globalAlpha=sel<0?0.8:(i===sel||D.nn[sel].includes(i)?1:0.25);ctx.beginPath();
 ctx.arc(s[0],s[1],i===sel?6:3,0,6.2832);ctx.fill();});ctx.globalAlpha=1;}
function nearest(mx,my){let b=-1,bd=100;S.forEach((s,i)=>{const d=(s[0]-mx)**2+(s[1]-my)**2;if(d<bd){bd=d;b=i;}});return b;}
function thumb(i){if(!D.thumbs)return document.createElement('span');const im=document.createElement('img');im.className='t';im.src=D.thumbs[i];im.alt=D.names[i];return im;}
function describe(i){return D.names[i]+(D.label?' · label '+D.label[i]:'')+(D.cluster?' · cluster '+D.cluster[i]:'');}
cv.addEventListener('mousemove',e=>{const r=cv.getBoundingClientRect(),i=nearest(e.clientX-r.left,e.clientY-r.top);
 if(i<0){tip.style.display='none';return;}tip.replaceChildren(thumb(i),document.createElement('br'),describe(i));
 tip.style.left=(S[i][0]+12)+'px';tip.style.top=(S[i][1]+12)+'px';tip.style.display='block';tip.dataset.index=i;});
cv.addEventListener('mouseleave',()=>{tip.style.display='none';});
function select(i){draw(i);const L=document.getElementById('neighbours');L.replaceChildren();
 const h=document.createElement('h1');h.textContent='nearest to '+describe(i);L.appendChild(h);L.appendChild(thumb(i));
 D.nn[i].forEach((j,r)=>{const d=document.createElement('div');d.className='nb';d.dataset.index=j;
 d.append(thumb(j),(r+1)+'. '+describe(j)+' (d='+D.nd[i][r].toFixed(3)+')');L.appendChild(d);});}
cv.addEventListener('click',e=>{const r=cv.getBoundingClientRect(),i=nearest(e.clientX-r.left,e.clientY-r.top);if(i>=0)select(i);});
const lg=document.getElementById('legend');
if(D.scale){const s=document.createElement('span');const w=document.createElement('i');w.className='sw';
 w.style.width='80px';w.style.background='linear-gradient(to right,'+ramp.join(',')+')';
 s.append(String(D.scale[0])+' ',w,' '+String(D.scale[1]));lg.appendChild(s);}
groups.forEach(g=>{const s=document.createElement('span');
 const w=document.createElement('i');w.className='sw';w.style.background=col(g);s.append(w,String(g));lg.appendChild(s);});
window.aekitExplorer={screen:i=>{const r=cv.getBoundingClientRect();return [r.left+S[i][0],r.top+S[i][1]];},select,get count(){return S.length;}};
window.addEventListener('resize',layout);layout();
})();
"""


def render_explorer(path: str | Path, coords: np.ndarray, *, names: Sequence[str],
                    neighbours: np.ndarray, neighbour_dist: np.ndarray,
                    labels: Sequence[Any] | None = None, clusters: Sequence[int] | None = None,
                    thumbnails: np.ndarray | None = None, title: str = "aekit latent explorer",
                    subtitle: str = "") -> None:
    """Write the explorer page. ``neighbours``/``neighbour_dist``: (N, k) index and distance
    of each point's nearest neighbours (itself excluded); colours follow labels, else clusters."""
    color = list(labels) if labels is not None else list(clusters) if clusters is not None else [0] * len(coords)
    scale = label_range(labels) if labels is not None else None
    data = {
        "scale": None if scale is None else list(scale),
        "xy": np.round(np.asarray(coords, dtype=np.float64), 4).tolist(),
        "names": [str(n) for n in names],
        "color": [str(c) for c in color],
        "label": [str(v) for v in labels] if labels is not None else None,
        "cluster": [int(v) for v in clusters] if clusters is not None else None,
        "nn": np.asarray(neighbours, dtype=np.int64).tolist(),
        "nd": np.round(np.asarray(neighbour_dist, dtype=np.float64), 4).tolist(),
        "thumbs": [png_data_uri(t) for t in thumbnails] if thumbnails is not None else None,
    }
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{_STYLE}</style></head><body>
<div id="main"><canvas id="map"></canvas><div id="tip"></div></div>
<div id="side"><h1>{html.escape(title)}</h1><p>{html.escape(subtitle)}</p>
<div class="legend" id="legend"></div><p>Hover a point to see it; click to list its nearest
neighbours in code space.</p><div id="neighbours"></div></div>
<script type="application/json" id="aekit-data">{_json_for_script(data)}</script>
<script>{_SCRIPT}</script></body></html>
"""
    write_text_atomic(path, page)


def render_search_page(path: str | Path, queries: list[dict[str, Any]], title: str) -> None:
    """Each query: {"name", "thumb" (h, w, C) uint8 or None, "results": [{"name", "distance",
    "thumb", "label"}]} → one page of thumbnails, query first on each row."""
    rows = []
    for q in queries:
        cells = [_figure(q.get("thumb"), f"query: {q['name']}", "q")]
        for r, res in enumerate(q["results"], 1):
            cap = f"{r}. {res['name']} · d={res['distance']:.3g}"
            if res.get("label") is not None:
                cap += f" · {res['label']}"
            cells.append(_figure(res.get("thumb"), cap, "r"))
        rows.append(f"<div class='row'>{''.join(cells)}</div>")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>
body{{font:13px system-ui,sans-serif}}.row{{display:flex;gap:8px;margin:10px 0;flex-wrap:wrap}}
figure{{margin:0;width:96px}}figure.q{{border-right:2px solid #444;padding-right:8px}}
img{{width:96px;height:96px;object-fit:contain;image-rendering:pixelated;background:#eee}}
figcaption{{word-break:break-all}}</style></head><body><h1>{html.escape(title)}</h1>
{''.join(rows)}</body></html>
"""
    write_text_atomic(path, page)


def _figure(thumb: np.ndarray | None, caption: str, cls: str) -> str:
    img = f"<img src='{png_data_uri(thumb)}' alt=''>" if thumb is not None else ""
    return f"<figure class='{cls}'>{img}<figcaption>{html.escape(caption)}</figcaption></figure>"
