"""Small inline-SVG charts for the dashboard: heatmap, bars with error bars, lines, timeline.

Each function returns one ``<svg class="chart" data-chart=...>`` string with everything inline
(no scripts, no fonts, no network), and a ``<title>`` on every mark so hovering shows the value.
"""

from __future__ import annotations

import math
from html import escape
from typing import Sequence

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")


def _num(x: float) -> str:
    return f"{x:.1f}"


def _svg(kind: str, width: float, height: float, body: list[str]) -> str:
    return (f'<svg class="chart" data-chart="{kind}" xmlns="http://www.w3.org/2000/svg" width="{_num(width)}" '
            f'height="{_num(height)}" viewBox="0 0 {_num(width)} {_num(height)}" font-family="sans-serif" '
            f'font-size="11">' + "".join(body) + "</svg>")


def _text(x: float, y: float, s: str, anchor: str = "start", extra: str = "") -> str:
    return f'<text x="{_num(x)}" y="{_num(y)}" text-anchor="{anchor}" {extra}>{escape(s)}</text>'


def diverging_color(ratio: float, span: float = 4.0) -> str:
    """Green for > 1, red for < 1, white at 1, saturating at ``span``x either way (log scale)."""
    if ratio is None or not math.isfinite(ratio) or ratio <= 0:
        return "#dddddd"
    t = max(-1.0, min(1.0, math.log(ratio) / math.log(span)))
    if t >= 0:
        r, g, b = 255 - 200 * t, 255 - 75 * t, 255 - 200 * t
    else:
        r, g, b = 255 + 40 * t, 255 + 200 * t, 255 + 200 * t
    return f"rgb({int(r)},{int(g)},{int(b)})"


def _log_ticks(lo: float, hi: float) -> list[float]:
    ticks = []
    for e in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1):
        for m in (1, 2, 5):
            v = m * 10.0 ** e
            if lo <= v <= hi:
                ticks.append(v)
    return ticks or [lo, hi]


def _lin_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    step = 10 ** math.floor(math.log10((hi - lo) / n))
    for m in (1, 2, 5, 10):
        if (hi - lo) / (step * m) <= n:
            step *= m
            break
    start = math.ceil(lo / step) * step
    return [start + i * step for i in range(int((hi - start) / step) + 1)]


def heatmap(rows: Sequence[str], cols: Sequence[str], cells: dict[tuple[str, str], tuple[float, str]],
            *, title: str) -> str:
    """``cells[(row, col)] = (ratio, tooltip)``; missing cells are grey."""
    cw, ch, left, top = 92, 30, 170, 110
    width, height = left + cw * len(cols) + 130, top + ch * len(rows) + 30
    body = [_text(4, 14, title, extra='font-weight="bold"')]
    for j, c in enumerate(cols):
        x = left + j * cw + cw / 2
        body.append(_text(x, top - 6, c[:28], "start", f'transform="rotate(-35 {_num(x)} {_num(top - 6)})"'))
    for i, r in enumerate(rows):
        y = top + i * ch
        body.append(_text(left - 6, y + ch / 2 + 4, r[:26], "end"))
        for j, c in enumerate(cols):
            x = left + j * cw
            ratio, tip = cells.get((r, c), (float("nan"), "no data"))
            body.append(f'<rect class="cell" x="{_num(x)}" y="{_num(y)}" width="{cw - 2}" height="{ch - 2}" '
                        f'fill="{diverging_color(ratio)}" stroke="#999"><title>{escape(tip)}</title></rect>')
            label = f"{ratio:.2f}x" if ratio is not None and math.isfinite(ratio) else "-"
            body.append(_text(x + cw / 2, y + ch / 2 + 4, label, "middle"))
    return _svg("heatmap", width, height, body)


