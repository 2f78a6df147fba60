package io.statebackend.internal;

import java.util.HashSet;
import java.util.Set;
import java.util.function.LongUnaryOperator;
import org.apache.flink.metrics.Gauge;
import org.apache.flink.metrics.MetricGroup;

/**
 * A native keyed backend's metrics, as gauges in the operator's metric group (the keyed backend
 * parameters' group, where Flink's RocksDB backend registers its own), docs/flink.md "Metrics":
 *
 * <ul>
 *   <li>{@code statebackend.writeCache.*} (RocksDB with its write-back cache): hits, misses,
 *       hitRate, cachedBytes, dirtyBytes, runsInFlight, writerStalls, writerStallMillis;
 *   <li>{@code statebackend.checkpoint.lastSyncDurationMicros} and {@code lastAsyncDurationMicros}:
 *       the phases of the last checkpoint or savepoint;
 *   <li>{@code statebackend.state.<state>.estimatedEntries} (and {@code estimatedBytes} on
 *       RocksDB), per state;
 *   <li>{@code <state>.rocksdb.<property>} (or {@code column_family=<state>} as a variable): the
 *       RocksDB properties enabled by {@code state.backend.rocksdb.metrics.*}, named as Flink's
 *       RocksDB backend names them;
 *   <li>{@code rocksdb.<counter>} ({@code rocksdb.block_cache_hit}, …): the RocksDB statistics
 *       counters enabled there, of the whole DB.
 * </ul>
 *
 * <p>Gauges are read on a metric reporter's thread. They share one native reading ({@link
 * NativeBridge#metrics}) for {@link #MAX_AGE_NANOS}; the native side takes the backend only when no
 * call holds it and never waits, so a gauge never blocks the task; when the backend is busy or
 * closed, the gauges keep the last reading.
 */
public final class NativeMetrics {
    /** A reading younger than this serves every gauge: one native call per report. */
    static final long MAX_AGE_NANOS = 100_000_000L;

    private static final int HITS = 0;
    private static final int MISSES = 1;
    private static final int CACHED_BYTES = 2;
    private static final int DIRTY_BYTES = 3;
    private static final int RUNS_IN_FLIGHT = 4;
    private static final int WRITER_STALLS = 5;
    private static final int WRITER_STALL_NANOS = 6;

    /** Readings taken on the task thread may meet a gauge's: tries before giving up. */
    private static final int READ_ATTEMPTS = 1000;

    private final NativeHandle handle;
    private final MetricGroup operatorGroup;
    private final MetricGroup stateGroup;
    private final String[] properties;
    private final String[] statistics;
    private final boolean columnFamilyAsVariable;
    private final Set<Integer> registered = new HashSet<>();

    /** The last reading ({@link NativeBridge#metrics}) and when it was taken. */
    private long[] reading;

    private long readAt;

    /**
     * Registers the backend's gauges in {@code operatorGroup}; per-state gauges follow as states
     * are registered ({@link #stateRegistered}). Called on the task thread.
     */
    NativeMetrics(NativeHandle handle, MetricGroup operatorGroup, CheckpointDurations durations) {
        this.handle = handle;
        this.operatorGroup = operatorGroup;
        this.properties = NativeBridge.metricProperties(handle.id());
        this.statistics = NativeBridge.metricStatistics(handle.id());
        this.columnFamilyAsVariable = NativeBridge.metricsColumnFamilyAsVariable(handle.id());
        this.reading = readNow();
        this.readAt = System.nanoTime();
        MetricGroup backend = operatorGroup.addGroup("statebackend");
        this.stateGroup = backend.addGroup("state");
        if (reading != null && reading[HITS] >= 0) {
            MetricGroup cache = backend.addGroup("writeCache");
            cache.gauge("hits", at(HITS));
            cache.gauge("misses", at(MISSES));
            cache.gauge("hitRate", (Gauge<Double>) this::hitRate);
            cache.gauge("cachedBytes", at(CACHED_BYTES));
            cache.gauge("dirtyBytes", at(DIRTY_BYTES));
            cache.gauge("runsInFlight", at(RUNS_IN_FLIGHT));
            cache.gauge("writerStalls", at(WRITER_STALLS));
            cache.gauge("writerStallMillis", at(WRITER_STALL_NANOS, nanos -> nanos / 1_000_000));
        }
        // As Flink's RocksDB backend: counters of the whole DB, in the operator's group.
        for (int i = 0; i < statistics.length; i++) {
            operatorGroup.gauge(statistics[i], at(NativeBridge.METRICS_HEADER + i));
        }
        MetricGroup checkpoint = backend.addGroup("checkpoint");
        checkpoint.gauge("lastSyncDurationMicros", (Gauge<Long>) durations::lastSyncMicros);
        checkpoint.gauge("lastAsyncDurationMicros", (Gauge<Long>) durations::lastAsyncMicros);
    }

