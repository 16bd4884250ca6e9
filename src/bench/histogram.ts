/**
 * Latency histograms for the bench and the driver (hdr-histogram-js): values are recorded in
 * microseconds with 3 significant digits and reported in milliseconds. Worker processes send theirs to
 * the parent as compressed base64, where they are merged, so percentiles are over every operation rather
 * than averages of per-worker percentiles.
 */
import * as hdr from 'hdr-histogram-js';

/** Latencies are recorded in µs; the highest trackable is one minute. */
const HIGHEST_TRACKABLE_MICROS = 60_000_000;

/** The percentiles every report shows, in milliseconds. */
export interface LatencyPercentiles {
  /** Median latency, ms. */
  p50: number;
  /** 90th percentile, ms. */
  p90: number;
  /** 99th percentile, ms. */
  p99: number;
  /** 99.9th percentile, ms. */
  p999: number;
  /** Mean latency, ms. */
  mean: number;
  /** Largest recorded latency, ms. */
  max: number;
  /** How many operations were recorded. */
  count: number;
}

/** An empty latency histogram (µs, 3 significant digits). */
export function newLatencyHistogram(): hdr.Histogram {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: HIGHEST_TRACKABLE_MICROS, numberOfSignificantValueDigits: 3 });
}

/** Records one latency given in milliseconds (e.g. a `performance.now()` difference). */
export function recordMillis(histogram: hdr.Histogram, elapsedMs: number): void {
  const micros = Math.round(elapsedMs * 1000);
  histogram.recordValue(Math.min(HIGHEST_TRACKABLE_MICROS, Math.max(1, micros)));
}

/** The histogram as compressed base64, for sending between processes. */
export function encodeHistogram(histogram: hdr.Histogram): string {
  return hdr.encodeIntoCompressedBase64(histogram);
}

/** Merges encoded histograms (from workers) into one. */
export function mergeEncodedHistograms(encoded: readonly string[]): hdr.Histogram {
  const merged = newLatencyHistogram();
  for (const text of encoded) merged.add(hdr.decodeFromCompressedBase64(text));
  return merged;
}

/** The reported percentiles in ms, rounded to µs; all zero when nothing was recorded. */
export function percentilesOf(histogram: hdr.Histogram): LatencyPercentiles {
  const count = histogram.totalCount;
  const ms = (micros: number): number => (count === 0 ? 0 : Math.round(micros) / 1000);
  return {
    p50: ms(histogram.getValueAtPercentile(50)),
    p90: ms(histogram.getValueAtPercentile(90)),
    p99: ms(histogram.getValueAtPercentile(99)),
    p999: ms(histogram.getValueAtPercentile(99.9)),
    mean: ms(histogram.mean),
    max: ms(histogram.maxValue),
    count,
  };
}
