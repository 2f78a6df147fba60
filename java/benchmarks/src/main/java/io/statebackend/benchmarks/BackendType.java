package io.statebackend.benchmarks;

/** The keyed state backends the benchmarks compare, all built in the benchmark's JVM. */
public enum BackendType {
    /** Flink's HashMapStateBackend (heap keyed backend). */
    HEAP,
    /** Flink's EmbeddedRocksDBStateBackend (RocksDB keyed backend, default options). */
    ROCKSDB,
    /** Ours: NativeMemoryBackend. */
    NATIVE_MEMORY,
    /** Ours: NativeFsBackend. */
    NATIVE_FS,
    /** Ours: NativeRocksDBBackend. */
    NATIVE_ROCKSDB
}
