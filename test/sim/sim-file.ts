/**
 * One file of the simulated disk (an inode): its current content, as the page
 * cache holds it and every process reads it, kept apart from its durable
 * content, what the platters hold and a power loss leaves.
 *
 * Writes and truncations change the current content and mark their 4 KiB
 * pages dirty. A datasync makes durable what was current when it was called:
 * {@link SimFile.captureSync} at the call, {@link SimFile.applySync} when it
 * completes; a page written again in between stays dirty. A power loss
 * ({@link SimFile.losePower}) replaces the unsynced data the ways a kernel can
 * (Pillai et al., "All File Systems Are Not Created Equal", OSDI '14) and never
 * touches synced data.
 */
import type { RandomSource } from '../../src/raft/index.js';

/** The unit of page-cache writeback. */
export const PAGE_BYTES = 4096;
/** The unit of an atomic disk write: a torn page keeps or loses whole sectors. */
export const SECTOR_BYTES = 512;

/** What a power loss does to one dirty page. */
export type PageFate =
  /** The page reached the disk. */
  | 'kept'
  /** It did not: its bytes are the durable ones, zeros past the durable length; lost pages at the end shorten the file. */
  | 'lost'
  /** The file's length reached the disk but the page's data did not: its unsynced bytes read as zeros. */
  | 'zeroed';

/** How a power loss replaces one file's unsynced data; chosen at random unless a test names one. */
export type FileLoss =
  /** The writeback stopped part-way: the file is `length` bytes (clamped between its durable and current length), all current. */
  | { kind: 'prefix'; length: number }
  /** Each dirty page went its own way, in any order. */
  | { kind: 'pages'; fate: (page: number) => PageFate }
  /** Dirty pages before `page` reached the disk, those after did not, and `page` itself kept only some sectors. */
  | { kind: 'torn'; page: number; sectorKept: (sector: number) => boolean };

/** What a test sees of a file when it picks a {@link FileLoss}. */
export interface FileState {
  /** Current (page cache) length. */
  length: number;
  /** Durable length. */
  durableLength: number;
  /** Indexes of the pages written since they were last durable, ascending. */
  dirtyPages: number[];
}

/** What a datasync makes durable: the file as it was when the datasync was called. */
export interface SyncPoint {
  /** The file's last change before the call. */
  generation: number;
  length: number;
  /** The content of the pages dirty at the call. */
  pages: Map<number, Uint8Array>;
}

/** A growable byte array whose bytes past `length` are always zero. */
class Bytes {
  data = new Uint8Array(0);
  length = 0;

  /** Sets the length, zeroing what is cut off and what is added. */
  resize(length: number): void {
    if (length > this.data.length) {
      const grown = new Uint8Array(Math.max(length, this.data.length * 2, 1024));
      grown.set(this.data.subarray(0, this.length));
      this.data = grown;
    } else if (length < this.length) {
      this.data.fill(0, length, this.length);
    }
    this.length = length;
  }

  copy(): Uint8Array {
    return this.data.slice(0, this.length);
  }
}

/** One simulated file; see the module comment. */
export class SimFile {
  private readonly current = new Bytes();
  private readonly durable = new Bytes();
  /** Page → generation of the change that last made it dirty. */
  private readonly dirty = new Map<number, number>();
  /** Counts changes (writes, truncations). */
  private generation = 0;
  /** Generation of the latest sync point made durable: an older one completing later changes nothing. */
  private syncedGeneration = 0;

  /** The current content (a copy). */
  read(): Uint8Array {
    return this.current.copy();
  }

  /** The durable content (a copy): what a power loss would keep if nothing else reached the disk. */
  readDurable(): Uint8Array {
    return this.durable.copy();
  }

  /** Lengths and dirty pages. */
  state(): FileState {
    return { length: this.current.length, durableLength: this.durable.length, dirtyPages: this.dirtyPages() };
  }

  /** Copies `data[offset, offset + length)` to `position`, growing the file (with zeros) as needed. */
  write(data: Uint8Array, offset: number, length: number, position: number): number {
    if (length === 0) return 0;
    const end = position + length;
    const from = Math.min(position, this.current.length);
    if (end > this.current.length) this.current.resize(end);
    this.current.data.set(data.subarray(offset, offset + length), position);
    this.markDirty(from, end);
    return length;
  }

  /** Sets the current length: bytes cut off are gone from the page cache, bytes added are zeros. */
  truncate(length: number): void {
    const previous = this.current.length;
    this.current.resize(length);
    this.markDirty(Math.min(length, previous), Math.max(length, previous));
  }

  /** At a datasync's call: what it will make durable. */
  captureSync(): SyncPoint {
    const pages = new Map<number, Uint8Array>();
    for (const page of this.dirty.keys()) {
      const start = page * PAGE_BYTES;
      pages.set(page, this.current.data.slice(start, Math.min(start + PAGE_BYTES, this.current.length)));
    }
    return { generation: this.generation, length: this.current.length, pages };
  }

  /**
   * At a datasync's completion: makes `point` durable; pages written since stay
   * dirty. A later sync point that completed first already covers this one: every
   * page dirty at this call was still dirty, with the same or newer bytes, at that one.
   */
  applySync(point: SyncPoint): void {
    if (point.generation <= this.syncedGeneration) return;
    this.syncedGeneration = point.generation;
    this.durable.resize(Math.max(point.length, this.durable.length));
    for (const [page, bytes] of point.pages) {
      const start = page * PAGE_BYTES;
      this.durable.data.fill(0, start, start + PAGE_BYTES);
      this.durable.data.set(bytes, start);
    }
    this.durable.resize(point.length);
    for (const page of point.pages.keys()) {
      const generation = this.dirty.get(page);
      if (generation !== undefined && generation <= point.generation) this.dirty.delete(page);
    }
  }