    /**
     * Registers the gauges of state {@code name} (native id {@code id}) once. Called on the task
     * thread when a state is registered.
     */
    void stateRegistered(int id, String name) {
        if (!registered.add(id)) {
            return;
        }
        long[] now = readNow();
        int perState = NativeBridge.METRICS_PER_STATE + properties.length;
        int base = NativeBridge.METRICS_HEADER + statistics.length + id * perState;
        MetricGroup state = stateGroup.addGroup(name);
        state.gauge("estimatedEntries", at(base));
        if (now != null && base + 1 < now.length && now[base + 1] >= 0) {
            state.gauge("estimatedBytes", at(base + 1));
        }
        if (properties.length > 0) {
            MetricGroup rocksdb =
                    columnFamilyAsVariable
                            ? operatorGroup.addGroup("column_family", name)
                            : operatorGroup.addGroup(name);
            for (int p = 0; p < properties.length; p++) {
                rocksdb.gauge(properties[p], at(base + NativeBridge.METRICS_PER_STATE + p));
            }
        }
    }

    /** A reading on the task thread: retried while a gauge holds the backend for a moment. */
    private long[] readNow() {
        for (int attempt = 0; attempt < READ_ATTEMPTS && !handle.isClosed(); attempt++) {
            long[] values = NativeBridge.metrics(handle.id());
            if (values != null) {
                return values;
            }
            Thread.yield();
        }
        return null;
    }

    /**
     * The reading a gauge reports: the last one, renewed when older than {@link #MAX_AGE_NANOS}.
     */
    private synchronized long[] reading() {
        long now = System.nanoTime();
        if (now - readAt >= MAX_AGE_NANOS && !handle.isClosed()) {
            readAt = now;
            try {
                long[] values = NativeBridge.metrics(handle.id());
                if (values != null) {
                    reading = values;
                }
            } catch (RuntimeException e) {
                // A gauge never fails: the last reading stands.
            }
        }
        return reading;
    }

    private long value(int index) {
        long[] values = reading();
        return values == null || index >= values.length ? 0 : Math.max(0, values[index]);
    }

    private Gauge<Long> at(int index) {
        return () -> value(index);
    }

    private Gauge<Long> at(int index, LongUnaryOperator unit) {
        return () -> unit.applyAsLong(value(index));
    }

    private double hitRate() {
        long[] values = reading();
        if (values == null || values[HITS] < 0) {
            return 0;
        }
        long reads = values[HITS] + values[MISSES];
        return reads == 0 ? 0 : (double) values[HITS] / reads;
    }

    /**
     * How long the phases of the last checkpoint or savepoint took, as the snapshot strategies
     * measure them: the synchronous phase ({@code syncPrepareResources}) and the asynchronous one
     * (the supplier that writes or uploads), of those that succeeded; 0 before the first. Written
     * by the task and the asynchronous snapshot threads, read by gauges.
     */
    static final class CheckpointDurations {
        private volatile long lastSyncNanos;
        private volatile long lastAsyncNanos;

        void sync(long startNanos) {
            lastSyncNanos = System.nanoTime() - startNanos;
        }

        void async(long startNanos) {
            lastAsyncNanos = System.nanoTime() - startNanos;
        }

        long lastSyncMicros() {
            return micros(lastSyncNanos);
        }

        long lastAsyncMicros() {
            return micros(lastAsyncNanos);
        }

        /** Rounded up: a phase that ran reads at least 1. */
        private static long micros(long nanos) {
            return (nanos + 999) / 1000;
        }
    }
}
