import assert from 'node:assert/strict';
import { test } from 'node:test';

import { legendGrid } from '../src/export.js';

test('a short legend is one column as tall as its rows', () => {
  const g = legendGrid(5, { height: 400, rowHeight: 18, columnWidth: 100, headerHeight: 22, padding: 10 });
  assert.equal(g.columns, 1);
  assert.equal(g.width, 120);
  assert.equal(g.height, 20 + 22 + 5 * 18);
});

test('a long legend wraps into columns that fit the plot height', () => {
  const g = legendGrid(40, { height: 200, rowHeight: 18, columnWidth: 80, headerHeight: 22, padding: 10 });
  assert.equal(g.rowsPerColumn, Math.floor((200 - 22 - 20) / 18));
  assert.equal(g.columns, Math.ceil(40 / g.rowsPerColumn));
  assert.ok(g.height <= 200);
  assert.equal(g.width, 20 + g.columns * 80);
});

test('a plot lower than one row still gets one row per column', () => {
  const g = legendGrid(3, { height: 10, rowHeight: 18, columnWidth: 50 });
  assert.equal(g.rowsPerColumn, 1);
  assert.equal(g.columns, 3);
});
