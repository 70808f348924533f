// Binary buffers exchanged with the kernel (no JSON lists for per-cell data).
//
// Python -> page : coordinates (float32, interleaved x0 y0 x1 y1 ..., already
//                  normalised to [-1, 1]), colour codes (uint16 per cell),
//                  highlight flags (uint8 per cell), selection (uint32 positions).
// page -> Python : selection, lasso polygon (float32, interleaved, normalised coordinates).
//
// A selection (both directions) is a uint32 little-endian tag followed by the payload:
//   tag 0: uint32 positions, ascending;
//   tag 1: a bit mask over the n cells, numpy.packbits order (most significant bit first).
// The encoder picks the smaller one (a mask when more than n/32 cells are selected), so a
// lasso over half of a million cells sends 125 kB instead of 2 MB.
// ipywidgets hands binary traits to the page as DataView (or ArrayBuffer).

/** View a DataView / ArrayBuffer / typed array as a typed array of `Type` (copying if unaligned). */
export function asTyped(buf, Type) {
  if (buf == null) return new Type(0);
  let buffer;
  let offset = 0;
  let length;
  if (buf instanceof ArrayBuffer) {
    buffer = buf;
    length = buf.byteLength;
  } else if (ArrayBuffer.isView(buf)) {
    buffer = buf.buffer;
    offset = buf.byteOffset;
    length = buf.byteLength;
  } else {
    return new Type(0);
  }
  const n = Math.floor(length / Type.BYTES_PER_ELEMENT);
  if (offset % Type.BYTES_PER_ELEMENT === 0) return new Type(buffer, offset, n);
  return new Type(buffer.slice(offset, offset + n * Type.BYTES_PER_ELEMENT));
}

/** Split interleaved float32 coordinates into x and y arrays. */
export function decodeCoords(buf) {
  const xy = asTyped(buf, Float32Array);
  const n = xy.length >> 1;
  const x = new Float32Array(n);
  const y = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    x[i] = xy[2 * i];
    y[i] = xy[2 * i + 1];
  }
  return { x, y, n };
}

/** Selection indices -> sorted, de-duplicated Uint32Array. */
export function normalizeSelection(points) {
  const arr = Uint32Array.from(points ?? []);
  arr.sort();
  if (arr.length < 2) return arr;
  let k = 1;
  for (let i = 1; i < arr.length; i++) {
    if (arr[i] !== arr[k - 1]) arr[k++] = arr[i];
  }
  return arr.slice(0, k);
}

export const SELECTION_POSITIONS = 0;
export const SELECTION_MASK = 1;

/**
 * Encode selected indices (unique, any order) of `n` cells for the kernel: a DataView over
 * the tagged buffer described above. Indices >= n are dropped when n is given.
 */
export function encodeSelection(points, n = 0) {
  const k = points ? points.length : 0;
  if (n > 0 && k * 32 > n) {
    const out = new Uint8Array(4 + Math.ceil(n / 8));
    new DataView(out.buffer).setUint32(0, SELECTION_MASK, true);
    for (let j = 0; j < k; j++) {
      const i = points[j];
      if (i < n) out[4 + (i >> 3)] |= 0x80 >> (i & 7);
    }
    return new DataView(out.buffer);
  }
  let arr = normalizeSelection(points);
  if (n > 0 && arr.length && arr[arr.length - 1] >= n) arr = arr.filter((i) => i < n);
  const out = new Uint32Array(arr.length + 1);
  out[0] = SELECTION_POSITIONS;
  out.set(arr, 1);
  return new DataView(out.buffer);
}

/** Decode a tagged selection buffer into a sorted Uint32Array of positions. */
export function decodeSelection(buf) {
  const bytes = asTyped(buf, Uint8Array);
  if (bytes.length < 4) return new Uint32Array(0);
  const tag = bytes[0] | (bytes[1] << 8) | (bytes[2] << 16) | (bytes[3] << 24);
  if (tag === SELECTION_MASK) {
    let count = 0;
    for (let b = 4; b < bytes.length; b++) {
      let v = bytes[b];
      while (v) {
        v &= v - 1;
        count++;
      }
    }
    const out = new Uint32Array(count);
    let j = 0;
    for (let b = 4; b < bytes.length; b++) {
      const v = bytes[b];
      if (!v) continue;
      for (let bit = 0; bit < 8; bit++) if (v & (0x80 >> bit)) out[j++] = ((b - 4) << 3) + bit;
    }
    return out;
  }
  const body = bytes.slice(4);
  return new Uint32Array(body.buffer, 0, body.length >> 2);
}

/** Encode lasso vertices ([[x, y], ...] or flat [x0, y0, ...]) as interleaved float32. */
export function encodePolygon(coords) {
  const flat = [];
  for (const c of coords ?? []) {
    if (Array.isArray(c)) flat.push(c[0], c[1]);
    else flat.push(c);
  }
  const arr = Float32Array.from(flat);
  return new DataView(arr.buffer, arr.byteOffset, arr.byteLength);
}

/** Decode interleaved float32 polygon vertices into [[x, y], ...]. */
export function decodePolygon(buf) {
  const a = asTyped(buf, Float32Array);
  const out = [];
  for (let i = 0; i + 1 < a.length; i += 2) out.push([a[i], a[i + 1]]);
  return out;
}

/**
 * The model state one selection sends to the kernel: the positions encoded against the points
 * drawn (`drawn.n`, not the model's `_n`, which may already describe newer cells) and the
 * generation those points belong to (`drawn.generation`), so that the kernel can tell a lasso
 * drawn on a previous view from one on the cells it shows now.
 */
export function selectionState(points, polygon, drawn) {
  return {
    selection: encodeSelection(points, drawn.n),
    _polygon: encodePolygon(polygon ?? []),
    _selection_generation: drawn.generation,
  };
}
