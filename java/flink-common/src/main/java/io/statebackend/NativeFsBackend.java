package io.statebackend;

import io.statebackend.internal.NativeBackends;
import org.apache.flink.configuration.CheckpointingOptions;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.ReadableConfig;
import org.apache.flink.runtime.state.CheckpointStorage;
import org.apache.flink.runtime.state.storage.FileSystemCheckpointStorage;

/**
 * Working state in native memory, snapshots written under a checkpoint URI through Flink's file
 * systems ({@code file://}, {@code hdfs://}, {@code s3://}, ... wherever Flink has them).
 */
public class NativeFsBackend extends AbstractNativeBackend {
    private static final long serialVersionUID = 1L;

    private final String checkpointUri;
    private final FileSystemCheckpointStorage storage;

    public NativeFsBackend(String checkpointUri) {
        this.checkpointUri = requireUri(checkpointUri);
        this.storage = new FileSystemCheckpointStorage(checkpointUri);
    }

    static String requireUri(String checkpointUri) {
        if (checkpointUri == null || checkpointUri.trim().isEmpty()) {
            throw new IllegalArgumentException(
                    "a checkpoint URI is required (e.g. file:///data/flink/checkpoints)");
        }
        return checkpointUri.trim();
    }

    public String getCheckpointUri() {
        return checkpointUri;
    }

    @Override
    NativeBackends.Kind kind() {
        return NativeBackends.Kind.FS;
    }

    @Override
    String factoryClassName() {
        return NativeFsBackendFactory.class.getName();
    }

    @Override
    void addSettings(Configuration config) {
        config.set(CheckpointingOptions.CHECKPOINTS_DIRECTORY, checkpointUri);
    }

    @Override
    CheckpointStorage checkpointStorage() {
        return storage;
    }

    @Override
    public NativeFsBackend configure(ReadableConfig config, ClassLoader classLoader) {
        return configureShared(new NativeFsBackend(checkpointUri), config);
    }

    @Override
    public String toString() {
        return "NativeFsBackend (checkpoints: " + checkpointUri + ")";
    }
}
