import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { PATCHES, patchReglScatterplot } from '../_compat.mjs';

const src = readFileSync(new URL('../node_modules/regl-scatterplot/dist/regl-scatterplot.esm.js', import.meta.url), 'utf8');

test('every regl-scatterplot patch matches the installed version once', () => {
  const out = patchReglScatterplot(src);
  for (const { from, to } of PATCHES) {
    assert.equal(out.includes(from), false);
    assert.equal(out.split(to).length, 2);
  }
});

test('a source without the patched code fails loudly', () => {
  assert.throws(() => patchReglScatterplot('const x = 1;'), /computePointOrderIndex.*matched 0 times/);
});

test('the patched draw order equals the original one', () => {
  // run both bodies of computePointOrderIndex on the same inputs
  const body = (code) =>
    new Function('pointOrder', 'numPoints', 'stateTexRes', 'stateTexEps', `
      let pointOrderIndices, pointOrderIndex;
      const indexToStateTexCoord = (index) => [
        (index % stateTexRes) / stateTexRes + stateTexEps,
        Math.floor(index / stateTexRes) / stateTexRes + stateTexEps,
      ];
      ${code}
      return [Array.from(pointOrderIndices), Array.from(pointOrderIndex)];`);
  const [orig, patched] = [body(PATCHES[0].from), body(PATCHES[0].to)];
  const res = 4, eps = 0.5 / res;
  for (const order of [[5, 3, 3, 9, -1, 40, 0], [], [1, 0], [...Array(10).keys()].reverse()]) {
    assert.deepEqual(patched(order, 10, res, eps), orig(order, 10, res, eps));
  }
});