def bars(labels: Sequence[str], values: Sequence[float], lows: Sequence[float], highs: Sequence[float],
         *, title: str, ref: float | None = 1.0, unit: str = "x") -> str:
    """Horizontal bars with CI whiskers; a dashed reference line at ``ref``."""
    bh, left, top, plot_w = 22, 190, 24, 360
    finite = [v for v in list(values) + list(highs) if v is not None and math.isfinite(v)]
    vmax = max(finite + [ref or 0.0, 1e-9]) * 1.1
    height = top + bh * len(labels) + 28
    sx = lambda v: left + plot_w * max(0.0, v) / vmax  # noqa: E731
    body = [_text(4, 14, title, extra='font-weight="bold"')]
    for i, (lab, v, lo, hi) in enumerate(zip(labels, values, lows, highs)):
        y = top + i * bh
        body.append(_text(left - 6, y + bh / 2 + 4, lab[:30], "end"))
        if v is None or not math.isfinite(v):
            body.append(_text(left + 4, y + bh / 2 + 4, "failed / no data", extra='fill="#c00"'))
            continue
        color = "#2ca02c" if ref is None or v >= ref else "#d62728"
        body.append(f'<rect class="bar" x="{_num(left)}" y="{_num(y + 3)}" width="{_num(sx(v) - left)}" '
                    f'height="{bh - 6}" fill="{color}" fill-opacity="0.75"><title>{escape(lab)}: {v:.3g}{unit} '
                    f'[{lo:.3g}, {hi:.3g}]</title></rect>')
        if math.isfinite(lo) and math.isfinite(hi):
            yc = y + bh / 2
            body.append(f'<path class="errorbar" d="M{_num(sx(lo))},{_num(yc)}H{_num(sx(hi))}M{_num(sx(lo))},'
                        f'{_num(yc - 5)}V{_num(yc + 5)}M{_num(sx(hi))},{_num(yc - 5)}V{_num(yc + 5)}" stroke="#000" '
                        f'fill="none"/>')
        body.append(_text(sx(max(v, hi if math.isfinite(hi) else v)) + 4, y + bh / 2 + 4, f"{v:.2f}{unit}"))
    axis_y = top + bh * len(labels)
    for t in _lin_ticks(0, vmax):
        body.append(f'<path d="M{_num(sx(t))},{_num(axis_y)}v4" stroke="#666"/>')
        body.append(_text(sx(t), axis_y + 15, f"{t:g}", "middle"))
    if ref is not None:
        body.append(f'<path d="M{_num(sx(ref))},{top}V{_num(axis_y)}" stroke="#333" stroke-dasharray="4 3"/>')
    return _svg("bars", left + plot_w + 70, height, body)


