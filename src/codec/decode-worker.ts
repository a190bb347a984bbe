/**
 * A decode worker thread (see decode-pool.ts): decodes the frames posted to it with the decoders of
 * pixel-decode.ts and posts the pixels back, handing their memory over rather than copying it.
 */
import { parentPort, threadId } from 'node:worker_threads';
import type { DecodeReply, DecodeRequest } from './decode-pool.ts';
import { decodeFrameHere } from './pixel-decode.ts';

const port = parentPort!;
port.on('message', (m: DecodeRequest) => {
  decodeFrameHere(m.frame, m.transferSyntaxUid, m.format).then(
    (d) => {
      // Only memory of the pixels' own is handed over: a view into a larger buffer (a decoder's heap)
      // is copied out first.
      const p = d.pixels;
      const own = p.byteOffset === 0 && p.byteLength === p.buffer.byteLength ? p : new Uint8Array(p);
      const reply: DecodeReply = {
        id: m.id,
        pixels: own,
        photometricInterpretation: d.photometricInterpretation,
        planarConfiguration: d.planarConfiguration,
        threadId,
      };
      port.postMessage(reply, [own.buffer as ArrayBuffer]);
    },
    (err: unknown) => {
      const e = err as { code?: string; message?: string };
      const reply: DecodeReply = {
        id: m.id,
        error: { code: e.code ?? 'ERR_CODEC_DECODE', message: e.message ?? String(err) },
      };
      port.postMessage(reply);
    },
  );
});
