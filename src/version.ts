/**
 * The version of scannode: package.json's, read once at run time from the installed package. The compiled module sits
 * at `<package>/dist/src/version.js` in a checkout, in a global npm install (`<prefix>/lib/node_modules/scannode/`) and
 * in the Debian package (`/usr/lib/scannode/`), so package.json is found by walking up from here: the first one named
 * "scannode". `scannode --version`, `/health`, the start-up log line and the .deb's version all come from it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const PACKAGE_NAME = 'scannode';

/** The nearest package.json named scannode at or above `dir`, with its version; undefined when there is none. */
export function findPackageVersion(dir: string): string | undefined {
  for (let at = path.resolve(dir); ; at = path.dirname(at)) {
    try {
      const pkg = JSON.parse(fs.readFileSync(path.join(at, 'package.json'), 'utf8')) as {
        name?: unknown;
        version?: unknown;
      };
      if (pkg.name === PACKAGE_NAME && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // no (readable) package.json here: look further up
    }
    if (path.dirname(at) === at) return undefined;
  }
}

/** scannode's version, or "unknown" when the compiled code was copied away from its package.json. */
export const VERSION = findPackageVersion(path.dirname(fileURLToPath(import.meta.url))) ?? 'unknown';
