// Small geometry helpers (normalised <-> embedding coordinates, point size, polygons).

/** Point size (px) for n points: big for a few hundred cells, 1-2 px near a million. */
export function pointSizeFor(n) {
  if (!n || n <= 0) return 4;
  const s = 300 / Math.sqrt(n);
  return Math.max(1, Math.min(8, Math.round(s * 10) / 10));
}

/** Even-odd point-in-polygon test; polygon as [[x, y], ...]. */
export function pointInPolygon(x, y, polygon) {
  let inside = false;
  for (let i = 0, j = polygon.length - 1; i < polygon.length; j = i++) {
    const [xi, yi] = polygon[i];
    const [xj, yj] = polygon[j];
    if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

/** Normalised [-1, 1] coordinates -> embedding coordinates, given the kernel's transform. */
export function toEmbedding([x, y], transform) {
  const { cx = 0, cy = 0, scale = 1 } = transform ?? {};
  return [x / scale + cx, y / scale + cy];
}
