"""Getting items to the destination: batching, executors, retry policy, outbox."""
