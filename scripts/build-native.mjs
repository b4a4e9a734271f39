// npm `install` script: builds the optional native backend (native/ -> native/build/Release/chimera_native.node)
// with node-gyp against the running Node's own headers. A failed build is not fatal: Chimera then
// runs on the reference backend, so this prints one warning and exits 0.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const nativeDir = join(root, 'native');

function warn(msg) {
  console.warn(`chimera: native backend not built (${msg}); falling back to the reference backend.`);
}

// node-gyp as [command, ...prefixArgs]: PATH, then npm's config, then npm's bundled copy.
function findNodeGyp() {
  const probe = spawnSync('node-gyp', ['--version'], { stdio: 'ignore', shell: process.platform === 'win32' });
  if (probe.status === 0) return ['node-gyp', []];
  const fromEnv = process.env.npm_config_node_gyp;
  if (fromEnv && existsSync(fromEnv)) return [process.execPath, [fromEnv]];
  const prefix = dirname(dirname(process.execPath));
  const npmDirs = [
    process.env.npm_execpath ? resolve(dirname(process.env.npm_execpath), '..') : null,
    join(prefix, 'lib', 'node_modules', 'npm'),
    join(dirname(process.execPath), 'node_modules', 'npm'),
  ].filter((d) => d !== null);
  for (const npmDir of npmDirs) {
    try {
      const req = createRequire(join(npmDir, 'package.json'));
      return [process.execPath, [req.resolve('node-gyp/bin/node-gyp.js')]];
    } catch {
      // try the next location
    }
  }
  return null;
}

function main() {
  if (process.env.CHIMERA_SKIP_NATIVE === '1') {
    console.warn('chimera: CHIMERA_SKIP_NATIVE=1, not building the native backend.');
    return;
  }
  if (!existsSync(join(nativeDir, 'binding.gyp'))) return warn('native/binding.gyp is missing');
  const gyp = findNodeGyp();
  if (gyp === null) return warn('node-gyp not found');
  const [cmd, pre] = gyp;
  const args = [...pre, 'rebuild', '--directory', nativeDir];
  const prefix = dirname(dirname(process.execPath));
  // Local headers mean no download (there may be no network).
  if (existsSync(join(prefix, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${prefix}`);
  const jobs = String(Math.max(1, Math.min(4, (globalThis.navigator?.hardwareConcurrency ?? 2))));
  args.push('--jobs', jobs);
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', shell: process.platform === 'win32' && cmd === 'node-gyp' });
  if (r.error) return warn(r.error.message);
  if (r.status !== 0) return warn(`node-gyp exited with ${r.status ?? r.signal}`);
  if (!existsSync(join(nativeDir, 'build', 'Release', 'chimera_native.node'))) return warn('build produced no chimera_native.node');
}

try {
  main();
} catch (e) {
  warn(e instanceof Error ? e.message : String(e));
}
process.exit(0);
