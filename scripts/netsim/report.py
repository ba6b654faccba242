#!/usr/bin/env python3
"""Tables and charts from scale-out.sh's JSON lines.

  report.py RUNS.jsonl OUT_DIR

writes OUT_DIR/table.md (every run, grouped by env and link) and, per env and link rate, one SVG chart of env-steps/s
against worker hosts with a line per mode and RTT (scale-<env>-<rate>mbit.svg). Standard library only.
"""
import collections
import json
import os
import sys

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"]
DASHES = {0: "", 1: "6 3", 2: "2 3", 3: "8 3 2 3"}


def label(r):
    if r["mode"] == "central":
        return "central"
    return f'{r["mode"]} {r["sync"]}' + (f' credit {r["credit"]}' if r.get("credit") else "")


def table(rows):
    out = ["| env | Mbit/s | RTT ms (measured) | mode | sync | credit | workers × envs | env-steps/s | learner busy | pushes | push bytes | policy lag | mean-20 | bytes to workers | bytes to learner |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    key = lambda r: (r["env"], -r["rate_mbit"], r["rtt_ms"], r["mode"], str(r["sync"]), str(r.get("credit")), r["workers"], r["seed"])
    for r in sorted(rows, key=key):
        out.append(f'| {r["env"]} | {r["rate_mbit"]:g} | {r["rtt_ms"]:g} ({r["rtt_measured_ms"]:.2f}) | {r["mode"]} | {r["sync"] or "–"} | {r.get("credit") or "–"} | '
                   f'{r["workers"]} × {r["envs_per_worker"]} | {r["env_steps_per_sec"]:,.0f} | {r["learner_busy_fraction"]:.2f} | {r["pushes"]} | '
                   f'{r["push_bytes"]:,} | {r["mean_policy_lag"]:.2f} | {r["mean_return_20"]:.1f} | {r["link_bytes_to_workers"]:,} | {r["link_bytes_to_learner"]:,} |')
    return "\n".join(out) + "\n"


def chart(title, series, path):
    """series: {name: [(workers, sps), ...]}; log2 x (workers), linear y from 0."""
    w, h, left, right, top, bottom = 760, 440, 70, 230, 40, 50
    xs = sorted({x for pts in series.values() for x, _ in pts})
    ymax = max((y for pts in series.values() for _, y in pts), default=1) * 1.08
    import math
    lx = lambda x: left + (math.log2(x) - math.log2(xs[0])) / max(math.log2(xs[-1]) - math.log2(xs[0]), 1) * (w - left - right)
    ly = lambda y: h - bottom - y / ymax * (h - top - bottom)
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="{w / 2 - right / 2}" y="22" text-anchor="middle" font-size="14">{title}</text>',
           f'<line x1="{left}" y1="{h - bottom}" x2="{w - right}" y2="{h - bottom}" stroke="black"/>',
           f'<line x1="{left}" y1="{top}" x2="{left}" y2="{h - bottom}" stroke="black"/>',
           f'<text x="{(left + w - right) / 2}" y="{h - 12}" text-anchor="middle">worker hosts</text>',
           f'<text x="16" y="{(top + h - bottom) / 2}" text-anchor="middle" transform="rotate(-90 16 {(top + h - bottom) / 2})">env-steps/s consumed</text>']
    for x in xs:
        svg.append(f'<text x="{lx(x):.1f}" y="{h - bottom + 16}" text-anchor="middle">{x}</text>')
    step = 10 ** math.floor(math.log10(ymax / 5)) if ymax > 0 else 1
    step *= next(m for m in (1, 2, 5, 10) if ymax / (step * m) <= 6)
    y = 0.0
    while y <= ymax:
        svg.append(f'<line x1="{left}" y1="{ly(y):.1f}" x2="{w - right}" y2="{ly(y):.1f}" stroke="#ddd"/>')
        svg.append(f'<text x="{left - 6}" y="{ly(y) + 4:.1f}" text-anchor="end">{y:,.0f}</text>')
        y += step
    modes = sorted({name.split(" @ ")[0] for name in series})
    rtts = sorted({name.split(" @ ")[1] for name in series}, key=lambda s: float(s.split()[0]))
    for i, (name, pts) in enumerate(sorted(series.items())):
        mode, rtt = name.split(" @ ")
        colour = COLOURS[modes.index(mode) % len(COLOURS)]
        dash = DASHES[rtts.index(rtt) % len(DASHES)]
        pts = sorted(pts)
        d = " ".join(f'{"M" if j == 0 else "L"}{lx(x):.1f},{ly(y):.1f}' for j, (x, y) in enumerate(pts))
        svg.append(f'<path d="{d}" fill="none" stroke="{colour}" stroke-width="2" stroke-dasharray="{dash}"/>')
        for x, y in pts:
            svg.append(f'<circle cx="{lx(x):.1f}" cy="{ly(y):.1f}" r="3" fill="{colour}"/>')
        svg.append(f'<line x1="{w - right + 12}" y1="{top + 8 + 18 * i}" x2="{w - right + 40}" y2="{top + 8 + 18 * i}" stroke="{colour}" stroke-width="2" stroke-dasharray="{dash}"/>')
        svg.append(f'<text x="{w - right + 46}" y="{top + 12 + 18 * i}">{name}</text>')
    svg.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(svg) + "\n")


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
    os.makedirs(sys.argv[2], exist_ok=True)
    with open(os.path.join(sys.argv[2], "table.md"), "w") as f:
        f.write(table(rows))
    groups = collections.defaultdict(lambda: collections.defaultdict(list))
    for r in rows:
        groups[(r["env"], r["rate_mbit"])][f'{label(r)} @ {r["rtt_ms"]:g} ms'].append((r["workers"], r["env_steps_per_sec"]))
    for (env, rate), series in groups.items():
        if len({x for pts in series.values() for x, _ in pts}) < 2:
            continue
        chart(f"{env}, {rate:g} Mbit/s links", series, os.path.join(sys.argv[2], f"scale-{env}-{rate:g}mbit.svg"))


if __name__ == "__main__":
    main()
