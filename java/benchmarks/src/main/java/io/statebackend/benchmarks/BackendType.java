package io.statebackend.benchmarks;

/** The keyed state backends the benchmarks compare, all built in the benchmark's JVM. */
public enum BackendType {
    /** Flink's HashMapStateBackend (heap keyed backend). */
    HEAP,
    /** Flink's EmbeddedRocksDBStateBackend (RocksDB keyed backend, default options). */
    ROCKSDB,
    /**
     * Flink 2.x's ForStStateBackend, default options and a local working directory, through its
     * synchronous keyed backend (the one Flink's operators with classic state get); Flink 2.x only
     * (the benchmarks' {@code flink-2.3} build).
     */
    FORST,
    /** Ours: NativeMemoryBackend. */
    NATIVE_MEMORY,
    /** Ours: NativeFsBackend. */
    NATIVE_FS,
    /** Ours: NativeRocksDBBackend. */
    NATIVE_ROCKSDB
}
