// VQA accuracy with the EvalAI (VQAv2) answer normalisation, written from its public
// description: newlines/tabs → spaces; punctuation removed (or turned into a space when it sits
// inside a word, unless the text has a digit,digit comma); periods not followed by a digit
// removed; lower case; number words zero..ten → digits; articles a/an/the dropped; apostrophe-less
// contractions restored ("dont" → "don't"). Accuracy of an answer against 10 human answers is
// the mean over the 10 leave-one-out subsets of min(#matches among the other 9 / 3, 1); against
// a single reference it is exact match after normalisation. Both sides are normalised always
// (EvalAI skips it for the references when all 10 agree, which gives the same matches here).

const PUNCT = [';', '/', '[', ']', '"', '{', '}', '(', ')', '=', '+', '\\', '_', '-', '>', '<', '@', '`', ',', '?', '!'];

const NUMBERS: Record<string, string> = {
  none: '0', zero: '0', one: '1', two: '2', three: '3', four: '4', five: '5', six: '6', seven: '7', eight: '8', nine: '9', ten: '10',
};

const ARTICLES = new Set(['a', 'an', 'the']);

// Contractions written without the apostrophe → the standard spelling.
const CONTRACTIONS: Record<string, string> = {
  aint: "ain't", arent: "aren't", cant: "can't", couldve: "could've", couldnt: "couldn't", didnt: "didn't", doesnt: "doesn't",
  dont: "don't", hadnt: "hadn't", hasnt: "hasn't", havent: "haven't", hed: "he'd", hes: "he's", howd: "how'd", howll: "how'll",
  hows: "how's", Id: "I'd", Im: "I'm", Ive: "I've", isnt: "isn't", itd: "it'd", itll: "it'll", lets: "let's", maam: "ma'am",
  mightnt: "mightn't", mightve: "might've", mustnt: "mustn't", mustve: "must've", neednt: "needn't", notve: "not've",
  oclock: "o'clock", shant: "shan't", shed: "she'd", shes: "she's", shouldve: "should've", shouldnt: "shouldn't",
  somebodys: "somebody's", someones: "someone's", somethings: "something's", thatll: "that'll", thats: "that's",
  thered: "there'd", therere: "there're", theres: "there's", theyd: "they'd", theyll: "they'll", theyre: "they're",
  theyve: "they've", wasnt: "wasn't", wed: "we'd", weve: "we've", werent: "weren't", whatll: "what'll", whatre: "what're",
  whats: "what's", whatve: "what've", whens: "when's", whered: "where'd", wheres: "where's", whereve: "where've", whod: "who'd",
  wholl: "who'll", whos: "who's", whove: "who've", whyll: "why'll", whyre: "why're", whys: "why's", wont: "won't",
  wouldve: "would've", wouldnt: "wouldn't", yall: "y'all", youd: "you'd", youll: "you'll", youre: "you're", youve: "you've",
};

const DIGIT_COMMA = /(\d)(,)(\d)/;
// A period not preceded... EvalAI's pattern only checks that no digit follows.
const PERIOD = /(?!<=\d)(\.)(?!\d)/g;

export function stripPunctuation(s: string): string {
  let out = s;
  const digitComma = DIGIT_COMMA.test(s);
  for (const p of PUNCT) {
    if (s.includes(`${p} `) || s.includes(` ${p}`) || digitComma) out = out.split(p).join('');
    else out = out.split(p).join(' ');
  }
  return out.replace(PERIOD, '');
}

export function normalizeDigitsArticles(s: string): string {
  const words: string[] = [];
  for (const w0 of s.toLowerCase().split(/\s+/)) {
    if (w0 === '') continue;
    const w = NUMBERS[w0] ?? w0;
    if (ARTICLES.has(w)) continue;
    words.push(w);
  }
  return words.map((w) => CONTRACTIONS[w] ?? w).join(' ');
}

/** The full EvalAI normalisation of one answer. */
export function normalizeVqaAnswer(a: string): string {
  return normalizeDigitsArticles(stripPunctuation(a.replace(/[\n\t]/g, ' ').trim())).trim();
}

/** Accuracy of one predicted answer against its reference answers (see the header). */
export function vqaAccuracy(pred: string, refs: readonly string[]): number {
  if (refs.length === 0) throw new Error('vqaAccuracy: no reference answers');
  const p = normalizeVqaAnswer(pred);
  const r = refs.map(normalizeVqaAnswer);
  if (r.length === 1) return p === r[0] ? 1 : 0;
  let acc = 0;
  for (let i = 0; i < r.length; i++) {
    let m = 0;
    for (let j = 0; j < r.length; j++) if (j !== i && r[j] === p) m++;
    acc += Math.min(1, m / 3);
  }
  return acc / r.length;
}

/** Mean accuracy over questions. */
export function vqaScore(items: readonly { prediction: string; references: readonly string[] }[]): { accuracy: number; count: number } {
  if (items.length === 0) throw new Error('vqaScore: no items');
  const s = items.reduce((a, it) => a + vqaAccuracy(it.prediction, it.references), 0);
  return { accuracy: s / items.length, count: items.length };
}
