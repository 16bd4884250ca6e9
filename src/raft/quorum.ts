/**
 * Majority arithmetic (etcd `quorum/majority.go`): the committed index of a
 * set of voters and the result of an election. Only voters count; learners
 * never do (Raft thesis §4.2.1).
 */

/** Outcome of counting votes. */
export enum VoteResult {
  Pending = 'pending',
  Lost = 'lost',
  Won = 'won',
}

/** Smallest number of voters that is a majority of `voterCount`. */
export function quorumSize(voterCount: number): number {
  return Math.floor(voterCount / 2) + 1;
}

/**
 * The highest index replicated on a majority, given each voter's match index
 * in `matches` (which is sorted in place). With no voters, 0.
 * Raft §5.3: an entry is committed once a majority stores it (the term check
 * of §5.4.2 is the log's job).
 */
export function committedIndex(matches: number[]): number {
  const count = matches.length;
  if (count === 0) return 0;
  // Insertion sort, descending: groups are tiny and this allocates nothing.
  for (let i = 1; i < count; i++) {
    const value = matches[i] as number;
    let j = i - 1;
    while (j >= 0 && (matches[j] as number) < value) {
      matches[j + 1] = matches[j] as number;
      j--;
    }
    matches[j + 1] = value;
  }
  return matches[quorumSize(count) - 1] as number;
}

/**
 * Counts an election among `voters`: won with a majority of grants, lost once a
 * majority can no longer be reached. An empty voter set wins (nothing to ask).
 */
export function voteResult(voters: readonly number[], votes: ReadonlyMap<number, boolean>): VoteResult {
  if (voters.length === 0) return VoteResult.Won;
  let granted = 0;
  let missing = 0;
  for (const voter of voters) {
    const vote = votes.get(voter);
    if (vote === undefined) missing++;
    else if (vote) granted++;
  }
  const quorum = quorumSize(voters.length);
  if (granted >= quorum) return VoteResult.Won;
  if (granted + missing >= quorum) return VoteResult.Pending;
  return VoteResult.Lost;
}
