/**
 * Quiescence: a group with nothing to do stops ticking on every replica, so an idle shard
 * costs no CPU and sends nothing (C `replica_raft_quiesce.go`, T: hibernate regions).
 *
 * ## How a group falls asleep
 * A leader whose group was idle for {@link QUIESCE_AFTER_TICKS} ticks (no proposal, read,
 * placement action or message but heartbeat answers) checks {@link quiesceHeartbeats}: its whole
 * log is committed and applied, every member on a live node holds all of it, no transfer or
 * snapshot is under way, and the live voters are a majority. It then sends each of those
 * members a heartbeat flagged `quiesce` carrying that index as commit, and stops ticking. A
 * follower that steps such a heartbeat from its leader, in the leader's term, with its own
 * last and commit index equal to the heartbeat's, stops ticking too; otherwise it ticks on,
 * and the leader's next message wakes the leader (below).
 *
 * ## What wakes a replica
 * Anything but sleep: a proposal, a read that the lease cannot answer on arrival, a placement
 * or failover action, and every message except a sleeping follower's heartbeat answer (flagged
 * `quiesce` too) and a quiesce heartbeat. A woken leader's next append or heartbeat wakes its
 * followers. A sleeping follower woken by another than its leader (a candidate's pre-vote) sends
 * its leader an unflagged heartbeat answer, which wakes it: asleep, the leader sends no
 * heartbeats, and without them that follower would time out and help elect a candidate that
 * merely lost its link to the leader (a one-sided cut). A follower with requests waiting (writes
 * it took as leader) does not sleep: their deadlines are checked on ticks. The
 * node-level failure detector (`peer-liveness.ts`) wakes every sleeping group that has a
 * member on a peer that fell silent or came back, and so does a broken peer stream (which
 * also starts the fast failover): a follower whose leader's node died ticks again and elects
 * a successor, a leader whose follower died ticks again and CheckQuorum judges it.
 *
 * ## Why it is safe
 * Raft's safety never rests on ticks: they only start elections and heartbeats, so a replica
 * that does not tick can delay progress, never break agreement. What rests on time is the
 * read lease (`replica-reads.ts`), and it is measured on the monotonic clock, not in ticks:
 * - a sleeping leader earns no lease (nothing confirms a round), so the lease it held runs
 *   out on time and the first read after it starts a ReadIndex round, which wakes the group;
 * - a follower's promise runs from the last leader message it stepped, ticks or not, and a
 *   sleeping follower helps elect nobody: its election timer is stopped, and the core's leader
 *   stickiness (CheckQuorum's vote lease, counted in ticks) keeps it ignoring vote requests
 *   until it has ticked an election timeout after waking. The fast failover's forgetting still
 *   waits for the promise on the monotonic clock, as before;
 * - the quiesce heartbeat is built here, not by the core, and carries only what a core
 *   heartbeat may: the durable term and an index the member is known to hold that is
 *   committed (so a follower never commits beyond its log or past the quorum's sync).
 * Sleeping trades liveness only: a group wakes within a silence window of its leader's node
 * dying, and the whole-node simulator runs it, idle shards included, under kills and cuts.
 * @internal
 */
import { type Message, MessageType, newMessage, NONE, ProgressState, type RawNode, Role } from '../raft/index.js';

/** Idle ticks before a leader tries to put its group to sleep (500 ms at the defaults: a busy group never does). */
export const QUIESCE_AFTER_TICKS = 10;

/**
 * The quiesce heartbeats of a leader whose group may fall asleep — one per member on a live node,
 * carrying its last index as commit (flagged on the wire by the host) — else undefined: the
 * whole log must be committed and applied (`applied`: the state machine's index), every member on
 * a live node (`live(replicaId)`) must hold all of it in Replicate state, no transfer may be under
 * way, and the live voters must be a majority.
 */
export function quiesceHeartbeats(rawNode: RawNode, applied: number, live: (replicaId: number) => boolean): Message[] | undefined {
  const status = rawNode.status();
  if (status.role !== Role.Leader || status.leadTransferee !== NONE || status.progress === undefined) return undefined;
  const lastIndex = rawNode.lastIndex();
  if (status.commit !== lastIndex || applied !== lastIndex) return undefined;
  const heartbeats: Message[] = [];
  let liveVoters = 1; // the leader
  for (const [replicaId, progress] of status.progress) {
    if (replicaId === status.id || !live(replicaId)) continue;
    if (progress.match !== lastIndex || progress.state !== ProgressState.Replicate) return undefined;
    if (!progress.isLearner) liveVoters += 1;
    const heartbeat = newMessage(MessageType.Heartbeat, replicaId, status.id, status.term);
    heartbeat.commit = lastIndex;
    heartbeats.push(heartbeat);
  }
  return liveVoters * 2 > status.confState.voters.length ? heartbeats : undefined;
}

/** What a woken follower sends its sleeping leader to wake it: an unflagged heartbeat answer in its durable `term`. */
export function wakeLeaderMessage(from: number, leader: number, term: number): Message {
  return newMessage(MessageType.HeartbeatResponse, leader, from, term);
}

/** True when a follower that just stepped `heartbeat` (a quiesce one) may stop ticking: it follows its sender in that term and holds exactly what it commits. */
export function followerMayQuiesce(rawNode: RawNode, heartbeat: Message): boolean {
  return rawNode.role() === Role.Follower && rawNode.leaderId() === heartbeat.from && rawNode.term() === heartbeat.term &&
    rawNode.commitIndex() === heartbeat.commit && rawNode.lastIndex() === heartbeat.commit;
}