def lines(series: Sequence[tuple[str, Sequence[float], Sequence[float]]], *, title: str, x_label: str,
          y_label: str, marker_x: float | None = None) -> str:
    """Step lines (best-so-far style), log y. ``series``: (name, xs, ys)."""
    left, top, pw, ph = 60, 24, 380, 200
    xs = [x for _, sx_, _ in series for x in sx_]
    ys = [y for _, _, sy in series for y in sy if y > 0 and math.isfinite(y)]
    if not xs or not ys:
        return _svg("lines", left + pw + 10, top + ph + 40, [_text(4, 14, title + " (no data)")])
    x_hi = max(max(xs), marker_x or 0.0) * 1.05 or 1.0
    y_lo, y_hi = min(ys) / 1.15, max(ys) * 1.15
    sx = lambda x: left + pw * x / x_hi  # noqa: E731
    sy = lambda y: top + ph * (1 - (math.log(y) - math.log(y_lo)) / (math.log(y_hi) - math.log(y_lo)))  # noqa: E731
    body = [_text(4, 14, title, extra='font-weight="bold"'),
            f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>']
    for t in _log_ticks(y_lo, y_hi):
        body.append(_text(left - 4, sy(t) + 4, f"{t:g}", "end"))
        body.append(f'<path d="M{left},{_num(sy(t))}h{pw}" stroke="#eee"/>')
    for t in _lin_ticks(0, x_hi):
        body.append(_text(sx(t), top + ph + 14, f"{t:g}", "middle"))
    body.append(_text(left + pw / 2, top + ph + 30, x_label, "middle"))
    body.append(_text(12, top + ph / 2, y_label, "middle", f'transform="rotate(-90 12 {_num(top + ph / 2)})"'))
    if marker_x is not None:
        body.append(f'<path d="M{_num(sx(marker_x))},{top}v{ph}" stroke="#888" stroke-dasharray="4 3"/>')
    for k, (name, sxs, sys_) in enumerate(series):
        color = PALETTE[k % len(PALETTE)]
        pts = [(x, y) for x, y in zip(sxs, sys_) if y > 0 and math.isfinite(y)]
        if not pts:
            continue
        d = f"M{_num(sx(pts[0][0]))},{_num(sy(pts[0][1]))}"
        for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
            d += f"H{_num(sx(x1))}V{_num(sy(y1))}"
        body.append(f'<path class="line" d="{d}" stroke="{color}" fill="none" stroke-width="1.8">'
                    f'<title>{escape(name)}</title></path>')
        body.append(f'<rect x="{left + 8}" y="{top + 6 + 13 * k}" width="10" height="3" fill="{color}"/>')
        body.append(_text(left + 22, top + 11 + 13 * k, name[:48]))
    return _svg("lines", left + pw + 10, top + ph + 40, body)


def timeline(points: Sequence[tuple[str, float, float, float]], steps: Sequence[int], *, title: str) -> str:
    """One series across runs: ``points`` = (run label, median, ci low, ci high) oldest first;
    ``steps`` = indices of the first run after each detected change (marked red)."""
    left, top, pw, ph = 56, 22, 300, 110
    vals = [v for _, m, lo, hi in points for v in (m, lo, hi) if v is not None and math.isfinite(v)]
    if not vals:
        return _svg("timeline", left + pw + 10, top + ph + 20, [_text(4, 14, title + " (no data)")])
    lo_v, hi_v = min(vals), max(vals)
    pad = (hi_v - lo_v) * 0.1 or hi_v * 0.05 or 1.0
    lo_v, hi_v = lo_v - pad, hi_v + pad
    n = len(points)
    sx = lambda i: left + (pw * (i + 0.5) / n)  # noqa: E731
    sy = lambda v: top + ph * (1 - (v - lo_v) / (hi_v - lo_v))  # noqa: E731
    body = [_text(4, 13, title, extra='font-weight="bold" font-size="10"'),
            f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#bbb"/>']
    for t in _lin_ticks(lo_v, hi_v, 4):
        body.append(_text(left - 4, sy(t) + 4, f"{t:.3g}", "end"))
    for i in steps:
        body.append(f'<path class="step" d="M{_num(sx(i) - pw / n / 2)},{top}v{ph}" stroke="#d62728" '
                    f'stroke-dasharray="3 2"/>')
        body.append(f'<path class="step-marker" d="M{_num(sx(i) - 5)},{top - 2}h10l-5,8z" fill="#d62728">'
                    f'<title>change at {escape(points[i][0])}</title></path>')
    path = ""
    for i, (label, m, lo, hi) in enumerate(points):
        if m is None or not math.isfinite(m):
            continue
        path += ("M" if not path else "L") + f"{_num(sx(i))},{_num(sy(m))}"
        if math.isfinite(lo) and math.isfinite(hi):
            body.append(f'<path d="M{_num(sx(i))},{_num(sy(lo))}V{_num(sy(hi))}" stroke="#555"/>')
        body.append(f'<circle class="point" cx="{_num(sx(i))}" cy="{_num(sy(m))}" r="3" fill="#1f77b4">'
                    f'<title>{escape(label)}: {m:.4g} ms [{lo:.4g}, {hi:.4g}]</title></circle>')
    if path:
        body.append(f'<path d="{path}" stroke="#1f77b4" fill="none" stroke-opacity="0.5"/>')
    body.append(_text(left, top + ph + 14, f"{n} runs, oldest left; ms", "start", 'fill="#666" font-size="10"'))
    return _svg("timeline", left + pw + 10, top + ph + 20, body)
