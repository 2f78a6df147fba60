package io.statebackend;

import io.statebackend.internal.NativeBackends;
import org.apache.flink.configuration.ReadableConfig;
import org.apache.flink.runtime.state.CheckpointStorage;
import org.apache.flink.runtime.state.storage.FileSystemCheckpointStorage;

/**
 * Working state in an embedded RocksDB under the task manager's temporary directories, snapshots
 * written under a checkpoint URI through Flink's file systems.
 *
 * <p>Snapshots are full snapshots; {@code incremental} is recorded for the incremental checkpoints
 * that follow ({@code IncrementalRemoteKeyedStateHandle}).
 */
public class NativeRocksDBBackend extends AbstractNativeBackend {
    private static final long serialVersionUID = 1L;

    private final String checkpointUri;
    private final boolean incremental;
    private final FileSystemCheckpointStorage storage;

    public NativeRocksDBBackend(String checkpointUri) {
        this(checkpointUri, false);
    }

    public NativeRocksDBBackend(String checkpointUri, boolean incremental) {
        this.checkpointUri = NativeFsBackend.requireUri(checkpointUri);
        this.incremental = incremental;
        this.storage = new FileSystemCheckpointStorage(checkpointUri);
    }

    public String getCheckpointUri() {
        return checkpointUri;
    }

    public boolean isIncremental() {
        return incremental;
    }

    @Override
    NativeBackends.Kind kind() {
        return NativeBackends.Kind.ROCKSDB;
    }

    @Override
    CheckpointStorage checkpointStorage() {
        return storage;
    }

    @Override
    public NativeRocksDBBackend configure(ReadableConfig config, ClassLoader classLoader) {
        return configureShared(new NativeRocksDBBackend(checkpointUri, incremental), config);
    }

    @Override
    public String toString() {
        return "NativeRocksDBBackend (checkpoints: "
                + checkpointUri
                + ", incremental: "
                + incremental
                + ")";
    }
}
