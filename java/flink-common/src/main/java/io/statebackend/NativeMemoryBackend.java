package io.statebackend;

import io.statebackend.internal.NativeBackends;
import org.apache.flink.configuration.ConfigOption;
import org.apache.flink.configuration.ConfigOptions;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.MemorySize;
import org.apache.flink.configuration.ReadableConfig;
import org.apache.flink.runtime.state.CheckpointStorage;
import org.apache.flink.runtime.state.storage.JobManagerCheckpointStorage;

/**
 * Working state in native memory, snapshots sent to the JobManager. A checkpoint whose state is
 * over {@code maxStateSize} bytes (per state) is declined with the native backend's message, as
 * Flink's MemoryStateBackend did; the job goes on from the last good checkpoint.
 */
public class NativeMemoryBackend extends AbstractNativeBackend {
    private static final long serialVersionUID = 1L;

    /** The default limit: 5 MiB, as Flink's MemoryStateBackend. */
    public static final int DEFAULT_MAX_STATE_SIZE = 5 * 1024 * 1024;

    /** {@code state.backend.native.memory.max-state-size}: the limit, e.g. {@code 5 mb}. */
    public static final ConfigOption<MemorySize> MAX_STATE_SIZE =
            ConfigOptions.key("state.backend.native.memory.max-state-size")
                    .memoryType()
                    .defaultValue(MemorySize.parse(DEFAULT_MAX_STATE_SIZE + "b"))
                    .withDescription(
                            "Memory backend: the largest size of one state in a checkpoint.");

    private final int maxStateSize;
    private final JobManagerCheckpointStorage storage;

    public NativeMemoryBackend() {
        this(DEFAULT_MAX_STATE_SIZE);
    }

    public NativeMemoryBackend(int maxStateSize) {
        if (maxStateSize <= 0) {
            throw new IllegalArgumentException("maxStateSize must be positive: " + maxStateSize);
        }
        this.maxStateSize = maxStateSize;
        this.storage = new JobManagerCheckpointStorage(maxStateSize);
    }

    public int getMaxStateSize() {
        return maxStateSize;
    }

    @Override
    NativeBackends.Kind kind() {
        return NativeBackends.Kind.MEMORY;
    }

    @Override
    CheckpointStorage checkpointStorage() {
        return storage;
    }

    @Override
    String factoryClassName() {
        return NativeMemoryBackendFactory.class.getName();
    }

    @Override
    void addSettings(Configuration config) {
        config.set(MAX_STATE_SIZE, new MemorySize(maxStateSize));
    }

    @Override
    long maxStateSize() {
        return maxStateSize;
    }

    @Override
    public NativeMemoryBackend configure(ReadableConfig config, ClassLoader classLoader) {
        int size =
                config.getOptional(MAX_STATE_SIZE)
                        .map(s -> Math.toIntExact(s.getBytes()))
                        .orElse(maxStateSize);
        return configureShared(new NativeMemoryBackend(size), config);
    }

    @Override
    public String toString() {
        return "NativeMemoryBackend (maxStateSize: " + maxStateSize + ")";
    }
}