  /** Makes the current content durable at once (a write that returns only once it is on disk). */
  syncNow(): void {
    this.applySync(this.captureSync());
  }

  /** A power loss: the file becomes what `loss` (or a random choice) leaves on disk, current and durable alike. */
  losePower(random: RandomSource, loss: FileLoss = this.randomLoss(random)): void {
    const dirtyPages = this.dirtyPages();
    if (dirtyPages.length === 0 && this.current.length === this.durable.length) return;
    const { length: currentLength } = this.current;
    const durableLength = this.durable.length;
    let length = currentLength;
    let fateOf: (page: number) => PageFate;
    let sectorKept: (page: number, sector: number) => boolean = () => true;
    switch (loss.kind) {
      case 'prefix':
        length = clamp(loss.length, Math.min(durableLength, currentLength), Math.max(durableLength, currentLength));
        fateOf = () => 'kept';
        break;
      case 'pages':
        fateOf = loss.fate;
        while (length > durableLength && fateOf(Math.floor((length - 1) / PAGE_BYTES)) === 'lost') {
          length = Math.max(durableLength, Math.floor((length - 1) / PAGE_BYTES) * PAGE_BYTES);
        }
        break;
      case 'torn':
        fateOf = (page) => (page <= loss.page ? 'kept' : 'lost');
        sectorKept = (page, sector) => page !== loss.page || loss.sectorKept(sector);
        break;
    }
    // Start from the durable bytes (zeros past the durable length), then lay the kept sectors over them.
    const result = new Bytes();
    result.resize(length);
    result.data.set(this.durable.data.subarray(0, Math.min(durableLength, length)));
    for (const page of dirtyPages) {
      if (fateOf(page) !== 'kept') continue;
      for (let sector = 0; sector < PAGE_BYTES / SECTOR_BYTES; sector++) {
        const start = page * PAGE_BYTES + sector * SECTOR_BYTES;
        const end = Math.min(start + SECTOR_BYTES, length, currentLength);
        if (end > start && sectorKept(page, sector)) result.data.set(this.current.data.subarray(start, end), start);
        // Kept bytes past the current length (an unsynced truncation that did not reach the disk) stay durable.
      }
    }
    this.durable.resize(0);
    this.durable.resize(length);
    this.durable.data.set(result.data.subarray(0, length));
    this.current.resize(0);
    this.current.resize(length);
    this.current.data.set(result.data.subarray(0, length));
    this.dirty.clear();
    this.syncedGeneration = this.generation;
  }

  /**
   * Flips the bits of `mask` in the durable byte at `offset`, and in the page
   * cache too unless that page holds newer unsynced data (as if the cached page
   * had been evicted). Throws when `offset` is not synced data.
   */
  corrupt(offset: number, mask: number): void {
    if (!(offset >= 0 && offset < this.durable.length)) {
      throw new RangeError(`offset ${offset} is not synced data (durable length ${this.durable.length})`);
    }
    this.durable.data[offset] = (this.durable.data[offset] as number) ^ mask;
    if (!this.dirty.has(Math.floor(offset / PAGE_BYTES)) && offset < this.current.length) {
      this.current.data[offset] = (this.current.data[offset] as number) ^ mask;
    }
  }

  private dirtyPages(): number[] {
    return [...this.dirty.keys()].sort((a, b) => a - b);
  }

  private markDirty(from: number, to: number): void {
    if (to <= from) {
      // A length change alone (truncate to the same page): the page holding the new end.
      this.dirty.set(Math.floor(from / PAGE_BYTES), ++this.generation);
      return;
    }
    const generation = ++this.generation;
    for (let page = Math.floor(from / PAGE_BYTES); page <= Math.floor((to - 1) / PAGE_BYTES); page++) this.dirty.set(page, generation);
  }

  /** One of the three kinds of loss, with random parameters. */
  private randomLoss(random: RandomSource): FileLoss {
    const dirtyPages = this.dirtyPages();
    const low = Math.min(this.durable.length, this.current.length);
    const high = Math.max(this.durable.length, this.current.length);
    switch (random.nextInt(3)) {
      case 0: {
        const pick = random.nextInt(4); // both ends are worth extra weight: all kept, all lost
        const length = pick === 0 ? low : pick === 1 ? high : low + random.nextInt(high - low + 1);
        return { kind: 'prefix', length };
      }
      case 1: {
        const fates = new Map<number, PageFate>();
        for (const page of dirtyPages) fates.set(page, (['kept', 'lost', 'zeroed'] as const)[random.nextInt(3)] as PageFate);
        return { kind: 'pages', fate: (page) => fates.get(page) ?? 'kept' };
      }
      default: {
        const page = dirtyPages[random.nextInt(dirtyPages.length)] ?? 0;
        const sectors: boolean[] = [];
        for (let sector = 0; sector < PAGE_BYTES / SECTOR_BYTES; sector++) sectors.push(random.nextInt(2) === 0);
        return { kind: 'torn', page, sectorKept: (sector) => sectors[sector] ?? false };
      }
    }
  }
}

function clamp(value: number, low: number, high: number): number {
  return Math.min(high, Math.max(low, value));
}
