// Seeded random numbers, computed in TypeScript so every backend sees the same values.
// xoshiro128** state seeded by splitmix32; normals by Box-Muller (both outputs used).

export class Rng {
  private s0: number; private s1: number; private s2: number; private s3: number;
  private spare: number | null = null;

  constructor(seed: number) {
    let x = seed >>> 0;
    const next = (): number => {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s0 = next(); this.s1 = next(); this.s2 = next(); this.s3 = next();
  }

  /** Uniform 32-bit unsigned integer. */
  nextU32(): number {
    const r = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0; this.s3 ^= this.s1; this.s1 ^= this.s2; this.s0 ^= this.s3;
    this.s2 ^= t; this.s3 = rotl(this.s3, 11);
    return r;
  }

  /** Uniform in [0, 1) with 24 random bits (exactly representable in f32). */
  uniform(): number {
    return (this.nextU32() >>> 8) / 16777216;
  }

  /** Standard normal. */
  normal(): number {
    if (this.spare !== null) { const v = this.spare; this.spare = null; return v; }
    let u = 0;
    while (u === 0) u = this.uniform();
    const v = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.uniform() * n);
  }

  fillUniform(out: Float32Array, lo = 0, hi = 1): Float32Array {
    for (let i = 0; i < out.length; i++) out[i] = lo + (hi - lo) * this.uniform();
    return out;
  }

  fillNormal(out: Float32Array, mean = 0, std = 1): Float32Array {
    for (let i = 0; i < out.length; i++) out[i] = mean + std * this.normal();
    return out;
  }

  /** Normal(mean, std) redrawn until inside [a, b] (absolute bounds, as torch.nn.init.trunc_normal_). */
  fillTruncNormal(out: Float32Array, mean = 0, std = 1, a = -2, b = 2): Float32Array {
    if (!(a < b)) throw new Error(`truncNormal: bounds [${a}, ${b}] are empty`);
    const pa = (a - mean) / std, pb = (b - mean) / std;
    if (pb < -6 || pa > 6) throw new Error(`truncNormal: bounds [${a}, ${b}] are more than 6 std from the mean`);
    for (let i = 0; i < out.length; i++) {
      let z: number;
      do z = this.normal(); while (z < pa || z > pb);
      out[i] = mean + std * z;
    }
    return out;
  }

  /** Serialisable state (for checkpoints). */
  state(): number[] {
    return [this.s0, this.s1, this.s2, this.s3, this.spare === null ? NaN : this.spare];
  }

  setState(s: readonly number[]): void {
    if (s.length !== 5) throw new Error('Rng.setState: expected 5 numbers');
    [this.s0, this.s1, this.s2, this.s3] = [s[0]! >>> 0, s[1]! >>> 0, s[2]! >>> 0, s[3]! >>> 0];
    this.spare = Number.isNaN(s[4]) ? null : s[4]!;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

let globalRng = new Rng(0);

/** Reseeds the default generator used by ops that take no explicit Rng. */
export function manualSeed(seed: number): void {
  globalRng = new Rng(seed);
}

export function defaultRng(): Rng {
  return globalRng;
}
