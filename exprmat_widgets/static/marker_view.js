// Marker view of the marker panel: an SVG dot plot drawn in Python (traitlet `svg`) and the
// marker table (traitlets `columns`, `rows`: pre-formatted strings). Clicking a gene (a table
// row, a dot or a gene label) sends {event: "gene", gene, row} to Python, which colours the
// UMAP and echoes the gene back in `selected` (highlighted here).
function render({ model, el }) {
  el.classList.add("em-marker-view");
  const plot = document.createElement("div");
  plot.className = "em-dotplot";
  const wrap = document.createElement("div");
  wrap.className = "em-marker-table";
  el.append(plot, wrap);

  function mark() {
    const gene = model.get("selected");
    for (const e of el.querySelectorAll("[data-gene]")) {
      e.classList.toggle("em-selected", gene !== "" && e.dataset.gene === gene);
    }
  }
  function drawPlot() {
    plot.innerHTML = model.get("svg"); // built in Python from escaped names
    mark();
  }
  function drawTable() {
    const cols = model.get("columns");
    const rows = model.get("rows");
    const gi = model.get("gene_column");
    const table = document.createElement("table");
    const head = table.createTHead().insertRow();
    for (const c of cols) {
      const th = document.createElement("th");
      th.textContent = c;
      head.appendChild(th);
    }
    const body = table.createTBody();
    rows.forEach((r, i) => {
      const tr = body.insertRow();
      tr.className = "em-marker-row";
      tr.dataset.row = String(i);
      tr.dataset.gene = r[gi];
      tr.title = `colour the UMAP by ${r[gi]}`;
      r.forEach((v, j) => {
        const td = tr.insertCell();
        td.textContent = v;
        if (j > 1) td.className = "em-num";
      });
    });
    wrap.replaceChildren(table);
    el.dataset.nrows = String(rows.length);
    mark();
  }
  el.addEventListener("click", (e) => {
    const t = e.target.closest("[data-gene]");
    if (!t || !el.contains(t)) return;
    model.send({ event: "gene", gene: t.dataset.gene, row: Number(t.dataset.row ?? -1) });
  });
  model.on("change:svg", drawPlot);
  model.on("change:rows", drawTable);
  model.on("change:columns", drawTable);
  model.on("change:selected", mark);
  drawPlot();
  drawTable();
}
export default { render };
