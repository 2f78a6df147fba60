package io.statebackend;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.function.Predicate;
import java.util.stream.Stream;
import org.apache.flink.api.common.state.MapState;
import org.apache.flink.api.common.state.MapStateDescriptor;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.core.execution.JobClient;
import org.apache.flink.metrics.Gauge;
import org.apache.flink.runtime.testutils.InMemoryReporter;
import org.apache.flink.runtime.testutils.MiniClusterResourceConfiguration;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.apache.flink.util.Collector;
import org.apache.flink.util.FileUtils;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The backends' metrics (docs/flink.md, "Metrics") read through a metric reporter of a MiniCluster
 * while a keyed job runs: the job writes {@link #KEYS} keys into value and map state, then reads
 * the same keys over and over, with checkpoints every 200 ms. On each backend the state's entry
 * estimate and the checkpoint phases' durations must show; on RocksDB the write cache's hits and
 * misses, the RocksDB property enabled by {@code state.backend.rocksdb.metrics.estimate-num-keys}
 * and the statistics counter enabled by {@code metrics.bytes-written} too, while a property and a
 * counter left disabled must be absent; the heap backends register no write-cache or RocksDB
 * metrics.
 */
class MetricsMiniClusterTest {
    private static final int KEYS = 2000;
    private static final long TIMEOUT_MILLIS = 60_000;

    private static final InMemoryReporter REPORTER = InMemoryReporter.createWithRetainedMetrics();

    @RegisterExtension
    static final MiniClusterExtension CLUSTER =
            new MiniClusterExtension(
                    new MiniClusterResourceConfiguration.Builder()
                            .setConfiguration(REPORTER.addToConfiguration(new Configuration()))
                            .setNumberTaskManagers(1)
                            .setNumberSlotsPerTaskManager(1)
                            .build());

    static Stream<String> backends() {
        return Stream.of("rocksdb", "rocksdb-incremental", "fs", "memory");
    }

    private static AbstractNativeBackend backend(String kind, Path checkpoints) {
        String uri = checkpoints.toUri().toString();
        switch (kind) {
            case "rocksdb":
            case "rocksdb-incremental":
                return new NativeRocksDBBackend(uri, kind.endsWith("incremental"))
                        .setRocksDBOption("state.backend.rocksdb.metrics.estimate-num-keys", "true")
                        .setRocksDBOption(
                                "state.backend.rocksdb.metrics.block-cache-usage", "false")
                        .setRocksDBOption("state.backend.rocksdb.metrics.bytes-written", "true")
                        // Small runs: writes reach RocksDB while the job runs.
                        .setRocksDBOption("state.backend.rocksdb.write-cache.dirty-size", "64 kb");
            case "fs":
                return new NativeFsBackend(uri);
            default:
                return new NativeMemoryBackend();
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void gaugesShowStateCacheAndCheckpoints(String kind) throws Exception {
        // Not @TempDir: Flink may still discard a checkpoint while the job shuts down.
        Path checkpoints = Files.createTempDirectory("metrics-");
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        env.setParallelism(1);
        env.setMaxParallelism(128);
        env.enableCheckpointing(200);
        TestJobs.setStateBackend(env, backend(kind, checkpoints));
        env.addSource(new WriteThenReadSource())
                .keyBy(e -> (int) (e % KEYS))
                .process(new StateFunction())
                .name("stateful")
                .addSink(new DiscardingTestSink<>());
        String jobName = "native metrics " + kind;
        JobClient job = env.executeAsync(jobName);
        try {
            boolean rocksdb = kind.startsWith("rocksdb");
            List<String> positive =
                    new ArrayList<>(
                            List.of(
                                    "statebackend.state.counts.estimatedEntries",
                                    "statebackend.state.lookups.estimatedEntries",
                                    "statebackend.checkpoint.lastSyncDurationMicros",
                                    "statebackend.checkpoint.lastAsyncDurationMicros"));
            if (rocksdb) {
                positive.addAll(
                        List.of(
                                "statebackend.writeCache.hits",
                                "statebackend.writeCache.misses",
                                "counts.rocksdb.estimate-num-keys",
                                "lookups.rocksdb.estimate-num-keys",
                                "rocksdb.bytes_written"));
            }
            Map<String, Long> seen =
                    waitFor(
                            jobName,
                            m ->
                                    positive.stream().allMatch(name -> m.getOrDefault(name, 0L) > 0)
                                            && (rocksdb
                                                    || m.get(
                                                                    "statebackend.state.counts.estimatedEntries")
                                                            == KEYS));
            assertThat(seen.get("statebackend.state.counts.estimatedEntries")).isPositive();
            assertThat(seen.get("statebackend.state.lookups.estimatedEntries")).isPositive();
            assertThat(seen.get("statebackend.checkpoint.lastSyncDurationMicros")).isPositive();
            assertThat(seen.get("statebackend.checkpoint.lastAsyncDurationMicros")).isPositive();
            assertThat(seen)
                    .doesNotContainKey("counts.rocksdb.block-cache-usage")
                    .doesNotContainKey("rocksdb.block_cache_hit");
            if (rocksdb) {
                assertThat(seen.get("statebackend.writeCache.hits")).isPositive();
                assertThat(seen.get("statebackend.writeCache.misses")).isPositive();
                assertThat(seen.get("statebackend.writeCache.cachedBytes")).isPositive();
                assertThat(seen)
                        .containsKeys(
                                "statebackend.writeCache.dirtyBytes",
                                "statebackend.writeCache.runsInFlight",
                                "statebackend.writeCache.writerStalls",
                                "statebackend.writeCache.writerStallMillis",
                                "statebackend.state.counts.estimatedBytes",
                                "lookups.rocksdb.estimate-num-keys");
                assertThat(seen.get("counts.rocksdb.estimate-num-keys")).isPositive();
                double hitRate = (Double) gauges(jobName).get("statebackend.writeCache.hitRate");
                assertThat(hitRate).isGreaterThan(0.0).isLessThanOrEqualTo(1.0);
            } else {
                // The heap stores count entries exactly: one per key in the value state.
                assertThat(seen.get("statebackend.state.counts.estimatedEntries"))
                        .isEqualTo((long) KEYS);
                assertThat(seen.keySet())
                        .noneMatch(name -> name.startsWith("statebackend.writeCache."))
                        .noneMatch(name -> name.contains(".rocksdb."))
                        .doesNotContain("statebackend.state.counts.estimatedBytes");
            }
        } finally {
            job.cancel().get();
            FileUtils.deleteDirectoryQuietly(checkpoints.toFile());
        }
    }

    /**
     * Polls the job's gauges of the stateful operator until {@code done} holds for their values
     * (longs; other gauges left out), by name below the operator's group.
     */
    private static Map<String, Long> waitFor(String job, Predicate<Map<String, Long>> done)
            throws InterruptedException {
        long deadline = System.currentTimeMillis() + TIMEOUT_MILLIS;
        Map<String, Long> values = new TreeMap<>();
        while (System.currentTimeMillis() < deadline) {
            values.clear();
            gauges(job)
                    .forEach(
                            (name, value) -> {
                                if (value instanceof Long) {
                                    values.put(name, (Long) value);
                                }
                            });
            if (done.test(values)) {
                return values;
            }
            Thread.sleep(200);
        }
        throw new AssertionError("the gauges never showed what they should: " + values);
    }

    /**
     * The gauges below the stateful operator's group of the job named {@code jobName}, by the rest
     * of their identifier.
     */
    private static Map<String, Object> gauges(String jobName) {
        // The operator's scope: <host>.taskmanager.<id>.<job>.<operator>.<subtask> (parallelism 1).
        String scope = "." + jobName + ".stateful.0.";
        Map<String, Object> out = new TreeMap<>();
        REPORTER.getMetricsByGroup()
                .forEach(
                        (group, metrics) ->
                                metrics.forEach(
                                        (name, metric) -> {
                                            String id = group.getMetricIdentifier(name);
                                            int at = id.indexOf(scope);
                                            if (at >= 0 && metric instanceof Gauge) {
                                                out.put(
                                                        id.substring(at + scope.length()),
                                                        ((Gauge<?>) metric).getValue());
                                            }
                                        }));
        return out;
    }

    /** Writes every key once, then reads keys round and round until cancelled. */
    static final class WriteThenReadSource implements TestSource<Long> {
        private volatile boolean running = true;

        @Override
        public void run(SourceContext<Long> ctx) throws Exception {
            long next = 0;
            while (running) {
                synchronized (ctx.getCheckpointLock()) {
                    ctx.collect(next);
                }
                next++;
                if (next > KEYS && next % 1000 == 0) {
                    Thread.sleep(5);
                }
            }
        }

        @Override
        public void cancel() {
            running = false;
        }
    }

    /** The first event of a key writes it; later ones read it. */
    static final class StateFunction extends KeyedProcessFunction<Integer, Long, Long> {
        private transient ValueState<Long> counts;
        private transient MapState<Integer, Long> lookups;

        @Override
        public void open(org.apache.flink.api.common.functions.OpenContext ctx) {
            counts = getRuntimeContext().getState(new ValueStateDescriptor<>("counts", Long.class));
            lookups =
                    getRuntimeContext()
                            .getMapState(
                                    new MapStateDescriptor<>("lookups", Integer.class, Long.class));
        }

        @Override
        public void processElement(Long event, Context ctx, Collector<Long> out) throws Exception {
            int key = ctx.getCurrentKey();
            if (event < KEYS) {
                counts.update(event);
                lookups.put(key, event);
            } else {
                Long count = counts.value();
                Long looked = lookups.get(key);
                if (count == null || looked == null) {
                    throw new IllegalStateException("key " + key + " lost its state");
                }
            }
        }
    }
}
