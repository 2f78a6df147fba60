package io.statebackend;

import io.statebackend.internal.NativeBackends;
import org.apache.flink.configuration.CheckpointingOptions;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.ReadableConfig;
import org.apache.flink.runtime.state.CheckpointStorage;
import org.apache.flink.runtime.state.storage.FileSystemCheckpointStorage;
import org.apache.flink.util.TernaryBoolean;

/**
 * Working state in an embedded RocksDB under the task manager's temporary directories, snapshots
 * written under a checkpoint URI through Flink's file systems.
 *
 * <p>With {@code incremental}, checkpoints upload only the RocksDB files the last completed
 * checkpoint did not have, as Flink's {@code IncrementalRemoteKeyedStateHandle} (shared SST files
 * counted by Flink's shared state registry); otherwise, and for savepoints, snapshots are full and
 * self-contained.
 */
public class NativeRocksDBBackend extends AbstractNativeBackend {
    private static final long serialVersionUID = 1L;

    private final String checkpointUri;

    /** UNDEFINED: taken from {@code state.backend.incremental} when configured. */
    private final TernaryBoolean incremental;

    private final FileSystemCheckpointStorage storage;

    /**
     * Incremental checkpoints as {@code state.backend.incremental} says (off unless configured).
     */
    public NativeRocksDBBackend(String checkpointUri) {
        this(checkpointUri, TernaryBoolean.UNDEFINED);
    }

    /** Incremental checkpoints on or off, whatever the configuration says. */
    public NativeRocksDBBackend(String checkpointUri, boolean incremental) {
        this(checkpointUri, TernaryBoolean.fromBoolean(incremental));
    }

    private NativeRocksDBBackend(String checkpointUri, TernaryBoolean incremental) {
        this.checkpointUri = NativeFsBackend.requireUri(checkpointUri);
        this.incremental = incremental;
        this.storage = new FileSystemCheckpointStorage(checkpointUri);
    }

    public String getCheckpointUri() {
        return checkpointUri;
    }

    /**
     * Sets a {@code state.backend.rocksdb.*} option (README, "RocksDB options"), e.g. {@code
     * setRocksDBOption("state.backend.rocksdb.write-cache.size", "64 mb")}; it wins over the job's
     * configuration. A value the native side rejects fails the task's keyed backend with the key
     * and the reason.
     *
     * @throws IllegalArgumentException if {@code key} is not a RocksDB option this backend knows
     */
    public NativeRocksDBBackend setRocksDBOption(String key, String value) {
        if (key == null || !key.startsWith(ROCKSDB_PREFIX) || value == null) {
            throw new IllegalArgumentException(
                    "expected a state.backend.rocksdb.* key and a value, got " + key + "=" + value);
        }
        if (!NativeBackends.rocksDBOptionKnown(key)) {
            throw new IllegalArgumentException(key + " is not an option of NativeRocksDBBackend");
        }
        rocksDBOptions.put(key, value);
        return this;
    }

    /** The {@code state.backend.rocksdb.*} options given to the native side, by key. */
    public java.util.SortedMap<String, String> getRocksDBOptions() {
        return java.util.Collections.unmodifiableSortedMap(rocksDBOptions);
    }

    public boolean isIncremental() {
        return incremental.getOrDefault(
                CheckpointingOptions.INCREMENTAL_CHECKPOINTS.defaultValue());
    }

    @Override
    boolean incrementalCheckpoints() {
        return isIncremental();
    }

    /**
     * True, as for Flink's RocksDB backend: by default ({@code
     * state.backend.rocksdb.memory.managed}) keyed backends take their memory from the slot's
     * managed memory, so Flink gives keyed operators a share of it (docs/flink.md, "Memory").
     */
    @Override
    public boolean useManagedMemory() {
        return true;
    }

    @Override
    NativeBackends.Kind kind() {
        return NativeBackends.Kind.ROCKSDB;
    }

    @Override
    String factoryClassName() {
        return NativeRocksDBBackendFactory.class.getName();
    }

    @Override
    void addSettings(Configuration config) {
        config.set(CheckpointingOptions.CHECKPOINTS_DIRECTORY, checkpointUri);
        if (incremental != TernaryBoolean.UNDEFINED) {
            config.set(CheckpointingOptions.INCREMENTAL_CHECKPOINTS, isIncremental());
        }
    }

    @Override
    CheckpointStorage checkpointStorage() {
        return storage;
    }

    @Override
    public NativeRocksDBBackend configure(ReadableConfig config, ClassLoader classLoader) {
        TernaryBoolean resolved =
                incremental.resolveUndefined(
                        config.get(CheckpointingOptions.INCREMENTAL_CHECKPOINTS));
        return configureShared(new NativeRocksDBBackend(checkpointUri, resolved), config);
    }

    @Override
    public String toString() {
        return "NativeRocksDBBackend (checkpoints: "
                + checkpointUri
                + ", incremental: "
                + isIncremental()
                + ")";
    }
}
