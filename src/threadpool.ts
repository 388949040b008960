/**
 * Imported first by the CLI, before anything touches the file system asynchronously: libuv sizes its thread pool
 * once, from UV_THREADPOOL_SIZE, on first use. Every received image costs a write, an fsync and a directory fsync
 * in that pool; with the default 4 threads, four parallel senders already queue behind each other's fsyncs.
 * An operator's own setting wins.
 */
process.env.UV_THREADPOOL_SIZE ??= '16';
