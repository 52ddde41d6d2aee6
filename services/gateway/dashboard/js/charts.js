// Small SVG charts drawn with DOM calls (no library, no inline style): bars, horizontal bars, an area
// line and a heatmap. Labels are text nodes; tooltips are SVG <title> elements.

import { fmtClock, s } from "./dom.js";

function niceMax(value) {
  if (!(value > 0)) return 1;
  const exp = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) if (value <= step * exp) return step * exp;
  return 10 * exp;
}

/**
 * Vertical stacked bars: items [{label, values: [a, b], title}], series colours by class names.
 * `format` writes an axis value.
 */
export function barChart(items, { width = 720, height = 240, classes = ["bar", "bar running"], format = String } = {}) {
  const left = 56, right = 12, top = 12, bottom = 34;
  const plotW = width - left - right, plotH = height - top - bottom;
  const max = niceMax(Math.max(0, ...items.map((i) => i.values.reduce((a, b) => a + b, 0))));
  const svg = s("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "bar chart" });
  for (let k = 0; k <= 4; k++) {
    const y = top + plotH - (plotH * k) / 4;
    svg.append(s("line", { class: "gridline", x1: left, x2: width - right, y1: y, y2: y }));
    svg.append(s("text", { x: left - 8, y: y + 4, "text-anchor": "end" }, format((max * k) / 4)));
  }
  const slot = plotW / Math.max(items.length, 1);
  const barW = Math.max(2, Math.min(38, slot * 0.68));
  const labelEvery = Math.ceil(items.length / Math.max(1, Math.floor(plotW / 64)));
  items.forEach((item, i) => {
    const x = left + slot * i + (slot - barW) / 2;
    let y = top + plotH;
    item.values.forEach((v, j) => {
      const hgt = (plotH * Math.max(0, v)) / max;
      if (hgt <= 0) return;
      y -= hgt;
      svg.append(s("rect", { class: classes[j] || "bar", x, y, width: barW, height: hgt, rx: 2 }, s("title", {}, item.title)));
    });
    if (i % labelEvery === 0) {
      svg.append(s("text", { x: x + barW / 2, y: height - bottom + 16, "text-anchor": "middle" }, item.label));
    }
  });
  svg.append(s("line", { class: "axis", x1: left, x2: width - right, y1: top + plotH, y2: top + plotH }));
  return svg;
}

/** Horizontal bars, one row per item [{label, value, title, note}]. */
export function hbarChart(items, { width = 520, row = 34, format = String } = {}) {
  const left = 150, right = 90;
  const height = Math.max(row, items.length * row) + 8;
  const max = Math.max(...items.map((i) => i.value), 0) || 1;
  const svg = s("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "bar chart" });
  items.forEach((item, i) => {
    const y = 4 + i * row;
    const w = ((width - left - right) * Math.max(0, item.value)) / max;
    svg.append(s("text", { class: "label-strong", x: left - 10, y: y + row / 2 + 4, "text-anchor": "end" }, item.label));
    svg.append(s("rect", { class: "bar", x: left, y: y + 7, width: Math.max(w, 1), height: row - 14, rx: 3 }, s("title", {}, item.title)));
    svg.append(s("text", { x: left + Math.max(w, 1) + 8, y: y + row / 2 + 4 }, format(item.value)));
  });
  return svg;
}

/** An area line of values in [0, 1] over time: points [{t, v}]. */
export function areaChart(points, { width = 1160, height = 120, from, to } = {}) {
  const left = 40, right = 12, top = 8, bottom = 22;
  const plotW = width - left - right, plotH = height - top - bottom;
  const t0 = new Date(from ?? points[0]?.t).getTime();
  const t1 = new Date(to ?? points[points.length - 1]?.t).getTime();
  const span = Math.max(t1 - t0, 1);
  const svg = s("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "utilization over time" });
  for (const k of [0, 0.5, 1]) {
    const y = top + plotH - plotH * k;
    svg.append(s("line", { class: "gridline", x1: left, x2: width - right, y1: y, y2: y }));
    svg.append(s("text", { x: left - 6, y: y + 4, "text-anchor": "end" }, `${Math.round(k * 100)}%`));
  }
  const xy = points.map((p) => [left + (plotW * (new Date(p.t).getTime() - t0)) / span, top + plotH - plotH * Math.min(1, Math.max(0, p.v))]);
  if (xy.length) {
    const line = xy.map(([x, y], i) => `${i ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)}`).join(" ");
    const area = `${line} L${xy[xy.length - 1][0].toFixed(1)},${top + plotH} L${xy[0][0].toFixed(1)},${top + plotH} Z`;
    svg.append(s("path", { class: "area", d: area }), s("path", { class: "line", d: line }));
    // A line needs two points: with only a few, mark each one.
    if (xy.length < 3) for (const [x, y] of xy) svg.append(s("circle", { class: "dot", cx: x, cy: y, r: 3 }));
  }
  timeAxis(svg, t0, t1, left, plotW, height - 6);
  return svg;
}

function timeAxis(svg, t0, t1, left, plotW, y) {
  for (let k = 0; k <= 4; k++) {
    const t = t0 + ((t1 - t0) * k) / 4;
    const anchor = k === 0 ? "start" : k === 4 ? "end" : "middle";
    svg.append(s("text", { x: left + (plotW * k) / 4, y, "text-anchor": anchor }, fmtClock(t)));
  }
}

/** Utilization 0..1 to a colour from pale grey-blue (idle) to deep blue (busy). */
export function heat(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "#f1f3f6";
  const x = Math.min(1, Math.max(0, v));
  const from = [226, 236, 250], to = [18, 72, 180];
  const c = from.map((f, i) => Math.round(f + (to[i] - f) * x));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

/**
 * A heatmap: one row per series [{label, points: [{t, v, title}]}], time across, colour = utilization.
 */
export function heatmap(rows, { from, to, step, width = 1160 } = {}) {
  const left = 170, right = 12, top = 6, rowH = 22, bottom = 24;
  const t0 = new Date(from).getTime(), t1 = new Date(to).getTime();
  const stepMs = Math.max(1000, (step || 60) * 1000);
  const columns = Math.max(1, Math.ceil((t1 - t0) / stepMs));
  const plotW = width - left - right;
  const cellW = plotW / columns;
  const height = top + rows.length * rowH + bottom;
  const svg = s("svg", { class: "chart heatmap", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "utilization heatmap" });
  rows.forEach((row, r) => {
    const y = top + r * rowH;
    svg.append(s("text", { class: "label-strong", x: left - 10, y: y + rowH / 2 + 4, "text-anchor": "end" }, row.label));
    svg.append(s("rect", { x: left, y: y + 1, width: plotW, height: rowH - 2, fill: heat(null) }));
    for (const p of row.points) {
      const c = Math.floor((new Date(p.t).getTime() - t0) / stepMs);
      if (c < 0 || c >= columns) continue;
      svg.append(
        s("rect", { class: "cell", x: left + c * cellW, y: y + 1, width: Math.max(cellW - 0.5, 0.8), height: rowH - 2, fill: heat(p.v) }, s("title", {}, p.title)),
      );
    }
  });
  timeAxis(svg, t0, t1, left, plotW, height - 6);
  return svg;
}

/** The heatmap's colour scale, as a small SVG gradient. */
export function heatLegend() {
  const svg = s("svg", { class: "chart heat-legend", viewBox: "0 0 220 18", width: 220, height: 18, role: "img", "aria-label": "0% to 100%" });
  const id = "heat-scale";
  svg.append(
    s("defs", {}, s("linearGradient", { id, x1: 0, x2: 1, y1: 0, y2: 0 }, s("stop", { offset: "0", "stop-color": heat(0) }), s("stop", { offset: "1", "stop-color": heat(1) }))),
    s("text", { x: 0, y: 13 }, "0%"),
    s("rect", { x: 26, y: 3, width: 150, height: 11, rx: 2, fill: `url(#${id})` }),
    s("text", { x: 182, y: 13 }, "100%"),
  );
  return svg;
}
