// Binary buffers exchanged with the kernel (no JSON lists for per-cell data).
//
// Python -> page : coordinates (float32, interleaved x0 y0 x1 y1 ..., already
//                  normalised to [-1, 1]), colour codes (uint16 per cell),
//                  highlight flags (uint8 per cell), selection (uint32 positions).
// page -> Python : selection (uint32 positions, ascending), lasso polygon
//                  (float32, interleaved, normalised coordinates).
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

/** Encode selection indices for the kernel (DataView over a uint32 buffer). */
export function encodeSelection(points) {
  const arr = normalizeSelection(points);
  return new DataView(arr.buffer, arr.byteOffset, arr.byteLength);
}

/** Decode a uint32 selection from the kernel into a plain number array (for regl-scatterplot). */
export function decodeSelection(buf) {
  return Array.from(asTyped(buf, Uint32Array));
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
