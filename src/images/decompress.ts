// Streaming decompressors for the wrappers images ship in: gzip and zstd from Node's zlib, xz through a
// WebAssembly build of xz-embedded (no native add-on), bzip2 in plain JavaScript.
import { createRequire } from "node:module";
import { Duplex, PassThrough, Readable } from "node:stream";
import { createGunzip, createZstdDecompress } from "node:zlib";
import type { Compression } from "./formats/types.ts";

const require = createRequire(import.meta.url);

export function createDecompressor(kind: Compression): Duplex {
  switch (kind) {
    case "gzip":
      return createGunzip();
    case "zstd":
      return createZstdDecompress();
    case "bzip2": {
      // unbzip2-stream is a classic (through) stream: put it between two modern ones.
      const unbzip2 = (require("unbzip2-stream") as () => Duplex)();
      const input = new PassThrough({ highWaterMark: 1 << 20 });
      const output = new PassThrough({ highWaterMark: 1 << 20 });
      input.pipe(unbzip2).pipe(output);
      unbzip2.on("error", (error) => output.destroy(error));
      return Duplex.from({ writable: input, readable: output });
    }
    case "xz": {
      const { XzReadableStream } = require("xz-decompress") as {
        XzReadableStream: new (input: ReadableStream<Uint8Array>) => ReadableStream<Uint8Array>;
      };
      const input = new PassThrough({ highWaterMark: 1 << 20 });
      const output = Readable.fromWeb(
        new XzReadableStream(
          Readable.toWeb(input) as ReadableStream<Uint8Array>,
        ) as import("node:stream/web").ReadableStream,
        { highWaterMark: 1 << 20 },
      );
      return Duplex.from({ writable: input, readable: output });
    }
  }
}
