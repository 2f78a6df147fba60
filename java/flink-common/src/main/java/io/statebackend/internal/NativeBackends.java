package io.statebackend.internal;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.configuration.ReadableConfig;
import org.apache.flink.core.fs.CloseableRegistry;
import org.apache.flink.runtime.execution.Environment;
import org.apache.flink.runtime.state.BackendBuildingException;
import org.apache.flink.runtime.state.DefaultOperatorStateBackendBuilder;
import org.apache.flink.runtime.state.IncrementalRemoteKeyedStateHandle;
import org.apache.flink.runtime.state.InternalKeyContextImpl;
import org.apache.flink.runtime.state.KeyGroupRange;
import org.apache.flink.runtime.state.KeyGroupsStateHandle;
import org.apache.flink.runtime.state.KeyedStateHandle;
import org.apache.flink.runtime.state.OperatorStateBackend;
import org.apache.flink.runtime.state.SavepointKeyedStateHandle;
import org.apache.flink.runtime.state.StateBackend.KeyedStateBackendParameters;
import org.apache.flink.runtime.state.StateBackend.OperatorStateBackendParameters;
import org.apache.flink.runtime.state.heap.HeapPriorityQueueSetFactory;
import org.apache.flink.util.StateMigrationException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Builds keyed and operator state backends from Flink's parameters. Everything that depends on the
 * Flink version's backend SPI (parameter objects, builders, handle types) is here and in {@link
 * NativeKeyedStateBackend}, so that a Flink 2.x adapter replaces these two classes.
 */
public final class NativeBackends {
    /** Which native backend. */
    public enum Kind {
        MEMORY("memory", "NativeMemoryBackend"),
        FS("fs", "NativeFsBackend"),
        ROCKSDB("rocksdb", "NativeRocksDBBackend");

        /** The core's name of the kind, which the native side parses. */
        final String nativeName;

        final String label;

        Kind(String nativeName, String label) {
            this.nativeName = nativeName;
            this.label = label;
        }
    }

    /**
     * Whether the native RocksDB backend knows the option {@code key} (a {@code
     * state.backend.rocksdb.*} key). Loads the native library.
     */
    public static boolean rocksDBOptionKnown(String key) {
        NativeLibrary.load();
        return NativeBridge.rocksDBOptionKnown(key);
    }

    /**
     * The RocksDB options the native side knows, as key and value alternately; the others (options
     * of Flink's own RocksDB backend in a shared configuration) are logged and left out.
     */
    private static String[] nativeOptions(Kind kind, Map<String, String> options) {
        if (kind != Kind.ROCKSDB) {
            return new String[0];
        }
        List<String> pairs = new ArrayList<>();
        options.forEach(
                (key, value) -> {
                    if (NativeBridge.rocksDBOptionKnown(key)) {
                        pairs.add(key);
                        pairs.add(value);
                    } else {
                        LOG.warn("{} has no effect on NativeRocksDBBackend", key);
                    }
                });
        return pairs.toArray(new String[0]);
    }

    private static final Logger LOG = LoggerFactory.getLogger(NativeBackends.class);

    /** Initial capacity of the timer queues per key group (Flink's heap backend uses 128). */
    private static final int TIMER_QUEUE_CAPACITY = 128;

    private NativeBackends() {}

