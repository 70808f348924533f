// Completion for the colour search box: obs columns first, then genes.

/**
 * Up to `limit` keys matching `query` (case-insensitive): exact matches first, then
 * prefix matches, then substring matches, each group in the original order.
 */
export function matchKeys(keys, query, limit = 30) {
  const q = String(query ?? '').trim().toLowerCase();
  if (!q) return (keys ?? []).slice(0, limit);
  const exact = [];
  const prefix = [];
  const inner = [];
  for (const k of keys ?? []) {
    const l = String(k).toLowerCase();
    if (l === q) exact.push(k);
    else if (l.startsWith(q)) prefix.push(k);
    else if (l.includes(q)) inner.push(k);
    if (exact.length + prefix.length >= limit) break;
  }
  return [...exact, ...prefix, ...inner].slice(0, limit);
}

/** The key a typed value resolves to: exact match, else a unique case-insensitive match, else null. */
export function resolveKey(keys, value) {
  const v = String(value ?? '').trim();
  if (!v) return null;
  if ((keys ?? []).includes(v)) return v;
  const l = v.toLowerCase();
  const hits = (keys ?? []).filter((k) => String(k).toLowerCase() === l);
  return hits.length === 1 ? hits[0] : null;
}
