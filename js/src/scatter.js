// anywidget front end of exprmat_widgets.widgets.scatter.UmapScatter:
// a regl-scatterplot (WebGL) canvas with pan/zoom, lasso and box selection,
// a colour search box with completion, a legend and a hover tooltip.
// Per-cell data arrive as binary buffers (see buffers.js); the selection and the
// lasso polygon go back to the kernel as binary buffers too.

import createScatterplot from 'regl-scatterplot';
import './scatter.css';
import {
  asTyped,
  decodeCoords,
  decodeSelection,
  selectionState,
} from './buffers.js';
import { buildLegend, codesToValues, formatValue, highlightToValues, orderByCodes } from './colors.js';
import { composeExport } from './export.js';
import { pointSizeFor } from './geometry.js';
import { matchKeys, resolveKey } from './search.js';

let counter = 0;

/** The plot's background (CSS: JupyterLab's --jp-layout-color0) as regl-scatterplot wants
 * it, and a selection ring colour that stands out on it. */
function themeColors(node) {
  const m = getComputedStyle(node).backgroundColor.match(/[\d.]+/g) ?? [];
  let [r, g, b, a] = m.map(Number);
  if (!(r >= 0) || a === 0) [r, g, b] = [255, 255, 255];
  const dark = 0.299 * r + 0.587 * g + 0.114 * b < 128;
  return { background: [r / 255, g / 255, b / 255, 1], active: dark ? '#f5f5f5' : '#111111', dark };
}

function h(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('data-') || k === 'title' || k === 'placeholder' || k === 'list' || k === 'type')
      e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) if (c) e.append(c);
  return e;
}

