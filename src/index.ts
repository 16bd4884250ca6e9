/**
 * The public surface of the `kvstore` package: the client library.
 */
export {};
