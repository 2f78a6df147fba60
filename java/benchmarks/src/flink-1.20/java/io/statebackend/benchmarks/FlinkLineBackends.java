package io.statebackend.benchmarks;

import java.io.File;
import java.io.IOException;
import java.util.Collection;
import java.util.Map;
import org.apache.flink.api.common.ExecutionConfig;
import org.apache.flink.api.common.state.StateDescriptor;
import org.apache.flink.api.common.typeutils.base.LongSerializer;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.contrib.streaming.state.EmbeddedRocksDBStateBackend;
import org.apache.flink.contrib.streaming.state.RocksDBKeyedStateBackend;
import org.apache.flink.contrib.streaming.state.RocksDBKeyedStateBackendBuilder;
import org.apache.flink.contrib.streaming.state.RocksDBPriorityQueueConfig;
import org.apache.flink.contrib.streaming.state.RocksDBResourceContainer;
import org.apache.flink.core.fs.CloseableRegistry;
import org.apache.flink.metrics.groups.UnregisteredMetricsGroup;
import org.apache.flink.runtime.state.AbstractKeyedStateBackend;
import org.apache.flink.runtime.state.AbstractStateBackend;
import org.apache.flink.runtime.state.KeyedStateHandle;
import org.apache.flink.runtime.state.LocalRecoveryConfig;
import org.apache.flink.runtime.state.StateBackend;
import org.apache.flink.runtime.state.heap.HeapKeyedStateBackendBuilder;
import org.apache.flink.runtime.state.heap.HeapPriorityQueueSetFactory;
import org.apache.flink.runtime.state.metrics.LatencyTrackingStateConfig;
import org.apache.flink.runtime.state.ttl.TtlTimeProvider;
import org.apache.flink.util.IOUtils;

/**
 * Flink's backends as {@link Backends} builds them, on Flink 1.20: its builders' constructors and
 * the RocksDB backend's package ({@code org.apache.flink.contrib.streaming.state}). 1.20 has no
 * ForSt backend.
 */
final class FlinkLineBackends {
    /** The Flink line these benchmarks are built for. */
    static final String LINE = "1.20";

    private FlinkLineBackends() {}

    /** HashMapStateBackend's keyed backend, built as flink-benchmarks builds it. */
    static AbstractKeyedStateBackend<Long> heap(Collection<KeyedStateHandle> restore)
            throws IOException {
        ExecutionConfig config = new ExecutionConfig();
        return new HeapKeyedStateBackendBuilder<>(
                        null,
                        LongSerializer.INSTANCE,
                        Backends.class.getClassLoader(),
                        Backends.MAX_PARALLELISM,
                        Backends.KEY_GROUPS,
                        config,
                        TtlTimeProvider.DEFAULT,
                        LatencyTrackingStateConfig.disabled(),
                        restore,
                        AbstractStateBackend.getCompressionDecorator(config),
                        LocalRecoveryConfig.BACKUP_AND_RECOVERY_DISABLED,
                        new HeapPriorityQueueSetFactory(
                                Backends.KEY_GROUPS, Backends.MAX_PARALLELISM, 128),
                        // Asynchronous snapshots, as HashMapStateBackend builds it for a job.
                        true,
                        new CloseableRegistry())
                .build();
    }

    /**
     * EmbeddedRocksDBStateBackend's keyed backend in {@code dbDir} (an existing directory), built
     * as flink-benchmarks builds it: Flink's default options, no managed memory.
     */
    static AbstractKeyedStateBackend<Long> rocksDB(File dbDir, Collection<KeyedStateHandle> restore)
            throws IOException {
        ExecutionConfig config = new ExecutionConfig();
        RocksDBResourceContainer resources = new RocksDBResourceContainer();
        try {
            return new RocksDBKeyedStateBackendBuilder<>(
                            "benchmark",
                            Backends.class.getClassLoader(),
                            dbDir,
                            resources,
                            stateName -> resources.getColumnOptions(),
                            null,
                            LongSerializer.INSTANCE,
                            Backends.MAX_PARALLELISM,
                            Backends.KEY_GROUPS,
                            config,
                            LocalRecoveryConfig.BACKUP_AND_RECOVERY_DISABLED,
                            RocksDBPriorityQueueConfig.buildWithPriorityQueueType(
                                    EmbeddedRocksDBStateBackend.PriorityQueueStateType.ROCKSDB),
                            TtlTimeProvider.DEFAULT,
                            LatencyTrackingStateConfig.disabled(),
                            new UnregisteredMetricsGroup(),
                            (name, value) -> {},
                            restore,
                            AbstractStateBackend.getCompressionDecorator(config),
                            new CloseableRegistry())
                    .build();
        } catch (IOException | RuntimeException e) {
            IOUtils.closeQuietly(resources);
            throw e;
        }
    }

    /**
     * EmbeddedRocksDBStateBackend with managed memory off; {@code options} (null: none) applied as
     * a job's configuration is, its RocksDB directory in {@code dbDir} (null: Flink's default, the
     * task manager's temporary directory).
     */
    static StateBackend embeddedRocksDB(
            boolean incremental, Map<String, String> options, File dbDir) {
        EmbeddedRocksDBStateBackend rocks = new EmbeddedRocksDBStateBackend(incremental);
        rocks.getMemoryConfiguration().setUseManagedMemory(false);
        if (options != null) {
            rocks =
                    rocks.configure(
                            Configuration.fromMap(options), Backends.class.getClassLoader());
        }
        if (dbDir != null) {
            rocks.setDbStoragePath(dbDir.getAbsolutePath());
        }
        return rocks;
    }

    /** Flink 1.20 has no ForSt backend. */
    static StateBackend forSt(File localDir, boolean incremental) {
        throw new UnsupportedOperationException(
                "FORST needs Flink 2.x: build the benchmarks with -P flink-2.3"
                        + " (BENCH_FLINK=2.3 scripts/bench-flink)");
    }

    /**
     * Compacts {@code descriptor}'s column family if {@code keyed} is Flink's RocksDB keyed
     * backend, as flink-benchmarks does between iterations; false if it is not.
     */
    static boolean compact(AbstractKeyedStateBackend<?> keyed, StateDescriptor<?, ?> descriptor)
            throws Exception {
        if (keyed instanceof RocksDBKeyedStateBackend) {
            ((RocksDBKeyedStateBackend<?>) keyed).compactState(descriptor);
            return true;
        }
        return false;
    }
}
