// Bundle the widget front end (src/scatter.js) into ../exprmat_widgets/static/, with the
// regl-scatterplot patches of _compat.mjs.
import * as esbuild from 'esbuild';
import { reglScatterplotPatch } from './_compat.mjs';

await esbuild.build({
  entryPoints: ['src/scatter.js'],
  bundle: true,
  format: 'esm',
  minify: true,
  target: 'es2020',
  outfile: '../exprmat_widgets/static/scatter.js',
  plugins: [reglScatterplotPatch],
  logLevel: 'info',
});
