/**
 * TLS and authentication for every process (DESIGN.md §6): certificates (`certs create`), what a
 * server checks of each call, and what a client presents.
 */
export { ChannelSecurity, plaintextToTls, securityFailure, speaksTls, AUTHORIZATION_HEADER, type ClientTls, type Pem } from './channel-security.js';
export { ServerSecurity, peerHost, type ServerSecurityOptions } from './server-security.js';
export { TokenFile, TokenFileError, tokenProblem, parseTokens, MIN_TOKEN_LENGTH } from './token-file.js';
export { loadServerTls, loadTls, certificateProblem, TlsConfigError, type TlsMaterial, type TlsPaths } from './tls-files.js';
