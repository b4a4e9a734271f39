// erf / erfc in f64 to ~1e-15 relative: a positive-term series below |x| = 3, a continued
// fraction for erfc above it.

const TWO_OVER_SQRT_PI = 1.1283791670955126;
const ONE_OVER_SQRT_PI = 0.5641895835477563;
const SPLIT = 3;

/** erf(x) = 2/sqrt(pi) * exp(-x^2) * sum_{n>=0} x (2x^2)^n / (1*3*...*(2n+1)); every term has x's sign. */
function erfSeries(x: number): number {
  const r = 2 * x * x;
  let term = x;
  let sum = x;
  for (let n = 1; n < 300; n++) {
    term *= r / (2 * n + 1);
    sum += term;
    if (Math.abs(term) <= 1e-17 * Math.abs(sum)) break;
  }
  return TWO_OVER_SQRT_PI * Math.exp(-x * x) * sum;
}

/** erfc(x) for x >= SPLIT: exp(-x^2)/sqrt(pi) / (x + (1/2)/(x + (2/2)/(x + (3/2)/(x + ...)))), evaluated from the tail. */
function erfcFraction(x: number): number {
  let f = x;
  for (let n = 80; n >= 1; n--) f = x + n / 2 / f;
  return (ONE_OVER_SQRT_PI * Math.exp(-x * x)) / f;
}

export function erf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (Math.abs(x) < SPLIT) return erfSeries(x);
  return x > 0 ? 1 - erfcFraction(x) : erfcFraction(-x) - 1;
}

export function erfc(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x >= SPLIT) return erfcFraction(x);
  if (x <= -SPLIT) return 2 - erfcFraction(-x);
  return 1 - erfSeries(x);
}

/** Standard normal CDF Phi(x) = 0.5 * erfc(-x / sqrt 2), accurate in both tails' relative sense for x < 0. */
export function normalCdf(x: number): number {
  return 0.5 * erfc(-x * Math.SQRT1_2);
}

/** Standard normal density. */
export function normalPdf(x: number): number {
  return Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI);
}
