import { test } from 'node:test';
import assert from 'node:assert/strict';
import { matchKeys, resolveKey } from '../src/search.js';
import { pointInPolygon, pointSizeFor, toEmbedding } from '../src/geometry.js';

const keys = ['leiden', 'n_counts', 'CD3E', 'CD3D', 'CD79A', 'ACD3X', 'cd3e'];

test('matchKeys ranks exact, prefix, then substring matches', () => {
  assert.deepEqual(matchKeys(keys, 'cd3e'), ['CD3E', 'cd3e']);
  assert.deepEqual(matchKeys(keys, 'CD3'), ['CD3E', 'CD3D', 'cd3e', 'ACD3X']);
  assert.deepEqual(matchKeys(keys, 'cd', 2), ['CD3E', 'CD3D']);
  assert.deepEqual(matchKeys(keys, '', 2), ['leiden', 'n_counts']);
});

test('resolveKey: exact, else unique case-insensitive match', () => {
  assert.equal(resolveKey(keys, 'CD79A'), 'CD79A');
  assert.equal(resolveKey(keys, 'cd79a'), 'CD79A');
  assert.equal(resolveKey(keys, 'Cd3E'), null); // ambiguous: CD3E and cd3e
  assert.equal(resolveKey(keys, ' leiden '), 'leiden');
  assert.equal(resolveKey(keys, 'nope'), null);
  assert.equal(resolveKey(keys, ''), null);
});

test('geometry helpers', () => {
  const square = [[0, 0], [1, 0], [1, 1], [0, 1]];
  assert.equal(pointInPolygon(0.5, 0.5, square), true);
  assert.equal(pointInPolygon(1.5, 0.5, square), false);
  assert.deepEqual(toEmbedding([1, -1], { cx: 10, cy: 5, scale: 0.5 }), [12, 3]);
  assert.equal(pointSizeFor(700), 8);
  assert.equal(pointSizeFor(1_000_000), 1);
  assert.ok(pointSizeFor(10_000) > 1 && pointSizeFor(10_000) < 8);
});
