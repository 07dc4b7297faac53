/**
 * `npm run build:web`: bundles the web page's script (web/src/main.ts and the shared src modules it imports)
 * with esbuild into dist/web/app.js and its source map, which the server then serves as is.
 */
import { relative } from 'node:path';
import { WEB_DIST, writeWebBundle } from '../src/server/plugins/web.js';

const bundle = await writeWebBundle(WEB_DIST);
console.log(`${relative(process.cwd(), WEB_DIST)}/app.js: ${(bundle.js.length / 1024).toFixed(1)} KiB from ${bundle.inputs.length} files`);
