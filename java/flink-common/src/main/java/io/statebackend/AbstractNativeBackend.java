package io.statebackend;

import io.statebackend.internal.FlinkLine;
import io.statebackend.internal.FlinkLineStateBackend;
import io.statebackend.internal.NativeBackends;
import java.io.IOException;
import java.util.TreeMap;
import org.apache.flink.api.common.JobID;
import org.apache.flink.configuration.CheckpointingOptions;
import org.apache.flink.configuration.ConfigOption;
import org.apache.flink.configuration.ConfigOptions;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.ReadableConfig;
import org.apache.flink.configuration.StateBackendOptions;
import org.apache.flink.configuration.StateLatencyTrackOptions;
import org.apache.flink.core.execution.SavepointFormatType;
import org.apache.flink.runtime.state.CheckpointStorage;
import org.apache.flink.runtime.state.CheckpointStorageAccess;
import org.apache.flink.runtime.state.CompletedCheckpointStorageLocation;
import org.apache.flink.runtime.state.ConfigurableStateBackend;
import org.apache.flink.runtime.state.OperatorStateBackend;
import org.apache.flink.runtime.state.StateBackend;

/**
 * What the three native backends share. Each is a Flink {@link StateBackend} and, like Flink's
 * legacy backends, also the job's {@link CheckpointStorage}: it delegates to Flink's own checkpoint
 * storage (JobManager or file system), so snapshot bytes go through Flink's file systems.
 *
 * <p>Constructing, configuring or deserializing a backend loads no native code: that happens when a
 * task creates its keyed state backend.
 */
