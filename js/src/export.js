// The PNG download: the view as shown, with its title (basis and colour key) above and
// its legend (categories with counts, or the colour bar of a gene) beside the points, so
// the picture can be read alone (as jupyter-scatter's download can).

/**
 * Where the legend's rows go: as many rows per column as fit in `height`, then a new
 * column (a long categorical legend never runs off the image).
 * Returns {columns, rowsPerColumn, width, height} in pixels.
 */
export function legendGrid(nItems, { height, rowHeight, columnWidth, headerHeight = 0, padding = 0 }) {
  const avail = Math.max(rowHeight, height - headerHeight - 2 * padding);
  const rowsPerColumn = Math.max(1, Math.floor(avail / rowHeight));
  const columns = Math.max(1, Math.ceil(nItems / rowsPerColumn));
  return {
    columns,
    rowsPerColumn,
    width: 2 * padding + columns * columnWidth,
    height: 2 * padding + headerHeight + Math.min(nItems, rowsPerColumn) * rowHeight,
  };
}

/**
 * A canvas holding `plotCanvas` (the scatter's 2D copy of its frame), a title line above it
 * and the legend `lg` (from buildLegend) on its right. `scale`: device pixels per CSS pixel
 * of the plot; colours are CSS colours of the theme.
 */
export function composeExport(plotCanvas, lg, { title, legendColors = [], scale = 1, background, foreground, muted, font }) {
  const s = scale > 0 ? scale : 1;
  const px = (v) => Math.round(v * s);
  const family = font || 'sans-serif';
  const fontOf = (size, weight = '') => `${weight} ${px(size)}px ${family}`.trim();
  const measure = document.createElement('canvas').getContext('2d');
  const textWidth = (text, f) => {
    measure.font = f;
    return measure.measureText(text).width;
  };
  const pad = px(10);
  const titleH = title ? px(24) : 0;
  const plotW = plotCanvas.width;
  const plotH = plotCanvas.height;
  const rowH = px(18);
  const headerH = px(22);
  let legendW = 0;
  let grid = null;
  const itemText = (it) => (it.count === null || it.count === undefined ? it.name : `${it.name} (${it.count})`);
  if (lg.kind === 'categorical' && lg.items.length) {
    const widest = Math.max(textWidth(lg.title, fontOf(12, '600')), ...lg.items.map((it) => textWidth(itemText(it), fontOf(12)) + px(18)));
    const columnWidth = Math.ceil(widest) + px(12);
    grid = legendGrid(lg.items.length, { height: plotH, rowHeight: rowH, columnWidth, headerHeight: headerH, padding: pad });
    legendW = grid.width;
  } else if (lg.kind === 'continuous') {
    legendW = Math.max(px(150), Math.ceil(textWidth(lg.title, fontOf(12, '600'))) + 2 * pad);
  }
  const out = document.createElement('canvas');
  out.width = plotW + legendW;
  out.height = titleH + plotH;
  const ctx = out.getContext('2d');
  ctx.fillStyle = background;
  ctx.fillRect(0, 0, out.width, out.height);
  ctx.textBaseline = 'middle';
  if (title) {
    ctx.fillStyle = foreground;
    ctx.font = fontOf(14, '600');
    ctx.fillText(title, pad, titleH / 2);
  }
  ctx.drawImage(plotCanvas, 0, titleH);
  const x0 = plotW + pad;
  const y0 = titleH + pad;
  if (grid) {
    ctx.fillStyle = foreground;
    ctx.font = fontOf(12, '600');
    ctx.fillText(lg.title, x0, y0 + headerH / 2);
    ctx.font = fontOf(12);
    const columnWidth = (grid.width - 2 * pad) / grid.columns;
    lg.items.forEach((it, i) => {
      const col = Math.floor(i / grid.rowsPerColumn);
      const row = i % grid.rowsPerColumn;
      const x = x0 + col * columnWidth;
      const y = y0 + headerH + row * rowH + rowH / 2;
      ctx.fillStyle = it.color;
      ctx.beginPath();
      ctx.arc(x + px(5), y, px(5), 0, 2 * Math.PI);
      ctx.fill();
      ctx.fillStyle = foreground;
      ctx.fillText(it.name, x + px(16), y);
      if (it.count !== null && it.count !== undefined) {
        const w = textWidth(it.name, ctx.font);
        ctx.fillStyle = muted;
        ctx.fillText(` (${it.count})`, x + px(16) + w, y);
      }
    });
  } else if (lg.kind === 'continuous') {
    ctx.fillStyle = foreground;
    ctx.font = fontOf(12, '600');
    ctx.fillText(lg.title, x0, y0 + headerH / 2);
    const barW = legendW - 2 * pad;
    const barY = y0 + headerH + px(4);
    const g = ctx.createLinearGradient(x0, 0, x0 + barW, 0);
    const n = legendColors.length;
    legendColors.forEach((c, i) => g.addColorStop(n > 1 ? i / (n - 1) : 0, c));
    ctx.fillStyle = n ? g : muted;
    ctx.fillRect(x0, barY, barW, px(12));
    ctx.fillStyle = muted;
    ctx.font = fontOf(11);
    const labelY = barY + px(12) + px(10);
    ctx.fillText(lg.min, x0, labelY);
    ctx.textAlign = 'right';
    ctx.fillText(lg.max, x0 + barW, labelY);
    ctx.textAlign = 'left';
  }
  return out;
}
