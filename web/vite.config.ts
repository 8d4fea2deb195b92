// The web UI's build: React + PatternFly into web/dist, served by `osimg serve` at /. Hashed files go to
// assets/ (cached for a year by the server); gzip and brotli twins are written beside every text asset
// so that the server sends them precompressed without compressing per request.
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { brotliCompress, constants, gzip } from "node:zlib";
import react from "@vitejs/plugin-react";
import { defineConfig, type Plugin } from "vite";

const COMPRESSIBLE = /\.(js|css|html|svg|json|txt|map)$/;
// Asynchronous: the files are compressed in parallel on libuv's threads.
const gzipAsync = promisify(gzip);
const brotliAsync = promisify(brotliCompress);
const MIN_COMPRESS_BYTES = 1024;

function precompress(): Plugin {
  let outDir = "";
  return {
    name: "osimg-precompress",
    apply: "build",
    configResolved(config) {
      outDir = config.build.outDir;
    },
    async writeBundle(_options, bundle) {
      const writes: Promise<void>[] = [];
      for (const [fileName, output] of Object.entries(bundle)) {
        if (!COMPRESSIBLE.test(fileName)) continue;
        const data = Buffer.from(output.type === "chunk" ? output.code : output.source);
        if (data.length < MIN_COMPRESS_BYTES) continue;
        const path = join(outDir, fileName);
        writes.push(gzipAsync(data, { level: 9 }).then((gz) => writeFile(`${path}.gz`, gz)));
        const params = {
          [constants.BROTLI_PARAM_QUALITY]: 11,
          [constants.BROTLI_PARAM_SIZE_HINT]: data.length,
        };
        writes.push(brotliAsync(data, { params }).then((br) => writeFile(`${path}.br`, br)));
      }
      await Promise.all(writes);
    },
  };
}

export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  base: "/",
  plugins: [react(), precompress()],
  // `npx vite --config web/vite.config.ts`: the UI with hot reload, talking to a running `osimg serve`.
  server: {
    proxy: { "/api": { target: process.env.OSIMG_URL ?? "http://127.0.0.1:8080", ws: true } },
  },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    // PatternFly's stylesheet is large; the JS budget is checked by `npm run bench:ui` instead.
    chunkSizeWarningLimit: 1500,
    reportCompressedSize: false,
    // The precompression above is slow by design (brotli at its best); no need to report it.
    rolldownOptions: {
      checks: { bundlerTimings: false },
      // Left alone, the bundler gives every module that the first page shares with a lazy page a chunk of
      // its own: 20 scripts and 13 stylesheets before the first render. Two groups instead, of what is
      // shared by two chunks or more: the libraries, and the UI's shared parts. What only one lazy page
      // uses stays in its chunk (the consoles, the VM rules, the dialog).
      output: {
        codeSplitting: {
          minShareCount: 2,
          groups: [
            {
              name: "vendor",
              test: /node_modules[\\/](react|react-dom|scheduler|@patternfly|@tanstack|wouter|eventsource-parser|tslib|focus-trap|tabbable)[\\/]/,
            },
            {
              name: "app",
              test: /web[\\/]src[\\/](components|api|auth|catalog|format|namespace|routes|theme|time|vms[\\/]CreateVmDialog)|[\\/]src[\\/]units[\\/]/,
            },
          ],
        },
      },
    },
  },
});
