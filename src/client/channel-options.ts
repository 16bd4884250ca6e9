/**
 * gRPC channel options shared by the client's channels to nodes and to the manager.
 */
import type { ChannelOptions } from '@grpc/grpc-js';

/**
 * Reconnect quickly: a restarted node should be reachable again within a fraction of a second, not
 * after grpc-js's default 1 s → 120 s backoff. Calls are not queued while a channel is down
 * (waitForReady is off), so an unreachable node fails fast and the router tries another one.
 */
export const CHANNEL_OPTIONS: ChannelOptions = {
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 1000,
  'grpc.enable_retries': 0,
  'grpc.use_local_subchannel_pool': 1,
};
