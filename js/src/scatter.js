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
import { pointSizeFor } from './geometry.js';
import { matchKeys, resolveKey } from './search.js';

let counter = 0;

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
  const resetBtn = h('button', { text: 'Reset view', title: 'Zoom to all cells', 'data-action': 'reset' });
  const listId = `${uid}-keys`;
  const search = h('input', { type: 'text', placeholder: 'colour by gene or obs column', list: listId, class: 'emw-search' });
  const datalist = h('datalist', { id: listId });
  const count = h('span', { class: 'emw-count', 'data-testid': 'selection-count' });
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
  );
  const canvas = h('canvas', { class: 'emw-canvas' });
  const legendEl = h('div', { class: 'emw-legend' });
  const tooltip = h('div', { class: 'emw-tooltip' });
  const body = h('div', { class: 'emw-body' }, canvas, legendEl, tooltip);
  el.append(toolbar, body);

  const heightPx = () => Math.max(150, model.get('height') | 0);
  body.style.height = `${heightPx()}px`;
  const size = () => {
    // clientWidth (inside the border): sizing from the border box made a canvas in a
    // flex row grow by the border width on every resize
    return { width: Math.max(100, body.clientWidth || 600), height: heightPx() };
  };

  // ---- scatterplot -------------------------------------------------------------------------
  const n0 = model.get('_n') | 0;
  const { width, height } = size();
  const scatterplot = createScatterplot({
    canvas,
    width,
    height,
    pointSize: pointSizeFor(n0),
    backgroundColor: '#ffffff',
    pointColorActive: '#111111',
    pointOutlineWidth: 2,
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
  let coords = { x: new Float32Array(0), y: new Float32Array(0), n: 0 };
  let selection = decodeSelection(model.get('selection')); // Uint32Array of positions
  let lastSent = null;
  // the generation (see UmapScatter._generation) and number of the points regl-scatterplot
  // selects from: they change only when a draw with new points has resolved
  let drawn = { generation: model.get('_generation') | 0, n: n0 };
  let lassoActive = false;
  let destroyed = false;

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

  async function drawOnce() {
    const ta = performance.now();
    const generation = model.get('_generation') | 0;
    const hash = model.get('_coords_hash');
    if (hash !== coordsHash) {
      coords = decodeCoords(model.get('_coords'));
      coordsHash = hash;
    }
    const palette = model.get('_palette') ?? [];
    const z = codesToValues(model.get('_codes'), coords.n, palette.length);
    const { values: w, active } = highlightToValues(model.get('_highlight'), coords.n);
    applyStyle(active);
    const sel = Array.from(selection.filter((i) => i < coords.n));
    const tb = performance.now();
    await scatterplot.draw(
      { x: coords.x, y: coords.y, z, w },
      { zDataType: 'categorical', wDataType: 'categorical', select: sel },
    );
    drawn = { generation, n: coords.n };
    el.dataset.generation = String(generation);
    // where the time of the last draw went (ms): decoding our buffers, regl-scatterplot's draw
    el.dataset.lastDrawTimings = JSON.stringify({
      sinceRender: Math.round(ta - t0),
      decode: Math.round(tb - ta),
      draw: Math.round(performance.now() - tb),
    });
    // continuous colours: expressing cells on top of the rest
    const continuous = model.get('_legend')?.kind === 'continuous';
    if (continuous || scatterplot.get('pointOrder') !== null) {
      scatterplot.set({ pointOrder: continuous ? orderByCodes(z, palette.length) : null });
    }
  }

  let dirty = false;
  let busy = false;
  async function requestDraw() {
    dirty = true;
    if (busy) return;
    busy = true;
    try {
      while (dirty && !destroyed) {
        dirty = false;
        await drawOnce();
      }
    } catch (err) {
      errorEl.textContent = `draw failed: ${err?.message ?? err}`;
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
  function updateCount() {
    const total = model.get('_n') | 0;
    count.textContent = `${selection.length.toLocaleString('en-US')} of ${total.toLocaleString('en-US')} selected`;
    count.dataset.count = String(selection.length);
  }

  function sendSelection(points, polygon) {
    const state = selectionState(points, polygon, drawn);
    selection = Uint32Array.from(points ?? []);
    lastSent = state.selection;
    model.set(state);
    model.save_changes();
    updateCount();
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
  resetBtn.addEventListener('click', () => scatterplot.reset());

  // ---- search box ---------------------------------------------------------------------------
  function fillDatalist() {
    const keys = model.get('_keys') ?? [];
    datalist.replaceChildren(...matchKeys(keys, search.value, 40).map((k) => h('option', { value: k })));
  }
  function submitSearch() {
    const keys = model.get('_keys') ?? [];
    const key = resolveKey(keys, search.value);
    if (key === null) {
      errorEl.textContent = search.value.trim() ? `no obs column or gene named '${search.value.trim()}'` : '';
      return;
    }
    errorEl.textContent = '';
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
  function renderLegend() {
    const lg = buildLegend(model.get('_legend'));
    legendEl.replaceChildren();
    legendEl.style.display = lg.kind === 'none' ? 'none' : 'block';
    if (lg.kind === 'none') return;
    legendEl.append(h('div', { class: 'emw-legend-title', text: lg.title }));
    if (lg.kind === 'categorical') {
      const max = 80;
      for (const it of lg.items.slice(0, max)) {
        const sw = h('span', { class: 'emw-swatch' });
        sw.style.background = it.color;
        legendEl.append(
          h(
            'div',
            { class: 'emw-legend-item', 'data-category': it.name },
            sw,
            h('span', { text: it.name }),
            it.count === null ? null : h('span', { class: 'emw-legend-count', text: `(${it.count})` }),
          ),
        );
      }
      if (lg.items.length > max) legendEl.append(h('div', { text: `... ${lg.items.length - max} more` }));
    } else {
      const g = h('div', { class: 'emw-gradient' });
      g.style.background = lg.gradient;
      legendEl.append(
        g,
        h('div', { class: 'emw-gradient-labels' }, h('span', { text: lg.min }), h('span', { text: lg.max })),
      );
    }
    search.value = model.get('color') ?? '';
  }

  // ---- hover ----------------------------------------------------------------------------------
  let hovered = -1;
  let mouse = [0, 0];
  body.addEventListener('mousemove', (e) => {
    const r = body.getBoundingClientRect();
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
  body.addEventListener('mouseleave', hideTooltip);
  const onCustom = (msg, buffers) => {
    if (msg?.type === 'zoom') {
      if (msg.reset || !buffers?.length) scatterplot.reset();
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
  const onError = () => {
    errorEl.textContent = model.get('error') ?? '';
  };
  const onHeight = () => {
    body.style.height = `${heightPx()}px`;
    scatterplot.set(size());
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
  model.on('change:_n', updateCount);
  model.on('msg:custom', onCustom);

  const ro = new ResizeObserver(() => {
    const s = size();
    if (s.width !== scatterplot.get('width') || s.height !== scatterplot.get('height')) scatterplot.set(s);
  });
  ro.observe(body);

  applyMode();
  renderLegend();
  onError();
  updateCount();
  requestDraw();

  return () => {
    destroyed = true;
    ro.disconnect();
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
    model.off('change:_n', updateCount);
    model.off('msg:custom', onCustom);
    scatterplot.destroy();
  };
}

export default { render };