function render({ model, el }) {
  const uid = `emw-${++counter}-${Math.random().toString(36).slice(2, 8)}`;
  const t0 = performance.now();
  el.classList.add('emw-scatter');
  el.dataset.drawn = 'false';

  // ---- DOM -------------------------------------------------------------------------------
  const modeButtons = {
    pan: h('button', { text: 'Pan/zoom', title: 'Drag to pan, wheel to zoom', 'data-mode': 'pan' }),
    lasso: h('button', { text: 'Lasso', title: 'Drag to draw a lasso (shift+drag works in any mode)', 'data-mode': 'lasso' }),
    box: h('button', { text: 'Box', title: 'Drag to select a rectangle', 'data-mode': 'box' }),
  };
  const clearBtn = h('button', { text: 'Clear', title: 'Clear the selection', 'data-action': 'clear' });
  const resetBtn = h('button', { text: 'Reset view', title: 'Fit all cells in the view', 'data-action': 'reset' });
  // icons as inline SVG in currentColor: no font needed, they follow the theme
  const svg = (d) =>
    `<svg viewBox="0 0 16 16" width="14" height="14" fill="none" stroke="currentColor" stroke-width="1.6" ` +
    `stroke-linecap="round" stroke-linejoin="round" aria-hidden="true"><path d="${d}"/></svg>`;
  const pngBtn = h('button', { class: 'emw-icon', title: 'Download the view as PNG (with its legend)', 'data-action': 'png' });
  pngBtn.innerHTML = svg('M8 2v8M4.5 6.5 8 10l3.5-3.5M2.5 13.5h11');
  const fullBtn = h('button', { class: 'emw-icon', title: 'Full screen (Esc leaves)', 'data-action': 'fullscreen' });
  fullBtn.innerHTML = svg('M2 6V2h4M10 2h4v4M14 10v4h-4M6 14H2v-4');
  const listId = `${uid}-keys`;
  const search = h('input', { type: 'text', placeholder: 'colour by gene or obs column', list: listId, class: 'emw-search' });
  const datalist = h('datalist', { id: listId });
  // the one current selection (kind + count): what the next button acts on
  const count = h('span', { class: 'emw-count', 'data-testid': 'selection-count', 'data-kind': 'none' });
  const errorEl = h('span', { class: 'emw-error' });
  const toolbar = h(
    'div',
    { class: 'emw-toolbar' },
    modeButtons.pan,
    modeButtons.lasso,
    modeButtons.box,
    clearBtn,
    resetBtn,
    search,
    datalist,
    count,
    errorEl,
    h('span', { class: 'emw-spacer' }),
    // the two icons wrap together (a lone icon on its own line looked like a stray button)
    h('span', { class: 'emw-icons' }, pngBtn, fullBtn),
  );
  const canvas = h('canvas', { class: 'emw-canvas' });
  // the legend sits beside the plot (never over the points) and folds to a narrow strip
  const legendToggle = h('button', { class: 'emw-legend-toggle', text: '\u25b8', title: 'Hide the legend', 'data-action': 'legend' });
  const legendItems = h('div', { class: 'emw-legend-items' });
  const legendEl = h('div', { class: 'emw-legend' }, legendToggle, legendItems);
  const tooltip = h('div', { class: 'emw-tooltip' });
  const hint = h('div', { class: 'emw-hint', text: 'Ctrl + scroll (or click the plot first) to zoom' });
  // no embedding yet (the Annotator opened on data without one): say how to make it
  const emptyEl = h('div', { class: 'emw-empty', 'data-testid': 'empty-state' });
  const plot = h('div', { class: 'emw-plot' }, canvas, tooltip, hint, emptyEl);
  const body = h('div', { class: 'emw-body' }, plot, legendEl);
  el.append(toolbar, body);

  const heightPx = () => {
    if (document.fullscreenElement === el) return Math.max(150, window.innerHeight - toolbar.offsetHeight - 12);
    return Math.max(150, model.get('height') | 0);
  };
  body.style.height = `${heightPx()}px`;
  const size = () => {
    // clientWidth/Height (inside the border): sizing from the border box made a canvas in a
    // flex row grow by the border width on every resize
    return { width: Math.max(100, plot.clientWidth || 600), height: Math.max(100, plot.clientHeight || heightPx()) };
  };

  // ---- scatterplot -------------------------------------------------------------------------
  const n0 = model.get('_n') | 0;
  const { width, height } = size();
  const theme = themeColors(plot);
  const scatterplot = createScatterplot({
    canvas,
    width,
    height,
    pointSize: pointSizeFor(n0),
    backgroundColor: theme.background,
    pointColorActive: theme.active,
    pointOutlineWidth: 2,
    // a drawn selection: the other cells fade (readable at 1M points), the selected keep
    // their colour inside a ring
    opacityInactiveScale: 0.15,
    opacityInactiveMax: 0.2,
    lassoColor: '#2563eb',
    lassoInitiator: false,
    lassoMinDelay: 0,
    lassoMinDist: 2,
    lassoClearEvent: 'lassoEnd',
    deselectOnDblClick: true,
    deselectOnEscape: true,
    syncEvents: true,
    performanceMode: n0 >= 2_000_000,
    spatialIndexUseWorker: false,
    colorBy: 'valueA',
    pointColor: ['#1f77b4'],
  });
  // handle for tests and benchmarks (screen projections, state)
  canvas.__emw = { scatterplot, model };

  let coordsHash = null;
  let ordered = false; // a pointOrder is set (continuous colours)
  let coords = { x: new Float32Array(0), y: new Float32Array(0), n: 0 };
  let selection = decodeSelection(model.get('selection')); // Uint32Array of positions
  let lastSent = null;
  // the generation (see UmapScatter._generation) and number of the points regl-scatterplot
  // selects from: they change only when a draw with new points has resolved
  let drawn = { generation: model.get('_generation') | 0, n: n0 };
  let lassoActive = false;
  let destroyed = false;
  let fittedTransform = null;
  let fitCamera = null; // the camera view right after the last fit (null: not fitted yet)

  /** The bounding box of the finite points, in the normalised coordinates. */
  function dataRect() {
    let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    for (let i = 0; i < coords.n; i++) {
      const x = coords.x[i], y = coords.y[i];
      if (!(Number.isFinite(x) && Number.isFinite(y))) continue;
      if (x < x0) x0 = x;
      if (x > x1) x1 = x;
      if (y < y0) y0 = y;
      if (y > y1) y1 = y;
    }
    if (!(x1 >= x0)) return { x: -1, y: -1, width: 2, height: 2 };
    const pad = 0.04 * Math.max(x1 - x0, y1 - y0, 1e-3);
    return { x: x0 - pad, y: y0 - pad, width: x1 - x0 + 2 * pad, height: y1 - y0 + 2 * pad };
  }

  /** Fit the cells into the canvas, whatever its aspect (zoomToArea keeps the data aspect). */
  let fitting = 0; // fits in flight (a resize may come before the last one has drawn)
  async function fitView() {
    if (!scatterplot.get('isPointsDrawn')) return;
    fitting++;
    try {
      await scatterplot.zoomToArea(dataRect(), { transition: false });
    } finally {
      fitting--;
    }
    fitCamera = Array.from(scatterplot.get('cameraView'));
    el.dataset.fitCount = String((Number(el.dataset.fitCount) || 0) + 1);
  }

  /** Whether the view is still the last fit (the user has not panned or zoomed since). */
  function isFitted() {
    if (fitting > 0) return true;
    if (!fitCamera) return false;
    const v = scatterplot.get('cameraView');
    for (let i = 0; i < fitCamera.length; i++) if (Math.abs(v[i] - fitCamera[i]) > 1e-6) return false;
    return true;
  }

  function applyStyle(highlightActive) {
    const s = model.get('point_size') > 0 ? model.get('point_size') : pointSizeFor(coords.n);
    const palette = model.get('_palette');
    const props = {
      colorBy: 'valueA',
      pointColor: palette && palette.length ? palette : ['#1f77b4'],
    };
    if (highlightActive) {
      Object.assign(props, {
        opacityBy: 'valueB',
        opacity: [0.12, 1],
        sizeBy: 'valueB',
        pointSize: [s, Math.min(s * 1.6, s + 4)],
      });
    } else {
      Object.assign(props, { opacityBy: null, opacity: 1, sizeBy: null, pointSize: s });
    }
    scatterplot.set(props);
  }

  function setOrder(continuous, z, nCodes) {
    scatterplot.set({ pointOrder: continuous ? orderByCodes(z, nCodes) : null });
    // (get('pointOrder') would copy the whole order: keep our own flag)
    ordered = continuous;
  }

  async function drawOnce() {
    const ta = performance.now();
    const generation = model.get('_generation') | 0;
    const hash = model.get('_coords_hash');
    // same points as the last draw (a recolour, a highlight): regl-scatterplot may keep its
    // spatial index and point order instead of rebuilding them for every cell
    const samePoints = hash === coordsHash && scatterplot.get('isPointsDrawn');
    if (hash !== coordsHash) {
      coords = decodeCoords(model.get('_coords'));
      coordsHash = hash;
    }
    if (coords.n === 0) {
      // nothing to draw (no embedding): clear the points of an earlier embedding, if any
      if (scatterplot.get('isPointsDrawn')) await scatterplot.clearPoints();
      drawn = { generation, n: 0 };
      fittedTransform = null;
      el.dataset.generation = String(generation);
      return;
    }
    const palette = model.get('_palette') ?? [];
    const z = codesToValues(model.get('_codes'), coords.n, palette.length);
    const { values: w, active } = highlightToValues(model.get('_highlight'), coords.n);
    applyStyle(active);
    const sel = Array.from(selection.filter((i) => i < coords.n));
    // continuous colours: expressing cells on top of the rest
    const continuous = model.get('_legend')?.kind === 'continuous';
    // on the same points the order goes in before the draw, which then keeps it: one frame
    // per recolour instead of a second one for the order (a frame of 1M points takes ~1 s
    // in software WebGL); new points drop an order, so it follows their draw
    const orderFirst = samePoints && (continuous || ordered);
    if (orderFirst) setOrder(continuous, z, palette.length);
    const tb = performance.now();
    const reuse = samePoints ? { spatialIndex: scatterplot.get('spatialIndex'), preventFilterReset: true } : {};
    await scatterplot.draw(
      { x: coords.x, y: coords.y, z, w },
      { zDataType: 'categorical', wDataType: 'categorical', select: sel, ...reuse },
    );
    drawn = { generation, n: coords.n };
    const transform = JSON.stringify(model.get('_transform') ?? {});
    if (transform !== fittedTransform) {
      // new points or a new embedding (an exclusion keeps the transform: the view stays)
      fittedTransform = transform;
      await fitView();
    }
    el.dataset.generation = String(generation);
    // where the time of the last draw went (ms): decoding our buffers, regl-scatterplot's draw
    el.dataset.lastDrawTimings = JSON.stringify({
      sinceRender: Math.round(ta - t0),
      decode: Math.round(tb - ta),
      draw: Math.round(performance.now() - tb),
    });
    if (!orderFirst && (continuous || ordered)) setOrder(continuous, z, palette.length);
    el.dataset.lastDrawAt = String(Date.now());
  }

  let dirty = false;
  let busy = false;
  async function requestDraw() {
    dirty = true;
    if (busy) return;
    busy = true;
    try {
      // the traits of one kernel message (codes, palette, highlight) change one after the
      // other: wait for the last of them and draw once
      await Promise.resolve();
      while (dirty && !destroyed) {
        dirty = false;
        await drawOnce();
      }
    } catch (err) {
      showError(`draw failed: ${err?.message ?? err}`);
    } finally {
      busy = false;
    }
    if (!destroyed && el.dataset.drawn !== 'true') {
      // the frame after draw() resolves is the first one with points on it
      requestAnimationFrame(() =>
        requestAnimationFrame(() => {
          el.dataset.drawn = 'true';
          el.dataset.firstDrawMs = String(Math.round(performance.now() - t0));
          el.dataset.drawnAt = String(Date.now());
        }),
      );
    }
    el.dataset.drawCount = String((Number(el.dataset.drawCount) || 0) + 1);
  }

  // ---- selection ---------------------------------------------------------------------------
  function updateCount(local) {
    const total = (model.get('_n') | 0).toLocaleString('en-US');
    // the page's own lasso shows at once; the kernel's current_selection follows
    const cur = local ?? model.get('current_selection') ?? { kind: 'none', count: 0 };
    const kind = cur.kind || 'none';
    const n = cur.count | 0;
    const what = { lasso: 'Lasso', cells: 'Selected', clusters: 'Clusters', highlight: 'Highlighted' }[kind];
    count.textContent = what
      ? `${what}: ${n.toLocaleString('en-US')} of ${total} cells`
      : `No selection (${total} cells)`;
    count.title = cur.description ?? '';
    count.dataset.kind = kind;
    count.dataset.count = String(n);
    el.dataset.selectionKind = kind;
  }

  function sendSelection(points, polygon) {
    const state = selectionState(points, polygon, drawn);
    selection = Uint32Array.from(points ?? []);
    lastSent = state.selection;
    model.set(state);
    model.save_changes();
    const n = selection.length;
    updateCount(n ? { kind: polygon ? 'lasso' : 'cells', count: n } : { kind: 'none', count: 0 });
    el.dataset.selectionSentAt = String(Date.now());
  }

  scatterplot.subscribe('lassoStart', () => {
    lassoActive = true;
  });
  // A lasso closed where it started ends with a "click" on the canvas, which regl-scatterplot
  // turns into selecting the point under the cursor: keep the lasso's selection instead.
  let lastLasso = { t: -1e9, points: null };
  const justLassoed = () => performance.now() - lastLasso.t < 400 && lastLasso.points;
  scatterplot.subscribe('lassoEnd', ({ coordinates }) => {
    lassoActive = false;
    el.dataset.lassoEndAt = String(Date.now());
    const points = scatterplot.get('selectedPoints');
    lastLasso = { t: performance.now(), points };
    sendSelection(points, coordinates);
  });
  scatterplot.subscribe('select', ({ points }) => {
    if (lassoActive) return;
    if (justLassoed()) {
      scatterplot.select(lastLasso.points, { preventEvent: true });
      return;
    }
    sendSelection(points, null);
  });
  scatterplot.subscribe('deselect', () => {
    if (lassoActive) return;
    if (justLassoed()) {
      if (lastLasso.points.length) scatterplot.select(lastLasso.points, { preventEvent: true });
      return;
    }
    sendSelection([], null);
  });

  const onSelectionChange = () => {
    const v = model.get('selection');
    if (v === lastSent) return;
    selection = decodeSelection(v);
    if (scatterplot.get('isPointsDrawn')) {
      if (selection.length) scatterplot.select(Array.from(selection), { preventEvent: true });
      else scatterplot.deselect({ preventEvent: true });
    }
    updateCount();
  };

  // ---- mode, toolbar ------------------------------------------------------------------------
  function applyMode() {
    const mode = model.get('mode') || 'pan';
    scatterplot.set({
      mouseMode: mode === 'pan' ? 'panZoom' : 'lasso',
      lassoType: mode === 'box' ? 'rectangle' : 'freeform',
    });
    for (const [m, b] of Object.entries(modeButtons)) b.classList.toggle('emw-active', m === mode);
    el.dataset.mode = mode;
  }
  for (const [m, b] of Object.entries(modeButtons)) {
    b.addEventListener('click', () => {
      model.set('mode', m);
      model.save_changes();
      applyMode();
    });
  }
  // shift+drag draws a lasso in any mode: switch to lasso for this one drag (the listener runs
  // in the capture phase, before regl-scatterplot's own mousedown handler on the canvas)
  body.addEventListener(
    'mousedown',
    (e) => {
      if (!e.shiftKey || e.button !== 0 || (model.get('mode') || 'pan') !== 'pan') return;
      // no shift-click text selection (it would turn the drag into a drag-and-drop of text)
      e.preventDefault();
      scatterplot.set({ mouseMode: 'lasso', lassoType: 'freeform' });
      const restore = () => {
        window.removeEventListener('mouseup', restore, true);
        setTimeout(applyMode, 0);
      };
      window.addEventListener('mouseup', restore, true);
    },
    true,
  );
  clearBtn.addEventListener('click', () => {
    scatterplot.deselect({ preventEvent: true });
    sendSelection([], null);
  });
  resetBtn.addEventListener('click', () => fitView());
  pngBtn.addEventListener('click', downloadPng);
  fullBtn.addEventListener('click', () => {
    if (document.fullscreenElement === el) document.exitFullscreen?.();
    else el.requestFullscreen?.().catch((err) => showError(`full screen refused: ${err?.message ?? err}`));
  });
  const onFullscreen = () => {
    const on = document.fullscreenElement === el;
    el.classList.toggle('emw-fullscreen', on);
    el.dataset.fullscreen = String(on);
    fullBtn.title = on ? 'Leave full screen (Esc)' : 'Full screen (Esc leaves)';
    onHeight();
  };
  document.addEventListener('fullscreenchange', onFullscreen);

  function downloadPng() {
    const key = (model.get('color') || 'cells').replace(/[^A-Za-z0-9._-]+/g, '_');
    const name = `${model.get('basis') || 'umap'}_${key}.png`;
    // regl-scatterplot copies each frame into this 2D canvas: it is the view as shown; the
    // title and the legend (or colour bar) go beside it so the image reads on its own
    const legend = model.get('_legend');
    const style = getComputedStyle(el);
    const muted = getComputedStyle(legendEl).getPropertyValue('--jp-ui-font-color2').trim() || '#777';
    const [r, g, b] = themeColors(plot).background.map((v) => Math.round(v * 255));
    const color = model.get('color');
    const image = composeExport(canvas, buildLegend(legend), {
      title: `${model.get('basis') || 'embedding'}${color ? ` coloured by ${color}` : ''}`,
      legendColors: legend?.kind === 'continuous' ? legend.colors ?? [] : [],
      scale: canvas.width / Math.max(1, canvas.clientWidth),
      background: `rgb(${r}, ${g}, ${b})`,
      foreground: style.color || '#222',
      muted,
      font: style.fontFamily,
    });
    image.toBlob((blob) => {
      if (!blob) return showError('PNG export failed');
      const url = URL.createObjectURL(blob);
      const a = h('a', { href: url, download: name });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
      el.dataset.pngAt = String(Date.now());
    }, 'image/png');
  }

  // ---- wheel: zoom only when asked, gently ---------------------------------------------------
  // A notebook scrolls with the wheel: the plot zooms only with Ctrl/Cmd held, or after a
  // click in it (until the mouse leaves), as web maps do; otherwise the page scrolls.
  const ZOOM_DAMPING = 0.35; // regl-scatterplot zooms exp(deltaY / height): ~23% per notch
  let wheelArmed = false;
  let hintTimer = null;
  plot.addEventListener('mousedown', () => {
    wheelArmed = true;
    el.dataset.wheelArmed = 'true';
  }, true);
  plot.addEventListener('mouseleave', () => {
    wheelArmed = false;
    el.dataset.wheelArmed = 'false';
  });
  plot.addEventListener(
    'wheel',
    (e) => {
      if (e.emwDamped) return; // our own copy, on its way to the camera
      // the camera listens on the canvas: stopping the event here (capture phase) keeps it
      // from zooming; not calling preventDefault lets the page scroll
      e.stopPropagation();
      if (!(e.ctrlKey || e.metaKey || wheelArmed)) {
        hint.classList.add('emw-show');
        clearTimeout(hintTimer);
        hintTimer = setTimeout(() => hint.classList.remove('emw-show'), 1500);
        el.dataset.wheelIgnored = String((Number(el.dataset.wheelIgnored) || 0) + 1);
        return;
      }
      e.preventDefault(); // no page scroll, no browser zoom (Ctrl + wheel)
      const copy = new WheelEvent('wheel', {
        deltaX: e.deltaX * ZOOM_DAMPING,
        deltaY: e.deltaY * ZOOM_DAMPING,
        deltaMode: e.deltaMode,
        clientX: e.clientX,
        clientY: e.clientY,
        screenX: e.screenX,
        screenY: e.screenY,
        bubbles: true,
        cancelable: true,
      });
      copy.emwDamped = true;
      canvas.dispatchEvent(copy);
      el.dataset.wheelZoomed = String((Number(el.dataset.wheelZoomed) || 0) + 1);
    },
    { capture: true, passive: false },
  );

  // ---- search box ---------------------------------------------------------------------------
  function fillDatalist() {
    const keys = model.get('_keys') ?? [];
    datalist.replaceChildren(...matchKeys(keys, search.value, 40).map((k) => h('option', { value: k })));
  }
  function submitSearch() {
    const keys = model.get('_keys') ?? [];
    const typed = search.value.trim();
    if (!typed) return;
    // an unknown name goes to the kernel too: its message (with suggestions) is the error,
    // shown where every error is (the Annotator's status line, or here when alone)
    const key = resolveKey(keys, typed) ?? typed;
    search.value = key;
    model.send({ type: 'color_by', key });
  }
  search.addEventListener('input', fillDatalist);
  search.addEventListener('focus', fillDatalist);
  search.addEventListener('keydown', (e) => {
    e.stopPropagation(); // keep JupyterLab's notebook shortcuts out of the search box
    if (e.key === 'Enter') submitSearch();
  });
  search.addEventListener('change', submitSearch);

  // ---- legend ---------------------------------------------------------------------------------
  let legendOpen = true;
  legendToggle.addEventListener('click', () => {
    legendOpen = !legendOpen;
    legendEl.classList.toggle('emw-collapsed', !legendOpen);
    legendToggle.textContent = legendOpen ? '\u25b8' : '\u25c2';
    legendToggle.title = legendOpen ? 'Hide the legend' : 'Show the legend';
    el.dataset.legendOpen = String(legendOpen);
  });
  let legendMin = 0;
  function renderLegend() {
    const lg = buildLegend(model.get('_legend'));
    legendItems.replaceChildren();
    legendEl.style.display = lg.kind === 'none' ? 'none' : '';
    if (lg.kind === 'none') return;
    const add = (...els) => legendItems.append(...els);
    add(h('div', { class: 'emw-legend-title', text: lg.title }));
    if (lg.kind === 'categorical') {
      const max = 80;
      for (const it of lg.items.slice(0, max)) {
        const sw = h('span', { class: 'emw-swatch' });
        sw.style.background = it.color;
        add(
          h(
            'div',
            { class: 'emw-legend-item', 'data-category': it.name },
            sw,
            h('span', { text: it.name }),
            it.count === null ? null : h('span', { class: 'emw-legend-count', text: `(${it.count})` }),
          ),
        );
      }
      if (lg.items.length > max) add(h('div', { text: `... ${lg.items.length - max} more` }));
    } else {
      const g = h('div', { class: 'emw-gradient' });
      g.style.background = lg.gradient;
      add(
        g,
        h('div', { class: 'emw-gradient-labels' }, h('span', { text: lg.min }), h('span', { text: lg.max })),
      );
    }
    search.value = model.get('color') ?? '';
    // the legend only widens (until folded): a narrower one would resize the canvas, i.e. a
    // refit and one more frame of every cell, at each switch between a gene and clusters
    const w = legendEl.offsetWidth;
    if (w > legendMin) {
      legendMin = w;
      legendEl.style.minWidth = `min(${w}px, 35%)`;
    }
  }

  // ---- hover ----------------------------------------------------------------------------------
  let hovered = -1;
  let mouse = [0, 0];
  plot.addEventListener('mousemove', (e) => {
    const r = plot.getBoundingClientRect();
    mouse = [e.clientX - r.left, e.clientY - r.top];
  });
  scatterplot.subscribe('pointOver', (i) => {
    hovered = i;
    model.send({ type: 'hover', index: i });
  });
  const hideTooltip = () => {
    hovered = -1;
    tooltip.style.display = 'none';
  };
  scatterplot.subscribe('pointOut', hideTooltip);
  plot.addEventListener('mouseleave', hideTooltip);
  const onCustom = (msg, buffers) => {
    if (msg?.type === 'zoom') {
      if (msg.reset || !buffers?.length) fitView();
      else {
        const pts = Array.from(asTyped(buffers[0], Uint32Array));
        if (pts.length) scatterplot.zoomToPoints(pts, { padding: msg.padding ?? 0.1, transition: true });
      }
      return;
    }
    if (!msg || msg.type !== 'hover' || msg.index !== hovered) return;
    tooltip.replaceChildren(h('div', { text: msg.name }));
    for (const [k, v] of msg.fields ?? []) tooltip.append(h('div', { text: `${k}: ${formatValue(v)}` }));
    tooltip.style.left = `${Math.min(mouse[0] + 12, size().width - 160)}px`;
    tooltip.style.top = `${mouse[1] + 12}px`;
    tooltip.style.display = 'block';
  };

  // ---- model events ---------------------------------------------------------------------------
  const onData = () => requestDraw();
  function showError(text) {
    errorEl.textContent = model.get('inline_errors') === false ? '' : text;
  }
  const onError = () => showError(model.get('error') ?? '');
  const onHeight = () => {
    body.style.height = `${heightPx()}px`;
    resize();
  };
  const onCurrent = () => updateCount();
  const onEmpty = () => {
    const text = model.get('empty_message') ?? '';
    emptyEl.textContent = text;
    emptyEl.style.display = text ? '' : 'none';
    el.dataset.empty = String(Boolean(text));
  };
  model.on('change:_coords_hash', onData);
  model.on('change:_codes_hash', onData);
  model.on('change:_palette', onData);
  model.on('change:_highlight', onData);
  model.on('change:_generation', onData);
  model.on('change:point_size', onData);
  model.on('change:selection', onSelectionChange);
  model.on('change:mode', applyMode);
  model.on('change:_legend', renderLegend);
  model.on('change:error', onError);
  model.on('change:height', onHeight);
  model.on('change:_n', onCurrent);
  model.on('change:current_selection', onCurrent);
  model.on('change:inline_errors', onError);
  model.on('change:empty_message', onEmpty);
  model.on('msg:custom', onCustom);

  function resize() {
    const s = size();
    if (s.width === scatterplot.get('width') && s.height === scatterplot.get('height')) return;
    // refit when the view is still the fitted one: a narrower canvas would cut clusters off
    const refit = isFitted();
    scatterplot.set(s);
    if (refit) {
      // regl-scatterplot takes the new aspect ratio on its next frame: fit after it
      fitting++;
      requestAnimationFrame(() =>
        requestAnimationFrame(() => {
          fitting--;
          fitView();
        }),
      );
    }
  }
  const ro = new ResizeObserver(resize);
  ro.observe(plot);

  // JupyterLab's theme: the canvas background and the selection ring follow it
  const applyTheme = () => {
    const t = themeColors(plot);
    scatterplot.set({ backgroundColor: t.background, pointColorActive: t.active });
    el.dataset.theme = t.dark ? 'dark' : 'light';
  };
  const themeObserver = new MutationObserver(applyTheme);
  themeObserver.observe(document.body, { attributes: true, attributeFilter: ['data-jp-theme-light', 'data-jp-theme-name', 'class'] });
  applyTheme();

  applyMode();
  renderLegend();
  onError();
  onEmpty();
  updateCount();
  requestDraw();

  return () => {
    destroyed = true;
    ro.disconnect();
    themeObserver.disconnect();
    document.removeEventListener('fullscreenchange', onFullscreen);
    model.off('change:current_selection', onCurrent);
    model.off('change:inline_errors', onError);
    model.off('change:empty_message', onEmpty);
    model.off('change:_coords_hash', onData);
    model.off('change:_codes_hash', onData);
    model.off('change:_palette', onData);
    model.off('change:_highlight', onData);
    model.off('change:_generation', onData);
    model.off('change:point_size', onData);
    model.off('change:selection', onSelectionChange);
    model.off('change:mode', applyMode);
    model.off('change:_legend', renderLegend);
    model.off('change:error', onError);
    model.off('change:height', onHeight);
    model.off('change:_n', onCurrent);
    model.off('msg:custom', onCustom);
    scatterplot.destroy();
  };
}

export default { render };
