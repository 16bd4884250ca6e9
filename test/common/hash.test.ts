import { expect } from 'chai';
import fc from 'fast-check';
import { loadHasher, shardForKey } from '../../src/common/hash.js';
import { checkKeyBytes, checkValueBytes } from '../../src/common/limits.js';

const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text);

describe('common/hash', () => {
  before(async () => { await loadHasher(); });

  it('matches the published XXH64 test vectors (seed 0)', () => {
    // XXH64("") = ef46db3751d8e999, XXH64("abc") = 44bc2cf5ad770999
    expect(shardForKey(utf8(''), 2 ** 31)).to.equal(Number(0xef46db3751d8e999n % BigInt(2 ** 31)));
    expect(shardForKey(utf8('abc'), 1_000_003)).to.equal(Number(0x44bc2cf5ad770999n % 1_000_003n));
  });

  it('always lands in [0, S)', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 20 }), fc.integer({ min: 1, max: 4096 }), (key, shards) => {
      const shard = shardForKey(key, shards);
      return Number.isInteger(shard) && shard >= 0 && shard < shards;
    }));
  });
});

describe('common/limits', () => {
  it('counts UTF-8 bytes, not characters', () => {
    expect(checkKeyBytes(utf8('€€€€€€')).ok).to.equal(true); // 18 bytes
    const tooLong = checkKeyBytes(utf8('€€€€€€€')); // 21 bytes
    expect(tooLong).to.deep.equal({ ok: false, message: 'key is 21 bytes of UTF-8: the limit is 20 bytes' });
    expect(checkKeyBytes(new Uint8Array(0)).ok).to.equal(false);
    expect(checkKeyBytes(Uint8Array.of(0xff)).ok).to.equal(false);
  });

  it('accepts 1024-byte values and refuses 1025', () => {
    expect(checkValueBytes(new Uint8Array(1024)).ok).to.equal(true);
    expect(checkValueBytes(new Uint8Array(1025))).to.deep.equal({ ok: false, message: 'value is 1025 bytes: the limit is 1024 bytes' });
  });
});
