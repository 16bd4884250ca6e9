/** Promise wrappers over the generated ManagerService client, for tests. */
import * as grpc from '@grpc/grpc-js';
import {
  ManagerServiceClient,
  type GetClusterMapResponse, type HeartbeatRequest, type HeartbeatResponse, type RegisterRequest, type RegisterResponse,
} from '../../src/gen/kvstore/v1/manager.js';

/** A client with promise-returning calls, each with a 5 s deadline. */
export class TestManagerClient {
  private readonly client: ManagerServiceClient;

  constructor(address: string) {
    this.client = new ManagerServiceClient(address, grpc.credentials.createInsecure());
  }

  register(request: RegisterRequest): Promise<RegisterResponse> {
    return new Promise((resolve, reject) => {
      this.client.register(request, new grpc.Metadata(), { deadline: Date.now() + 5000 }, (error, response) => {
        if (error !== null) reject(error); else resolve(response);
      });
    });
  }

  heartbeat(request: Partial<HeartbeatRequest> & { nodeId: string }): Promise<HeartbeatResponse> {
    const full: HeartbeatRequest = { address: '', replicas: [], partial: false, removedShardIds: [], opsPerSecond: 0, p99LatencyMs: 0, metricsPort: 0, unreachablePeers: [], ...request };
    return new Promise((resolve, reject) => {
      this.client.heartbeat(full, new grpc.Metadata(), { deadline: Date.now() + 5000 }, (error, response) => {
        if (error !== null) reject(error); else resolve(response);
      });
    });
  }

  clusterMap(): Promise<GetClusterMapResponse> {
    return new Promise((resolve, reject) => {
      this.client.getClusterMap({}, new grpc.Metadata(), { deadline: Date.now() + 5000 }, (error, response) => {
        if (error !== null) reject(error); else resolve(response);
      });
    });
  }

  close(): void {
    this.client.close();
  }
}
