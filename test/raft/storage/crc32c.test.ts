import { expect } from 'chai';
import fc from 'fast-check';
import { crc32c } from '../../../src/raft/storage/index.js';
import { propertyOptions } from './helpers.js';

/** The definition, one bit at a time: the reference the table-driven version must match. */
function naiveCrc32c(data: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of data) {
    crc ^= byte;
    for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

const ascii = (text: string): Uint8Array => new TextEncoder().encode(text);

describe('raft/storage/crc32c', () => {
  it('matches the published check values', () => {
    expect(crc32c(ascii('123456789'))).to.equal(0xe3069283);
    expect(crc32c(new Uint8Array(0))).to.equal(0);
    // RFC 3720 (iSCSI) B.4: 32 bytes of zeros, of 0xff, and ascending 0..31.
    expect(crc32c(new Uint8Array(32))).to.equal(0x8a9136aa);
    expect(crc32c(new Uint8Array(32).fill(0xff))).to.equal(0x62a8ab43);
    expect(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i))).to.equal(0x46dd794e);
  });

  it('equals the bitwise definition for any input and range', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(), fc.nat(), (data, a, b) => {
        const start = data.length === 0 ? 0 : a % (data.length + 1);
        const end = start + (data.length === 0 ? 0 : b % (data.length - start + 1));
        expect(crc32c(data, start, end)).to.equal(naiveCrc32c(data.subarray(start, end)));
      }),
      propertyOptions(500),
    );
  });

  it('continues a checksum across pieces', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), fc.uint8Array({ maxLength: 100 }), (a, b) => {
        const joined = new Uint8Array([...a, ...b]);
        expect(crc32c(b, 0, b.length, crc32c(a))).to.equal(crc32c(joined));
      }),
      propertyOptions(200),
    );
  });
});
