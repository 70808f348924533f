import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  asTyped, decodeCoords, decodePolygon, decodeSelection, encodePolygon, encodeSelection,
  normalizeSelection,
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

test('selection round trip is sorted, unique uint32', () => {
  const enc = encodeSelection([5, 1, 3, 3, 0]);
  assert.ok(enc instanceof DataView);
  assert.equal(enc.byteLength, 16);
  assert.deepEqual(decodeSelection(enc), [0, 1, 3, 5]);
  assert.deepEqual(Array.from(normalizeSelection([])), []);
  assert.deepEqual(decodeSelection(encodeSelection([])), []);
});

test('polygon round trip from nested and flat vertices', () => {
  const poly = [[0.5, -0.25], [1, 1], [-1, 0.75]];
  assert.deepEqual(decodePolygon(encodePolygon(poly)), poly);
  assert.deepEqual(decodePolygon(encodePolygon([0.5, -0.25, 1, 1])), [[0.5, -0.25], [1, 1]]);
  assert.equal(encodePolygon(null).byteLength, 0);
});
