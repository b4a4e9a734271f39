// The systems by config.json "system" name, and the presets by CLI name. Every system file
// exports `system` and `presets`.

import * as llava from './llava.ts';
import * as sphinx from './sphinx.ts';
import * as fuyu from './fuyu.ts';
import * as llavaNext from './llava-next.ts';
import * as llavaUhd from './llava-uhd.ts';
import * as monkey from './monkey.ts';
import * as slime from './slime.ts';
import * as flamingo from './flamingo.ts';
import * as cogvlm from './cogvlm.ts';
import * as moeLlava from './moe-llava.ts';
import * as lavin from './lavin.ts';
import * as blip2 from './blip2.ts';
import * as qwenVl from './qwen-vl.ts';
import * as llamaVid from './llama-vid.ts';
import * as xcomposer from './internlm-xcomposer.ts';
import * as nextGpt from './next-gpt.ts';
import type { PresetConfig, PresetDef, VlmSystem } from './system.ts';

const modules: { system: VlmSystem<any, any>; presets: PresetDef[] }[] = [sphinx, llava, llavaNext, llavaUhd, monkey, slime, fuyu, flamingo, cogvlm, moeLlava, lavin, blip2, qwenVl, llamaVid, xcomposer, nextGpt]; // eslint-disable-line @typescript-eslint/no-explicit-any

const SYSTEMS = new Map<string, VlmSystem>(modules.map((m) => [m.system.name, m.system as VlmSystem]));
const PRESETS = new Map<string, PresetDef>(modules.flatMap((m) => m.presets.map((p) => [p.name, p] as [string, PresetDef])));

export function systemFor(name: string, source = 'config.json'): VlmSystem {
  const s = SYSTEMS.get(name);
  if (s === undefined) throw new Error(`${source}: unknown system '${name}' (known: ${[...SYSTEMS.keys()].join(', ')})`);
  return s;
}

export function presetNames(): string[] {
  return [...PRESETS.keys()];
}

/** `name` or `name:tiny`. */
export function presetConfig(spec: string): PresetConfig & { preset: string; tiny: boolean } {
  const tiny = spec.endsWith(':tiny');
  const name = tiny ? spec.slice(0, -5) : spec;
  const p = PRESETS.get(name);
  if (p === undefined) throw new Error(`unknown preset '${spec}' (known: ${presetNames().join(', ')}; add ':tiny' for the test-size variant)`);
  return { ...(tiny ? p.tiny() : p.real()), preset: spec, tiny };
}
