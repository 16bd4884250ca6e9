export * from './logger.js';
export * from './limits.js';
export * from './hash.js';
export * from './metrics-server.js';
export * from './atomic-file.js';
export * from './ports.js';
export * from './sleep.js';
export * from './random.js';
