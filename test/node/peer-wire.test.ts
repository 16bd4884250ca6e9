/**
 * The Raft message stream's framing (`peer-wire.ts`): a byte stream cut anywhere comes out of
 * `FrameReader` as the frames that went in; the length limit is checked from the prefix alone.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import {
  controlFrame,
  FrameReader,
  frameHeader,
  FrameTooLarge,
  MAX_CONTROL_FRAME_BYTES,
  parseControlFrame,
  PEER_STREAM_MAGIC,
} from '../../src/node/peer-wire.js';

/** Pushes `chunk` and takes every whole frame it completes. */
function take(reader: FrameReader, chunk: Buffer): Buffer[] {
  reader.push(chunk);
  const frames: Buffer[] = [];
  for (let frame = reader.next(); frame !== undefined; frame = reader.next()) frames.push(frame);
  return frames;
}

/** `SEED=n` replays a failed run of the property; the failure names it. */
const SEED = Number(process.env['SEED'] ?? 20260611);

/** The bytes of `frames` as a writer sends them: each prefixed with its length. */
function encodeFrames(frames: readonly Buffer[]): Buffer {
  return Buffer.concat(frames.flatMap((frame) => [frameHeader(frame.length), frame]));
}

const hex = (frames: readonly Buffer[]): string[] => frames.map((frame) => frame.toString('hex'));