    /**
     * A keyed backend for one subtask, restored from {@code parameters.getStateHandles()}. Loads
     * the native library on first use. The RocksDB backend checkpoints its files ({@link
     * NativeIncrementalSnapshotStrategy}): only the new ones with {@code incremental}, all of them
     * otherwise.
     */
    public static <K> NativeKeyedStateBackend<K> createKeyedStateBackend(
            Kind kind,
            long maxStateSize,
            boolean incremental,
            Map<String, String> rocksDBOptions,
            ReadableConfig trackingOptions,
            KeyedStateBackendParameters<K> parameters)
            throws IOException {
        NativeLibrary.load();
        Environment env = parameters.getEnv();
        KeyGroupRange range = parameters.getKeyGroupRange();
        List<RestoreSource> sources = new ArrayList<>();
        List<KeyedStateHandle> canonical = new ArrayList<>();
        SlotMemory memory = slotMemory(kind, rocksDBOptions, parameters);
        long id;
        try {
            for (KeyedStateHandle handle : parameters.getStateHandles()) {
                if (handle == null) {
                    continue;
                }
                if (handle instanceof SavepointKeyedStateHandle) {
                    // A canonical savepoint, ours or any Flink backend's.
                    canonical.add(handle);
                    continue;
                }
                RestoreSource source;
                if (handle instanceof KeyGroupsStateHandle) {
                    source =
                            new RestoreSource(
                                    ((KeyGroupsStateHandle) handle).getDelegateStateHandle());
                } else if (handle instanceof IncrementalRemoteKeyedStateHandle) {
                    source = RestoreSource.of((IncrementalRemoteKeyedStateHandle) handle);
                } else {
                    throw new IllegalStateException(
                            kind.label
                                    + " cannot restore from "
                                    + handle.getClass().getName()
                                    + ": it restores its own snapshots (KeyGroupsStateHandle,"
                                    + " IncrementalRemoteKeyedStateHandle) and canonical savepoints"
                                    + " (KeyGroupsSavepointStateHandle)");
                }
                // Cancelling the restore closes the streams it reads.
                parameters.getCancelStreamRegistry().registerCloseable(source);
                sources.add(source);
            }
            id =
                    NativeBridge.open(
                            kind.nativeName,
                            parameters.getNumberOfKeyGroups(),
                            range.getStartKeyGroup(),
                            range.getEndKeyGroup(),
                            maxStateSize,
                            localDirectory(env, parameters.getOperatorIdentifier()),
                            nativeOptions(kind, rocksDBOptions),
                            memory.nativeId(),
                            sources.toArray(new RestoreSource[0]));
        } catch (IOException | RuntimeException e) {
            closeQuietly(memory, e);
            throw e;
        } finally {
            for (RestoreSource source : sources) {
                if (parameters.getCancelStreamRegistry().unregisterCloseable(source)) {
                    source.close();
                }
            }
        }
        NativeHandle handle = new NativeHandle(id, memory);
        if (!canonical.isEmpty() && !sources.isEmpty()) {
            handle.close();
            throw new IllegalStateException(
                    kind.label
                            + " cannot restore a canonical savepoint and native snapshots at once");
        }
        TypeSerializer<K> keySerializer = parameters.getKeySerializer();
        if (!sources.isEmpty()) {
            try {
                keySerializer =
                        NativeKeyedStateBackend.restoredKeySerializer(
                                id, env.getUserCodeClassLoader().asClassLoader(), keySerializer);
            } catch (IOException | StateMigrationException | RuntimeException e) {
                handle.close();
                throw new BackendBuildingException(
                        kind.label + " cannot restore " + range + ": " + e.getMessage(), e);
            }
        }
        NativeKeyedStateBackend<K> backend =
                new NativeKeyedStateBackend<>(
                        handle,
                        kind != Kind.ROCKSDB
                                ? null
                                : incremental
                                        ? NativeIncrementalSnapshotStrategy.Mode.INCREMENTAL
                                        : NativeIncrementalSnapshotStrategy.Mode.FULL,
                        kind.label
                                + " keyed state of "
                                + parameters.getOperatorIdentifier()
                                + ", key groups "
                                + range,
                        parameters.getKvStateRegistry(),
                        keySerializer,
                        env.getUserCodeClassLoader().asClassLoader(),
                        env.getExecutionConfig(),
                        parameters.getTtlTimeProvider(),
                        trackingOptions,
                        parameters.getMetricGroup(),
                        // The parameters' registry is the restore's: Flink closes it once the
                        // backend is built. The backend's own registry lives as long as the
                        // backend.
                        new CloseableRegistry(),
                        new InternalKeyContextImpl<>(range, parameters.getNumberOfKeyGroups()),
                        "native-" + kind.nativeName,
                        new HeapPriorityQueueSetFactory(
                                range, parameters.getNumberOfKeyGroups(), TIMER_QUEUE_CAPACITY),
                        kind == Kind.ROCKSDB && nativeTimers(rocksDBOptions));
        if (!canonical.isEmpty()) {
            try {
                backend.restoreCanonical(canonical);
            } catch (Exception e) {
                backend.dispose();
                throw new BackendBuildingException(
                        kind.label + " failed to restore a canonical savepoint: " + e.getMessage(),
                        e);
            }
        }
        backend.registerMetrics(parameters.getMetricGroup());
        return backend;
    }

    /**
     * Whether {@code state.backend.rocksdb.timer-service.factory} asks for native timers: ROCKSDB,
     * the default (the native side has checked the value is HEAP or ROCKSDB).
     */
    static boolean nativeTimers(Map<String, String> rocksDBOptions) {
        String factory = rocksDBOptions.get(TIMER_SERVICE_FACTORY);
        return factory == null || !factory.trim().equalsIgnoreCase("HEAP");
    }

    static final String TIMER_SERVICE_FACTORY = "state.backend.rocksdb.timer-service.factory";

    /**
     * The memory a RocksDB keyed backend runs in (see {@link SlotMemory}); the heap backends have
     * none of their own.
     */
    private static SlotMemory slotMemory(
            Kind kind,
            Map<String, String> rocksDBOptions,
            KeyedStateBackendParameters<?> parameters)
            throws BackendBuildingException {
        try {
            return kind == Kind.ROCKSDB
                    ? SlotMemory.acquire(
                            rocksDBOptions,
                            parameters.getEnv().getMemoryManager(),
                            parameters.getManagedMemoryFraction())
                    : SlotMemory.none();
        } catch (Exception e) {
            throw new BackendBuildingException(
                    kind.label + " cannot take its memory: " + e.getMessage(), e);
        }
    }

    private static void closeQuietly(SlotMemory memory, Exception failure) {
        try {
            memory.close();
        } catch (Exception e) {
            failure.addSuppressed(e);
        }
    }

    /** One of the task manager's temporary directories, spread over subtasks. */
    private static String localDirectory(Environment env, String operatorIdentifier) {
        String[] dirs = env.getIOManager().getSpillingDirectoriesPaths();
        int index = env.getTaskInfo().getIndexOfThisSubtask() + operatorIdentifier.hashCode();
        return dirs[Math.floorMod(index, dirs.length)];
    }

    /** Operator (non-keyed) state: Flink's default operator state backend. */
    public static OperatorStateBackend createOperatorStateBackend(
            OperatorStateBackendParameters parameters) throws BackendBuildingException {
        return new DefaultOperatorStateBackendBuilder(
                        parameters.getEnv().getUserCodeClassLoader().asClassLoader(),
                        parameters.getEnv().getExecutionConfig(),
                        true,
                        parameters.getStateHandles(),
                        parameters.getCancelStreamRegistry())
                .build();
    }
}
