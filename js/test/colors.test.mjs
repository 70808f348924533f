import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  buildLegend, codesToValues, formatValue, gradientCss, hexToRgba, highlightToValues, orderByCodes,
} from '../src/colors.js';

test('hexToRgba parses short, long and alpha forms', () => {
  assert.deepEqual(hexToRgba('#ffffff'), [1, 1, 1, 1]);
  assert.deepEqual(hexToRgba('#000'), [0, 0, 0, 1]);
  assert.deepEqual(hexToRgba('#ff000080').map((v) => Math.round(v * 255)), [255, 0, 0, 128]);
  assert.deepEqual(hexToRgba('nonsense'), [0.5, 0.5, 0.5, 1]);
});

test('codesToValues clamps codes beyond the palette to the missing colour', () => {
  const codes = new Uint16Array([0, 2, 9, 1]);
  const v = codesToValues(new DataView(codes.buffer), 4, 3);
  assert.ok(v instanceof Float32Array);
  assert.deepEqual(Array.from(v), [0, 2, 2, 1]);
  // fewer codes than points: the rest get code 0
  assert.deepEqual(Array.from(codesToValues(new DataView(codes.buffer, 0, 2), 3, 3)), [0, 0, 0]);
});

test('highlightToValues: empty buffer means no highlight', () => {
  const none = highlightToValues(new DataView(new ArrayBuffer(0)), 3);
  assert.equal(none.active, false);
  assert.deepEqual(Array.from(none.values), [1, 1, 1]);
  const some = highlightToValues(new DataView(new Uint8Array([0, 1, 0]).buffer), 3);
  assert.equal(some.active, true);
  assert.deepEqual(Array.from(some.values), [0, 1, 0]);
});

test('legend building', () => {
  const cat = buildLegend({ kind: 'categorical', key: 'leiden', names: ['0', '1'], colors: ['#f00'], counts: [5, 6] });
  assert.equal(cat.title, 'leiden');
  assert.deepEqual(cat.items, [
    { name: '0', color: '#f00', count: 5 },
    { name: '1', color: '#808080', count: 6 },
  ]);
  const cont = buildLegend({ kind: 'continuous', key: 'CD3E', vmin: 0, vmax: 4.51234, colors: ['#000', '#fff'] });
  assert.equal(cont.min, '0');
  assert.equal(cont.max, '4.51');
  assert.equal(cont.gradient, 'linear-gradient(to right, #000 0.0%, #fff 100.0%)');
  assert.equal(buildLegend(undefined).kind, 'none');
  assert.equal(gradientCss([]), 'none');
});

test('formatValue', () => {
  assert.equal(formatValue(3), '3');
  assert.equal(formatValue(0.000012), '1.20e-5');
  assert.equal(formatValue(NaN), 'NA');
  assert.equal(formatValue(null), 'NA');
  assert.equal(formatValue('B cell'), 'B cell');
});

test('orderByCodes: missing first, then ascending codes, stable', () => {
  // palette of 4: codes 0..2 are values, 3 is "missing"
  const v = new Float32Array([2, 0, 3, 1, 0, 2]);
  assert.deepEqual(orderByCodes(v, 4), [2, 1, 4, 3, 0, 5]);
  assert.deepEqual(orderByCodes(new Float32Array(0), 4), []);
});
