// Colour helpers: codes -> regl-scatterplot values, legend building.

import { asTyped } from './buffers.js';

/** Parse '#rgb', '#rrggbb' or '#rrggbbaa' into [r, g, b, a] in 0..1. */
export function hexToRgba(hex) {
  let h = String(hex).trim().replace(/^#/, '');
  if (h.length === 3 || h.length === 4) h = [...h].map((c) => c + c).join('');
  if (!/^[0-9a-fA-F]{6}([0-9a-fA-F]{2})?$/.test(h)) return [0.5, 0.5, 0.5, 1];
  const v = (i) => parseInt(h.slice(i, i + 2), 16) / 255;
  return [v(0), v(2), v(4), h.length === 8 ? v(6) : 1];
}

/**
 * Colour codes (uint16 per cell, an index into the palette) -> Float32Array values for
 * regl-scatterplot's categorical `z` channel. Codes beyond the palette are clamped to the
 * last entry (the "missing" colour the kernel appends).
 */
export function codesToValues(buf, n, paletteLength) {
  const codes = asTyped(buf, Uint16Array);
  const out = new Float32Array(n);
  const last = Math.max(0, (paletteLength | 0) - 1);
  const m = Math.min(n, codes.length);
  for (let i = 0; i < m; i++) out[i] = codes[i] > last ? last : codes[i];
  return out;
}

/** Highlight flags (uint8 per cell) -> Float32Array for the `w` channel (1 = emphasised). */
export function highlightToValues(buf, n) {
  const flags = asTyped(buf, Uint8Array);
  const out = new Float32Array(n);
  if (flags.length === 0) {
    out.fill(1);
    return { values: out, active: false };
  }
  for (let i = 0; i < n && i < flags.length; i++) out[i] = flags[i] ? 1 : 0;
  return { values: out, active: true };
}

/** CSS linear-gradient for a continuous legend. */
export function gradientCss(colors) {
  if (!colors || colors.length === 0) return 'none';
  if (colors.length === 1) return colors[0];
  const stops = colors.map((c, i) => `${c} ${((100 * i) / (colors.length - 1)).toFixed(1)}%`);
  return `linear-gradient(to right, ${stops.join(', ')})`;
}

/** Format a number for a legend / tooltip (short, locale independent). */
export function formatValue(v) {
  if (v === null || v === undefined) return 'NA';
  if (typeof v !== 'number') return String(v);
  if (!Number.isFinite(v)) return 'NA';
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(2);
  return String(Number(v.toPrecision(3)));
}

/**
 * Legend model from the kernel's legend dict.
 * categorical: {kind, key, names, colors, counts} -> {kind, title, items: [{name, color, count}]}
 * continuous : {kind, key, vmin, vmax, colors}   -> {kind, title, gradient, min, max}
 * none       : {kind: 'none'}                    -> {kind: 'none', title: ''}
 */
export function buildLegend(legend) {
  const kind = legend?.kind ?? 'none';
  const title = legend?.key ?? '';
  if (kind === 'categorical') {
    const names = legend.names ?? [];
    const colors = legend.colors ?? [];
    const counts = legend.counts ?? [];
    return {
      kind,
      title,
      items: names.map((name, i) => ({
        name: String(name),
        color: colors[i] ?? '#808080',
        count: counts[i] ?? null,
      })),
    };
  }
  if (kind === 'continuous') {
    return {
      kind,
      title,
      gradient: gradientCss(legend.colors ?? []),
      min: formatValue(legend.vmin),
      max: formatValue(legend.vmax),
    };
  }
  return { kind: 'none', title };
}

/**
 * Drawing order for a continuous colouring: cells sorted by colour code (counting sort), so
 * high values are drawn last (on top); the "missing" code (the last one) is drawn first.
 * Returns a plain Array (what regl-scatterplot's `pointOrder` accepts).
 */
export function orderByCodes(values, nCodes) {
  const n = values.length;
  const last = nCodes - 1;
  const counts = new Uint32Array(nCodes + 1);
  const key = (v) => (v >= last ? 0 : v + 1);
  for (let i = 0; i < n; i++) counts[key(values[i]) + 1]++;
  for (let c = 1; c <= nCodes; c++) counts[c] += counts[c - 1];
  const out = new Array(n);
  for (let i = 0; i < n; i++) out[counts[key(values[i])]++] = i;
  return out;
}
