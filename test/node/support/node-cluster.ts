/**
 * An in-process cluster of storage nodes on loopback ports, bootstrapped directly
 * (no manager), plus a tiny KvService client that follows NOT_LEADER hints.
 */
import { credentials } from '@grpc/grpc-js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger, createSilentLogger, loadHasher, shardForKey } from '../../../src/common/index.js';
import {
  CasRequest,
  DeleteRequest,
  GetRequest,
  PutRequest,
  type BatchRequest,
  type BatchResponse,
  type Error as KvError,
  ErrorCode,
  KvServiceClient,
} from '../../../src/gen/kvstore/v1/kvstore.js';
import { StorageNode, type StorageNodeOptions } from '../../../src/node/index.js';

const REQUEST_TYPES = { get: GetRequest, put: PutRequest, delete: DeleteRequest, cas: CasRequest } as const;
import { Role } from '../../../src/raft/index.js';
import { waitFor } from '../../support/wait-for.js';

export interface ClusterOptions {
  nodeCount: number;
  shardCount: number;
  /** Keep data in temp dirs (WAL) instead of memory. */
  durable?: boolean;
  overrides?: Partial<StorageNodeOptions>;
}

/** N nodes each hosting a replica of every shard. */
export class NodeCluster {
  readonly nodes: (StorageNode | undefined)[] = [];
  readonly dataDirs: string[] = [];
  private readonly clients = new Map<string, KvServiceClient>();
  private readonly root: string;

  private constructor(readonly options: ClusterOptions) {
    this.root = mkdtempSync(join(tmpdir(), 'kvstore-node-test-'));
  }

  static async start(options: ClusterOptions): Promise<NodeCluster> {
    await loadHasher();
    const cluster = new NodeCluster(options);
    for (let i = 0; i < options.nodeCount; i++) {
      cluster.dataDirs.push(join(cluster.root, `n${i + 1}`));
      await cluster.startNode(i, 0);
    }
    cluster.connectPeers();
    for (let shard = 0; shard < options.shardCount; shard++) {
      const initialMembers = cluster.nodes.map((_, i) => ({ replicaId: shard * options.nodeCount + i + 1, nodeId: `n${i + 1}` }));
      cluster.nodes.forEach((node, i) => {
        node?.createReplica({
          shardId: shard, replicaId: shard * options.nodeCount + i + 1, initialMembers, campaign: shard % options.nodeCount === i,
        });
      });
    }
    return cluster;
  }

  /** Starts node `index` (again) on `port` (0 = any). */
  async startNode(index: number, port: number): Promise<StorageNode> {
    const node = await StorageNode.start({
      nodeId: `n${index + 1}`,
      port,
      shardCount: this.options.shardCount,
      logger: process.env['NODE_TEST_LOG'] === undefined ? createSilentLogger() : createLogger('debug'),
      ...(this.options.durable === true ? { dataDir: this.dataDirs[index] } : {}),
      ...this.options.overrides,
    });
    this.nodes[index] = node;
    return node;
  }

  /** Tells every live node every other node's address. */
  connectPeers(): void {
    const all = this.nodes.flatMap((node) => (node === undefined ? [] : [{ nodeId: node.host.nodeId, address: node.address }]));
    for (const node of this.nodes) node?.setPeers(all.filter((peer) => peer.nodeId !== node.host.nodeId));
  }

  /** The node index leading `shard`, once one leads. */
  leaderOf(shard: number): number | undefined {
    const index = this.nodes.findIndex((node) => node?.host.replica(shard)?.role === Role.Leader);
    return index < 0 ? undefined : index;
  }

  async waitForLeaders(timeoutMs = 10_000): Promise<void> {
    for (let shard = 0; shard < this.options.shardCount; shard++) {
      await waitFor(`a leader of shard ${shard}`, () => this.leaderOf(shard) !== undefined, timeoutMs, 20);
    }
  }

  client(address: string): KvServiceClient {
    let client = this.clients.get(address);
    if (client === undefined) {
      client = new KvServiceClient(address, credentials.createInsecure());
      this.clients.set(address, client);
    }
    return client;
  }

  shardOf(key: string): number {
    return shardForKey(Buffer.from(key), this.options.shardCount);
  }

  /**
   * Runs a unary call against node 0 (or the first live node), following NOT_LEADER
   * hints and retrying UNAVAILABLE until `timeoutMs`.
   */
  async call<Req, Res extends { error?: KvError | undefined }>(
    method: 'get' | 'put' | 'delete' | 'cas',
    request: Req,
    timeoutMs = 10_000,
  ): Promise<Res> {
    const deadline = Date.now() + timeoutMs;
    let address = this.nodes.find((node) => node !== undefined)?.address ?? '';
    for (;;) {
      const response = await new Promise<Res | undefined>((resolve) => {
        const client = this.client(address) as unknown as Record<string, (r: Req, cb: (e: unknown, res: Res) => void) => void>;
        // Fields a test leaves out take their defaults (as on the wire), e.g. a put's ttl_ms.
        const full = REQUEST_TYPES[method].fromPartial(request as object) as Req;
        client[method]?.call(this.client(address), full, (error, res) => resolve(error === null ? res : undefined));
      });
      const error = response?.error;
      if (response !== undefined && error === undefined) return response;
      if (response !== undefined && error !== undefined && error.code === ErrorCode.ERROR_CODE_NOT_LEADER && error.leaderAddress !== '') {
        address = error.leaderAddress;
      } else if (response !== undefined && error !== undefined && ![ErrorCode.ERROR_CODE_UNAVAILABLE, ErrorCode.ERROR_CODE_TIMEOUT, ErrorCode.ERROR_CODE_NOT_LEADER, ErrorCode.ERROR_CODE_WRONG_SHARD].includes(error.code)) {
        return response;
      } else {
        const live = this.nodes.filter((node): node is StorageNode => node !== undefined);
        address = live[Math.floor(Math.random() * live.length)]?.address ?? address;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      if (Date.now() > deadline) throw new Error(`${method} did not succeed in ${timeoutMs} ms: ${error?.message ?? 'no answer'}`);
    }
  }

  /** Sends batches on one Batch stream to `address` and collects every answer. */
  async batch(address: string, requests: BatchRequest[], expectedItems: number): Promise<BatchResponse[]> {
    const stream = this.client(address).batch();
    const responses: BatchResponse[] = [];
    let answered = 0;
    const done = new Promise<void>((resolve, reject) => {
      stream.on('data', (response: BatchResponse) => {
        responses.push(response);
        answered += response.items.length;
        if (answered >= expectedItems) resolve();
      });
      stream.on('error', reject);
    });
    for (const request of requests) stream.write(request);
    await done;
    stream.end();
    return responses;
  }

  async stopNode(index: number): Promise<void> {
    const node = this.nodes[index];
    this.nodes[index] = undefined;
    await node?.close();
  }

  async close(): Promise<void> {
    for (const client of this.clients.values()) client.close();
    await Promise.all(this.nodes.flatMap((node) => (node === undefined ? [] : [node.close()])));
    rmSync(this.root, { recursive: true, force: true });
  }
}