describe('node/peer-wire', () => {
  it('gives back exactly the frames written, in order, however the stream is cut into chunks', () => {
    const maxFrameBytes = 300;
    const frame = fc.oneof(
      fc.constant(Buffer.alloc(0)), // a keepalive
      fc.uint8Array({ maxLength: 16 }).map((bytes) => Buffer.from(bytes)),
      fc.uint8Array({ minLength: 17, maxLength: maxFrameBytes }).map((bytes) => Buffer.from(bytes)),
    );
    // Cut points as fractions of the stream's length: any point, repeats (empty chunks) included.
    const property = fc.property(fc.array(frame, { maxLength: 20 }), fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 30 }), (frames, fractions) => {
      const stream = encodeFrames(frames);
      const cuts = fractions.map((fraction) => Math.floor(fraction * stream.length)).sort((a, b) => a - b);
      const reader = new FrameReader(maxFrameBytes);
      const out: Buffer[] = [];
      let start = 0;
      for (const cut of [...cuts, stream.length]) {
        // A copy: the reader must not depend on the caller's buffer being one allocation.
        out.push(...take(reader, Buffer.from(stream.subarray(start, cut))));
        start = cut;
      }
      expect(hex(out)).to.deep.equal(hex(frames));
      expect(reader.buffered, 'nothing left over').to.equal(0);
    });
    try {
      fc.assert(property, { seed: SEED, numRuns: 500 });
    } catch (error) {
      throw new Error(`FrameReader property failed; SEED=${SEED} replays it\n${(error as Error).message}`, { cause: error });
    }
  });

  it('cuts a chunk holding many whole frames, and one frame trickling in a byte at a time', () => {
    const frames = [Buffer.from('a'), Buffer.alloc(0), Buffer.from('bcd'), Buffer.alloc(0)];
    const reader = new FrameReader(10);
    expect(hex(take(reader, encodeFrames(frames)))).to.deep.equal(hex(frames));
    const bytes = encodeFrames([Buffer.from('0123456789')]);
    const out: Buffer[] = [];
    for (let i = 0; i < bytes.length; i++) {
      out.push(...take(reader, bytes.subarray(i, i + 1)));
      if (i < bytes.length - 1) expect(reader.buffered).to.equal(i + 1);
    }
    expect(out.map((frame) => frame.toString())).to.deep.equal(['0123456789']);
    expect(reader.buffered).to.equal(0);
  });

  it('throws FrameTooLarge from the length prefix alone, before any of the body arrives', () => {
    const reader = new FrameReader(10);
    expect(take(reader, frameHeader(10)), 'the limit itself is admitted').to.deep.equal([]);
    expect(reader.buffered).to.equal(4);

    const strict = new FrameReader(10);
    expect(() => take(strict, frameHeader(11))).to.throw(FrameTooLarge, /11 bytes \(limit 10\)/);

    // The prefix split across chunks: the check waits for its 4 bytes, then throws.
    const split = new FrameReader(1000);
    const header = frameHeader(0xffff_ffff);
    expect(take(split, header.subarray(0, 3))).to.deep.equal([]);
    expect(() => take(split, header.subarray(3))).to.throw(FrameTooLarge);

    // After whole frames in the same chunk: those before it were fine, the big one still throws.
    const after = new FrameReader(10);
    expect(() => take(after, Buffer.concat([encodeFrames([Buffer.from('ok')]), frameHeader(1 << 30)]))).to.throw(FrameTooLarge);
  });

  it('checks each frame against the limit in force when it is taken: a large frame read together with the hello', () => {
    const reader = new FrameReader(MAX_CONTROL_FRAME_BYTES);
    const big = Buffer.alloc(MAX_CONTROL_FRAME_BYTES * 4, 3);
    reader.push(Buffer.concat([controlFrame({ node: 'n1' }), frameHeader(big.length), big]));
    expect(parseControlFrame(reader.next() as Buffer)).to.deep.equal({ node: 'n1' });
    expect(() => reader.next(), 'still the control frame limit').to.throw(FrameTooLarge);
    reader.maxFrameBytes = big.length;
    expect(reader.next()?.equals(big)).to.equal(true);
    expect(reader.next()).to.equal(undefined);
    expect(reader.buffered).to.equal(0);
  });

  it('admits bigger frames once maxFrameBytes is raised after a small control frame', () => {
    const reader = new FrameReader(MAX_CONTROL_FRAME_BYTES);
    const hello = controlFrame({ node: 'n1', token: 'secret-token-0123456789' });
    const [frame] = take(reader, hello);
    expect(parseControlFrame(frame as Buffer)).to.deep.equal({ node: 'n1', token: 'secret-token-0123456789' });

    const big = Buffer.alloc(MAX_CONTROL_FRAME_BYTES + 1, 7);
    expect(() => take(new FrameReader(MAX_CONTROL_FRAME_BYTES), frameHeader(big.length))).to.throw(FrameTooLarge);
    reader.maxFrameBytes = 4 * 1024 * 1024;
    const bytes = encodeFrames([big, Buffer.alloc(0)]);
    const out = [...take(reader, bytes.subarray(0, 1000)), ...take(reader, bytes.subarray(1000))];
    expect(out).to.have.length(2);
    expect((out[0] as Buffer).equals(big)).to.equal(true);
    expect(out[1]?.length).to.equal(0);
  });

  it('parses control frames as objects only: not non-JSON, arrays, null or scalars', () => {
    const body = (text: string): Buffer => Buffer.from(text, 'utf8');
    expect(parseControlFrame(body('{"ok":true}'))).to.deep.equal({ ok: true });
    expect(parseControlFrame(body('{"ok":false,"error":"no"}'))).to.deep.equal({ ok: false, error: 'no' });
    for (const text of ['', 'not json', '{"ok":', '[]', '[{"ok":true}]', 'null', '42', '"ok"', 'true']) {
      expect(parseControlFrame(body(text)), text).to.equal(undefined);
    }
    expect(parseControlFrame(Buffer.from([0xff, 0xfe, 0x00]))).to.equal(undefined);
  });

  it('frames control messages with a big-endian length, and the magic is 16 plaintext bytes', () => {
    expect(frameHeader(0x0102_0304)).to.deep.equal(Buffer.from([1, 2, 3, 4]));
    const frame = controlFrame({ ok: true });
    expect(frame.readUInt32BE(0)).to.equal(frame.length - 4);
    expect(frame.subarray(4).toString()).to.equal('{"ok":true}');
    expect(PEER_STREAM_MAGIC.length).to.equal(16);
    // Neither an HTTP/2 client preface nor a TLS ClientHello (0x16) starts like it.
    expect(PEER_STREAM_MAGIC[0]).to.not.equal(0x16);
    expect(PEER_STREAM_MAGIC.subarray(0, 3).toString('latin1')).to.not.equal('PRI');
  });
});
