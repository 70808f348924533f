import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  asTyped, decodeCoords, decodePolygon, decodeSelection, encodePolygon, encodeSelection,
  normalizeSelection, SELECTION_MASK, SELECTION_POSITIONS, selectionState,
} from '../src/buffers.js';

test('decodeCoords splits interleaved float32 from a DataView', () => {
  const xy = new Float32Array([1, 2, 3, 4, -0.5, 0.25]);
  const { x, y, n } = decodeCoords(new DataView(xy.buffer));
  assert.equal(n, 3);
  assert.deepEqual(Array.from(x), [1, 3, -0.5]);
  assert.deepEqual(Array.from(y), [2, 4, 0.25]);
});

test('asTyped copes with unaligned views, ArrayBuffers and null', () => {
  const bytes = new Uint8Array(9);
  new DataView(bytes.buffer).setUint32(1, 77, true);
  const view = new DataView(bytes.buffer, 1, 8);
  assert.deepEqual(Array.from(asTyped(view, Uint32Array)), [77, 0]);
  assert.equal(asTyped(null, Float32Array).length, 0);
  assert.equal(asTyped(new ArrayBuffer(8), Float32Array).length, 2);
});

test('selection: positions for few cells, sorted and unique', () => {
  const enc = encodeSelection([5, 1, 3, 3, 0], 1000);
  assert.ok(enc instanceof DataView);
  assert.equal(enc.getUint32(0, true), SELECTION_POSITIONS);
  assert.equal(enc.byteLength, 4 + 16);
  assert.deepEqual(Array.from(decodeSelection(enc)), [0, 1, 3, 5]);
  assert.deepEqual(Array.from(normalizeSelection([])), []);
  assert.deepEqual(Array.from(decodeSelection(encodeSelection([], 10))), []);
  assert.deepEqual(Array.from(decodeSelection(new DataView(new ArrayBuffer(0)))), []);
  // indices beyond n are dropped
  assert.deepEqual(Array.from(decodeSelection(encodeSelection([2, 5000], 1000))), [2]);
});

test('selection: a packbits mask when many cells are selected', () => {
  const n = 1000;
  const pts = [];
  for (let i = n - 1; i >= 0; i -= 2) pts.push(i); // 500 cells, unsorted
  const enc = encodeSelection(pts, n);
  assert.equal(enc.getUint32(0, true), SELECTION_MASK);
  assert.equal(enc.byteLength, 4 + 125);
  // numpy.packbits order: cell 1 is bit 0x40 of byte 0
  assert.equal(enc.getUint8(4), 0b01010101);
  const dec = decodeSelection(enc);
  assert.equal(dec.length, 500);
  assert.deepEqual(Array.from(dec.slice(0, 3)), [1, 3, 5]);
  assert.equal(dec[499], 999);
});

test('polygon round trip from nested and flat vertices', () => {
  const poly = [[0.5, -0.25], [1, 1], [-1, 0.75]];
  assert.deepEqual(decodePolygon(encodePolygon(poly)), poly);
  assert.deepEqual(decodePolygon(encodePolygon([0.5, -0.25, 1, 1])), [[0.5, -0.25], [1, 1]]);
  assert.equal(encodePolygon(null).byteLength, 0);
});

test('selectionState echoes the generation of the drawn points and encodes against their count', () => {
  // the page drew 64 points of generation 3; the model may already describe 10 newer cells
  const points = Array.from({ length: 40 }, (_, i) => i + 20);
  const st = selectionState(points, [[0, 0], [1, 0], [0, 1]], { generation: 3, n: 64 });
  assert.equal(st._selection_generation, 3);
  // 40 of 64 cells: a mask over the 64 drawn points (8 bytes), not over another count
  assert.equal(st.selection.getUint32(0, true), SELECTION_MASK);
  assert.equal(st.selection.byteLength, 4 + 8);
  assert.deepEqual(Array.from(decodeSelection(st.selection)), points);
  assert.deepEqual(decodePolygon(st._polygon), [[0, 0], [1, 0], [0, 1]]);
  const none = selectionState([], null, { generation: 0, n: 64 });
  assert.equal(none._selection_generation, 0);
  assert.equal(decodeSelection(none.selection).length, 0);
  assert.equal(none._polygon.byteLength, 0);
});
