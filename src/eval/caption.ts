// Caption metrics after coco-caption (pycocoevalcap), re-implemented from its description.
// Tokens: lower case, punctuation removed, split on spaces (coco runs the PTB tokenizer and
// drops punctuation tokens; this is the plain-text approximation).
// BLEU-4, corpus level: clipped n-gram matches and candidate n-gram counts summed over the
// corpus, p_n = (match_n + 1e-15) / (count_n + 1e-9); the reference length of each candidate is
// the closest reference length (ties → the shorter); brevity penalty exp(1 − r/c) when c < r,
// with c, r summed over the corpus; BLEU = BP · exp(mean log p_n).
// CIDEr-D: n = 1..4 tf-idf vectors, tf = n-gram count, idf = log(#images) − log(max(1, df)) with
// df counted over the reference sets; per n the similarity Σ min(v_c, v_r)·v_r / (|v_c|·|v_r|)
// (clipped) times exp(−(l_c − l_r)² / (2·6²)), l = bigram count (as coco-caption); averaged over n, over the
// references of the image, ×10; the corpus score is the mean over images.

export function captionTokens(s: string): string[] {
  return s.toLowerCase().replace(/[^\p{L}\p{N}\s']/gu, ' ').replace(/'/g, '').split(/\s+/).filter((w) => w !== '');
}

function ngrams(tokens: readonly string[], n: number): Map<string, number> {
  const m = new Map<string, number>();
  for (let i = 0; i + n <= tokens.length; i++) {
    const k = tokens.slice(i, i + n).join(' ');
    m.set(k, (m.get(k) ?? 0) + 1);
  }
  return m;
}

export interface CaptionItem {
  prediction: string;
  references: readonly string[];
}

export interface BleuResult {
  bleu: [number, number, number, number];
  brevity_penalty: number;
  /** Candidate / reference length over the corpus. */
  ratio: number;
}

/** Corpus BLEU-1..4 as coco-caption computes it. */
export function bleu(items: readonly CaptionItem[]): BleuResult {
  if (items.length === 0) throw new Error('bleu: no items');
  const match = [0, 0, 0, 0], guess = [0, 0, 0, 0];
  let c = 0, r = 0;
  for (const it of items) {
    if (it.references.length === 0) throw new Error('bleu: an item has no references');
    const hyp = captionTokens(it.prediction);
    const refs = it.references.map(captionTokens);
    c += hyp.length;
    r += refs.map((x) => x.length).reduce((best, l) => {
      const d = Math.abs(l - hyp.length), bd = Math.abs(best - hyp.length);
      return d < bd || (d === bd && l < best) ? l : best;
    });
    for (let n = 1; n <= 4; n++) {
      const h = ngrams(hyp, n);
      const maxRef = new Map<string, number>();
      for (const rf of refs) for (const [k, v] of ngrams(rf, n)) maxRef.set(k, Math.max(maxRef.get(k) ?? 0, v));
      for (const [k, v] of h) match[n - 1] += Math.min(v, maxRef.get(k) ?? 0);
      guess[n - 1] += Math.max(0, hyp.length - n + 1);
    }
  }
  const tiny = 1e-15, small = 1e-9;
  const ratio = (c + tiny) / (r + small);
  const bp = ratio < 1 ? Math.exp(1 - 1 / ratio) : 1;
  const out: number[] = [];
  let logSum = 0;
  for (let n = 0; n < 4; n++) {
    logSum += Math.log((match[n]! + tiny) / (guess[n]! + small));
    out.push(bp * Math.exp(logSum / (n + 1)));
  }
  return { bleu: out as [number, number, number, number], brevity_penalty: bp, ratio };
}

/** Corpus CIDEr-D (sigma 6) and the per-item scores. */
export function ciderD(items: readonly CaptionItem[], sigma = 6): { cider: number; scores: number[] } {
  if (items.length === 0) throw new Error('cider: no items');
  const df = new Map<string, number>();
  const refGrams = items.map((it) => {
    if (it.references.length === 0) throw new Error('cider: an item has no references');
    return it.references.map((r) => { const t = captionTokens(r); return { len: Math.max(0, t.length - 1), grams: [1, 2, 3, 4].map((n) => ngrams(t, n)) }; });
  });
  for (const refs of refGrams) {
    const seen = new Set<string>();
    for (const r of refs) for (const g of r.grams) for (const k of g.keys()) seen.add(k);
    for (const k of seen) df.set(k, (df.get(k) ?? 0) + 1);
  }
  const logN = Math.log(items.length);
  const vec = (grams: Map<string, number>[]): { v: Map<string, number>[]; norm: number[] } => {
    const v = grams.map((g) => new Map([...g].map(([k, tf]) => [k, tf * (logN - Math.log(Math.max(1, df.get(k) ?? 0)))])));
    return { v, norm: v.map((m) => Math.sqrt([...m.values()].reduce((a, x) => a + x * x, 0))) };
  };
  const scores = items.map((it, i) => {
    const ht = captionTokens(it.prediction);
    const h = vec([1, 2, 3, 4].map((n) => ngrams(ht, n)));
    let total = 0;
    for (const r of refGrams[i]!) {
      const rv = vec(r.grams);
      const delta = Math.max(0, ht.length - 1) - r.len;
      let s = 0;
      for (let n = 0; n < 4; n++) {
        let val = 0;
        for (const [k, x] of h.v[n]!) { const y = rv.v[n]!.get(k); if (y !== undefined) val += Math.min(x, y) * y; }
        if (h.norm[n] !== 0 && rv.norm[n] !== 0) val /= h.norm[n]! * rv.norm[n]!;
        s += val * Math.exp(-(delta * delta) / (2 * sigma * sigma));
      }
      total += s / 4;
    }
    return (total / refGrams[i]!.length) * 10;
  });
  return { cider: scores.reduce((a, b) => a + b, 0) / scores.length, scores };
}
