// Reading Hugging Face config.json values: each getter names the key and the file on error.

export class ConfigReader {
  readonly source: string;
  private readonly obj: Record<string, unknown>;

  constructor(json: unknown, source = 'config.json') {
    if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new Error(`${source}: expected a JSON object`);
    this.obj = json as Record<string, unknown>;
    this.source = source;
  }

  has(key: string): boolean {
    return Object.hasOwn(this.obj, key) && this.obj[key] !== null;
  }

  raw(key: string): unknown {
    return Object.hasOwn(this.obj, key) ? this.obj[key] : undefined;
  }

  private fail(key: string, want: string): never {
    const v = this.raw(key);
    throw new Error(`${this.source}: '${key}' ${v === undefined ? 'is missing' : `must be ${want}, got ${JSON.stringify(v)}`}${v === undefined ? ` (expected ${want})` : ''}`);
  }

  /** A positive integer (or >= min). */
  int(key: string, def?: number, min = 1, max = 2 ** 31): number {
    if (!this.has(key)) return def !== undefined ? def : this.fail(key, `an integer >= ${min}`);
    const v = this.obj[key];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) this.fail(key, `an integer in [${min}, ${max}]`);
    return v as number;
  }

  num(key: string, def?: number, min = -Infinity, max = Infinity): number {
    if (!this.has(key)) return def !== undefined ? def : this.fail(key, 'a number');
    const v = this.obj[key];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) this.fail(key, `a number in [${min}, ${max}]`);
    return v as number;
  }

  bool(key: string, def?: boolean): boolean {
    if (!this.has(key)) return def !== undefined ? def : this.fail(key, 'true or false');
    const v = this.obj[key];
    if (typeof v !== 'boolean') this.fail(key, 'true or false');
    return v as boolean;
  }

  str<T extends string>(key: string, def?: T, allowed?: readonly T[]): T {
    if (!this.has(key)) return def !== undefined ? def : this.fail(key, allowed ? `one of ${allowed.join(', ')}` : 'a string');
    const v = this.obj[key];
    if (typeof v !== 'string' || (allowed && !allowed.includes(v as T))) this.fail(key, allowed ? `one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}` : 'a string');
    return v as T;
  }

  intList(key: string, def?: number[]): number[] {
    if (!this.has(key)) return def !== undefined ? def : this.fail(key, 'a list of integers');
    const v = this.obj[key];
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'number' && Number.isInteger(x) && x >= 0)) this.fail(key, 'a list of non-negative integers');
    return v as number[];
  }

  /** A nested object (e.g. vision_config), read with the same rules. */
  sub(key: string, def?: Record<string, unknown>): ConfigReader {
    if (!this.has(key)) {
      if (def !== undefined) return new ConfigReader(def, `${this.source}:${key}`);
      this.fail(key, 'an object');
    }
    return new ConfigReader(this.obj[key], `${this.source}:${key}`);
  }
}
