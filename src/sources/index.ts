/**
 * Sources outside Kafka: lines from a TCP server and new files in a directory. Each is a
 * `Source` (the contract in `src/core/source.ts`) and a function that makes its stream.
 */
export { SocketTextSource, socketTextStream, type SocketTextSourceOptions } from './socket.js';
export { DirectorySource, textFileStream, type DirectorySourceOptions } from './directory.js';
