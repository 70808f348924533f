// Build-time patches of regl-scatterplot internals (the one place this project touches them).
//
// regl-scatterplot 1.16 computes a draw order (`pointOrder`) and the point index buffer with
// a JS Set and one small array per point: 1.6 s at 1M points and 8.8 s at 5M in headless
// Chromium, paid on every colouring by a gene (expressing cells are drawn on top). The
// replacements below compute the same buffers with typed arrays (a seen-flag byte per point,
// texture coordinates computed inline). Each patch must match its source text exactly once:
// a regl-scatterplot whose code moved fails the build instead of shipping unpatched.

const ORDER_FROM = `    const includedSet = new Set();
    const orderedIndices = [];

    for (let i = 0; i < pointOrder.length; i++) {
      const idx = pointOrder[i];
      if (
        Number.isFinite(idx) &&
        idx >= 0 &&
        idx < numPoints &&
        !includedSet.has(idx)
      ) {
        orderedIndices.push(idx);
        includedSet.add(idx);
      }
    }

    // Append any missing indices in sequential order
    for (let i = 0; i < numPoints; i++) {
      if (!includedSet.has(i)) {
        orderedIndices.push(i);
      }
    }

    pointOrderIndices = orderedIndices;

    pointOrderIndex = new Float32Array(orderedIndices.length * 2);
    let j = 0;
    for (let i = 0; i < orderedIndices.length; i++) {
      const texCoord = indexToStateTexCoord(orderedIndices[i]);
      pointOrderIndex[j] = texCoord[0];
      pointOrderIndex[j + 1] = texCoord[1];
      j += 2;
    }`;

const ORDER_TO = `    // (exprmat_widgets/js/_compat.mjs) typed arrays instead of a Set
    const seen = new Uint8Array(numPoints);
    const orderedIndices = new Int32Array(numPoints);
    let k = 0;
    for (let i = 0; i < pointOrder.length; i++) {
      const idx = pointOrder[i];
      if (Number.isInteger(idx) && idx >= 0 && idx < numPoints && !seen[idx]) {
        seen[idx] = 1;
        orderedIndices[k++] = idx;
      }
    }
    for (let i = 0; i < numPoints; i++) if (!seen[i]) orderedIndices[k++] = i;

    pointOrderIndices = orderedIndices;
    pointOrderIndex = new Float32Array(numPoints * 2);
    for (let i = 0; i < numPoints; i++) {
      const p = orderedIndices[i];
      pointOrderIndex[2 * i] = (p % stateTexRes) / stateTexRes + stateTexEps;
      pointOrderIndex[2 * i + 1] = Math.floor(p / stateTexRes) / stateTexRes + stateTexEps;
    }`;

const INDEX_FROM = `    let j = 0;
    for (let i = 0; i < numNewPoints; ++i) {
      const texCoord = indexToStateTexCoord(i);
      index[j] = texCoord[0]; // x
      index[j + 1] = texCoord[1]; // y
      j += 2;
    }`;

const INDEX_TO = `    // (exprmat_widgets/js/_compat.mjs) no array per point
    for (let i = 0; i < numNewPoints; ++i) {
      index[2 * i] = (i % stateTexRes) / stateTexRes + stateTexEps;
      index[2 * i + 1] = Math.floor(i / stateTexRes) / stateTexRes + stateTexEps;
    }`;

export const PATCHES = [
  { name: 'computePointOrderIndex', from: ORDER_FROM, to: ORDER_TO },
  { name: 'createPointIndex', from: INDEX_FROM, to: INDEX_TO },
];

/** `source` with every patch applied; throws when a patch does not match exactly once. */
export function patchReglScatterplot(source) {
  let out = source;
  for (const { name, from, to } of PATCHES) {
    const parts = out.split(from);
    if (parts.length !== 2) {
      throw new Error(
        `regl-scatterplot patch '${name}' matched ${parts.length - 1} times (expected 1): ` +
          'the installed regl-scatterplot differs from 1.16; update js/_compat.mjs',
      );
    }
    out = parts.join(to);
  }
  return out;
}

/** esbuild plugin applying the patches to regl-scatterplot's ES module build; a bundle that
 * did not load that module (another entry file of the package) fails. */
export const reglScatterplotPatch = {
  name: 'regl-scatterplot-patch',
  setup(build) {
    let applied = 0;
    build.onStart(() => {
      applied = 0;
    });
    build.onLoad({ filter: /regl-scatterplot[\\/]dist[\\/]regl-scatterplot\.esm\.js$/ }, async (args) => {
      const { readFile } = await import('node:fs/promises');
      const contents = patchReglScatterplot(await readFile(args.path, 'utf8'));
      applied++;
      return { contents, loader: 'js' };
    });
    build.onEnd((result) => {
      if (!applied && !result.errors.length) {
        return { errors: [{ text: 'regl-scatterplot was bundled without the patches of js/_compat.mjs' }] };
      }
      return undefined;
    });
  },
};