public abstract class AbstractNativeBackend
        implements FlinkLineStateBackend, ConfigurableStateBackend, CheckpointStorage {
    private static final long serialVersionUID = 1L;

    /**
     * The state-metrics options this backend was given: latency tracking ({@code
     * state.latency-track.*}) and, on Flink 2.x, size tracking ({@code state.size-track.*}).
     */
    Configuration trackingOptions = new Configuration();

    /**
     * The {@code state.backend.rocksdb.*} options for the native side, by key (RocksDB backend
     * only): from the configuration, overridden by those set on the backend.
     */
    TreeMap<String, String> rocksDBOptions = new TreeMap<>();

    /**
     * {@code state.backend.native.async-keyed-backend} (Flink 2.x): whether jobs that use State V2
     * get this backend's own asynchronous keyed backend, whose requests Flink's controller batches
     * and the native executor runs, instead of Flink's adaptor, which runs each request at once and
     * is faster on the task thread (docs/benchmarks.md). Off by default; no effect on Flink 1.20.
     */
    public static final ConfigOption<Boolean> ASYNC_KEYED_BACKEND =
            ConfigOptions.key("state.backend.native.async-keyed-backend")
                    .booleanType()
                    .defaultValue(false)
                    .withDescription(
                            "Flink 2.x: State V2 jobs use the native asynchronous keyed backend"
                                    + " (requests batched by Flink's controller) instead of Flink's"
                                    + " adaptor over the synchronous one.");

    boolean asyncKeyedBackend;

    AbstractNativeBackend() {}

    /** Whether State V2 jobs get {@link #ASYNC_KEYED_BACKEND}'s asynchronous keyed backend. */
    public boolean isAsyncKeyedBackendEnabled() {
        return asyncKeyedBackend;
    }

    /**
     * Gives a configured copy what every backend takes from {@link #configure}: the state-metrics
     * options and the {@code state.backend.rocksdb.*} ones, the values of this backend overridden
     * by the configuration's.
     */
    <T extends AbstractNativeBackend> T configureShared(T copy, ReadableConfig config) {
        Configuration tracking = new Configuration(trackingOptions);
        copyOption(StateLatencyTrackOptions.LATENCY_TRACK_ENABLED, config, tracking);
        copyOption(StateLatencyTrackOptions.LATENCY_TRACK_SAMPLE_INTERVAL, config, tracking);
        copyOption(StateLatencyTrackOptions.LATENCY_TRACK_HISTORY_SIZE, config, tracking);
        copyOption(StateLatencyTrackOptions.LATENCY_TRACK_STATE_NAME_AS_VARIABLE, config, tracking);
        FlinkLine.copyTrackingOptions(config, tracking);
        copy.trackingOptions = tracking;
        TreeMap<String, String> options = new TreeMap<>();
        config.toMap()
                .forEach(
                        (key, value) -> {
                            // The local directory is Flink's: tasks get theirs from the IO manager.
                            if (key.startsWith(ROCKSDB_PREFIX) && !key.equals(ROCKSDB_LOCAL_DIR)) {
                                options.put(key, value);
                            }
                        });
        options.putAll(rocksDBOptions);
        copy.rocksDBOptions = options;
        copy.asyncKeyedBackend = config.getOptional(ASYNC_KEYED_BACKEND).orElse(asyncKeyedBackend);
        return copy;
    }

    static final String ROCKSDB_PREFIX = "state.backend.rocksdb.";
    private static final String ROCKSDB_LOCAL_DIR = "state.backend.rocksdb.localdir";

    private static <T> void copyOption(
            ConfigOption<T> option, ReadableConfig from, Configuration to) {
        from.getOptional(option).ifPresent(value -> to.set(option, value));
    }

    abstract NativeBackends.Kind kind();

    /**
     * The configuration that chooses this backend, with its settings, through its factory ({@code
     * state.backend.type}). On Flink 2.x, where {@code StreamExecutionEnvironment#setStateBackend}
     * is gone, {@code env.configure(backend.toConfiguration())} chooses it in code; the factory
     * builds an equal backend from it on every task manager.
     */
    public Configuration toConfiguration() {
        Configuration config = new Configuration(trackingOptions);
        config.set(StateBackendOptions.STATE_BACKEND, factoryClassName());
        rocksDBOptions.forEach(
                (key, value) ->
                        config.set(ConfigOptions.key(key).stringType().noDefaultValue(), value));
        if (asyncKeyedBackend) {
            config.set(ASYNC_KEYED_BACKEND, true);
        }
        addSettings(config);
        return config;
    }

    /** The {@link org.apache.flink.runtime.state.StateBackendFactory} of this backend. */
    abstract String factoryClassName();

    /** Adds what this backend's constructor took to {@link #toConfiguration}. */
    abstract void addSettings(Configuration config);

    /** Flink's checkpoint storage this backend delegates to. */
    abstract CheckpointStorage checkpointStorage();

    /** The native limit on one state's size in a snapshot (memory backend only). */
    long maxStateSize() {
        return Long.MAX_VALUE;
    }

    /** Whether checkpoints (not savepoints) are incremental (RocksDB only). */
    boolean incrementalCheckpoints() {
        return false;
    }

    /** The checkpoint directory from Flink's configuration (current and classic keys). */
    static String configuredCheckpointDirectory(ReadableConfig config) {
        return config.get(CheckpointingOptions.CHECKPOINTS_DIRECTORY);
    }

    @Override
    public <K> io.statebackend.internal.NativeKeyedStateBackend<K> createKeyedStateBackend(
            KeyedStateBackendParameters<K> parameters) throws IOException {
        return NativeBackends.createKeyedStateBackend(
                kind(),
                maxStateSize(),
                incrementalCheckpoints(),
                rocksDBOptions,
                trackingOptions,
                parameters);
    }

    @Override
    public OperatorStateBackend createOperatorStateBackend(
            OperatorStateBackendParameters parameters) throws Exception {
        return NativeBackends.createOperatorStateBackend(parameters);
    }

    @Override
    public CompletedCheckpointStorageLocation resolveCheckpoint(String externalPointer)
            throws IOException {
        return checkpointStorage().resolveCheckpoint(externalPointer);
    }

    @Override
    public CheckpointStorageAccess createCheckpointStorage(JobID jobId) throws IOException {
        return checkpointStorage().createCheckpointStorage(jobId);
    }

    @Override
    public boolean supportsNoClaimRestoreMode() {
        // Full snapshots are self-contained: nothing of a restored checkpoint is reused.
        return true;
    }

    @Override
    public boolean supportsSavepointFormat(SavepointFormatType formatType) {
        // NATIVE: our own full snapshots; CANONICAL: Flink's backend-independent format,
        // readable by Flink's HashMap and RocksDB backends (and theirs by ours).
        return formatType == SavepointFormatType.NATIVE
                || formatType == SavepointFormatType.CANONICAL;
    }

    @Override
    public String getName() {
        return kind().name();
    }
}
