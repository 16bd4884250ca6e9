import { KVError } from '../../src/index.js';

/** The KVError `promise` rejects with; fails the test if it resolves or rejects with anything else. */
export async function rejection(promise: Promise<unknown>): Promise<KVError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof KVError) return error;
    throw error;
  }
  throw new Error('expected a rejection');
}
