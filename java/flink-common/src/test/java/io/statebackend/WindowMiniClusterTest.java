package io.statebackend;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.functions.AggregateFunction;
import org.apache.flink.api.common.functions.MapFunction;
import org.apache.flink.api.common.state.CheckpointListener;
import org.apache.flink.api.common.state.ListState;
import org.apache.flink.api.common.state.ListStateDescriptor;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.api.java.tuple.Tuple3;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.RestartStrategyOptions;
import org.apache.flink.runtime.state.FunctionInitializationContext;
import org.apache.flink.runtime.state.FunctionSnapshotContext;
import org.apache.flink.runtime.testutils.MiniClusterResourceConfiguration;
import org.apache.flink.streaming.api.checkpoint.CheckpointedFunction;
import org.apache.flink.streaming.api.datastream.KeyedStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.windowing.ProcessWindowFunction;
import org.apache.flink.streaming.api.windowing.assigners.EventTimeSessionWindows;
import org.apache.flink.streaming.api.windowing.assigners.TumblingEventTimeWindows;
import org.apache.flink.streaming.api.windowing.windows.TimeWindow;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.apache.flink.util.Collector;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Event-time windows on each native backend: tumbling windows with a reduce function (window state
 * is reducing state) and session windows with an aggregate function (aggregating state, merged
 * across namespaces as sessions grow together). A bounded deterministic source with monotonous
 * timestamps, checkpoints every 200 ms, and three failures injected, each after a checkpoint
 * completed since the last restart: the committed output of an exactly-once sink must equal the
 * windows computed in plain Java.
 */
class WindowMiniClusterTest {
    private static final int EVENTS = 4000;
    private static final int KEYS = 8;

    /** Event i has event time i * 10 ms. */
    private static final long STEP = 10;

    private static final long TUMBLE = 1000;
    private static final long GAP = 200;
    private static final long[] FAIL_AT = {1000, 2000, 3000};

    @RegisterExtension
    static final MiniClusterExtension CLUSTER =
            new MiniClusterExtension(
                    new MiniClusterResourceConfiguration.Builder()
                            .setNumberTaskManagers(1)
                            .setNumberSlotsPerTaskManager(2)
                            .build());

    static final AtomicInteger failures = new AtomicInteger();

    static Stream<Arguments> runs() {
        List<Arguments> runs = new ArrayList<>();
        for (String backend : List.of("rocksdb", "rocksdb-incremental", "fs", "memory")) {
            for (String window : List.of("tumbling", "session")) {
                runs.add(Arguments.of(backend, window));
            }
        }
        return runs.stream();
    }

    private static AbstractNativeBackend backend(String kind, Path checkpoints) {
        switch (kind) {
            case "rocksdb":
                return new NativeRocksDBBackend(checkpoints.toUri().toString());
            case "rocksdb-incremental":
                return new NativeRocksDBBackend(checkpoints.toUri().toString(), true);
            case "fs":
                return new NativeFsBackend(checkpoints.toUri().toString());
            default:
                return new NativeMemoryBackend();
        }
    }

    /** Whether event {@code i} exists: each key pauses for 1 s in every 3 s (session gaps). */
    static boolean exists(long i) {
        return ((i / 100) + i % KEYS) % 3 != 0;
    }

    static int key(long i) {
        return (int) (i % KEYS);
    }

    static long value(long i) {
        return (i * 31) % 1000;
    }

    static String describe(int key, long start, long end, long sum, long count) {
        return key + "@[" + start + "," + end + "): sum=" + sum + " count=" + count;
    }

    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("runs")
    void windowsAreExactlyOnce(String kind, String window) throws Exception {
        Path checkpoints = Files.createTempDirectory("windows-");
        try {
            runJob(kind, window, checkpoints);
        } finally {
            org.apache.flink.util.FileUtils.deleteDirectoryQuietly(checkpoints.toFile());
        }
    }

    private void runJob(String kind, String window, Path checkpoints) throws Exception {
        String channel = "windows-" + kind + "-" + window;
        CommittingSink.reset(channel);
        failures.set(0);
        Configuration conf = new Configuration();
        conf.set(RestartStrategyOptions.RESTART_STRATEGY, "fixed-delay");
        conf.set(RestartStrategyOptions.RESTART_STRATEGY_FIXED_DELAY_ATTEMPTS, 5);
        conf.set(RestartStrategyOptions.RESTART_STRATEGY_FIXED_DELAY_DELAY, Duration.ofMillis(100));
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(conf);
        env.setParallelism(2);
        env.setMaxParallelism(128);
        env.enableCheckpointing(200);
        env.getConfig().setAutoWatermarkInterval(50);
        TestJobs.setStateBackend(env, backend(kind, checkpoints));

        // Tumbling: the events become (key, 1 as count, value) tuples that the reduce sums.
        KeyedStream<Tuple3<Integer, Long, Long>, Integer> keyed =
                env.addSource(new EventSource())
                        .setParallelism(1)
                        .assignTimestampsAndWatermarks(
                                WatermarkStrategy
                                        .<Tuple3<Integer, Long, Long>>forMonotonousTimestamps()
                                        .withTimestampAssigner((e, previous) -> e.f1))
                        .setParallelism(1)
                        .map(new ToCount(window.equals("tumbling")))
                        .setParallelism(1)
                        .keyBy(e -> e.f0);
        if (window.equals("tumbling")) {
            keyed.window(TumblingEventTimeWindows.of(Duration.ofMillis(TUMBLE)))
                    .reduce(
                            (a, b) -> Tuple3.of(a.f0, a.f1 + b.f1, a.f2 + b.f2),
                            new Describe<Tuple3<Integer, Long, Long>>())
                    .addSink(new CommittingSink(channel))
                    .setParallelism(1);
        } else {
            keyed.window(EventTimeSessionWindows.withGap(Duration.ofMillis(GAP)))
                    .aggregate(new SumCount(), new Describe<Tuple2<Long, Long>>())
                    .addSink(new CommittingSink(channel))
                    .setParallelism(1);
        }
        env.execute("windows " + kind + " " + window);

        assertThat(failures.get()).as("failures injected").isEqualTo(FAIL_AT.length);
        List<String> actual = new ArrayList<>(CommittingSink.committed(channel));
        actual.sort(null);
        List<String> expected = window.equals("tumbling") ? expectedTumbling() : expectedSessions();
        expected.sort(null);
        assertThat(actual).hasSameSizeAs(expected).isEqualTo(expected);
    }

    static List<String> expectedTumbling() {
        Map<String, long[]> windows = new TreeMap<>();
        for (long i = 0; i < EVENTS; i++) {
            if (!exists(i)) {
                continue;
            }
            long start = (i * STEP) / TUMBLE * TUMBLE;
            long[] acc = windows.computeIfAbsent(key(i) + "/" + start, k -> new long[] {0, 0});
            acc[0] += value(i);
            acc[1]++;
        }
        List<String> out = new ArrayList<>();
        windows.forEach(
                (k, acc) -> {
                    int key = Integer.parseInt(k.substring(0, k.indexOf('/')));
                    long start = Long.parseLong(k.substring(k.indexOf('/') + 1));
                    out.add(describe(key, start, start + TUMBLE, acc[0], acc[1]));
                });
        return out;
    }

    static List<String> expectedSessions() {
        List<String> out = new ArrayList<>();
        for (int key = 0; key < KEYS; key++) {
            long start = -1;
            long last = -1;
            long sum = 0;
            long count = 0;
            for (long i = key; i < EVENTS; i += KEYS) {
                if (!exists(i)) {
                    continue;
                }
                long ts = i * STEP;
                // Flink merges session windows that touch: [a, a+gap) and [b, b+gap), b <= a+gap.
                if (start >= 0 && ts > last + GAP) {
                    out.add(describe(key, start, last + GAP, sum, count));
                    start = -1;
                }
                if (start < 0) {
                    start = ts;
                    sum = 0;
                    count = 0;
                }
                last = ts;
                sum += value(i);
                count++;
            }
            if (start >= 0) {
                out.add(describe(key, start, last + GAP, sum, count));
            }
        }
        return out;
    }

    /**
     * Emits the events in order (key, timestamp, value), its offset in operator state; before each
     * of {@link #FAIL_AT} it waits for a checkpoint completed since this (re)start, then fails the
     * job.
     */
    static final class EventSource
            implements TestSource<Tuple3<Integer, Long, Long>>,
                    CheckpointedFunction,
                    CheckpointListener {
        private volatile boolean running = true;
        private volatile boolean checkpointCompleted;
        private long next;
        private transient ListState<Long> offset;

        @Override
        public void run(SourceContext<Tuple3<Integer, Long, Long>> ctx) throws Exception {
            while (running && next < EVENTS) {
                int f = failures.get();
                if (f < FAIL_AT.length && next == FAIL_AT[f]) {
                    while (running && !checkpointCompleted) {
                        Thread.sleep(5);
                    }
                    if (failures.compareAndSet(f, f + 1)) {
                        throw new RuntimeException("injected failure " + (f + 1) + " at " + next);
                    }
                }
                synchronized (ctx.getCheckpointLock()) {
                    if (exists(next)) {
                        ctx.collect(Tuple3.of(key(next), next * STEP, value(next)));
                    }
                    next++;
                }
                if (next % 5 == 0) {
                    Thread.sleep(1);
                }
            }
        }

        @Override
        public void cancel() {
            running = false;
        }

        @Override
        public void notifyCheckpointComplete(long checkpointId) {
            checkpointCompleted = true;
        }

        @Override
        public void snapshotState(FunctionSnapshotContext context) throws Exception {
            offset.update(List.of(next));
        }

        @Override
        public void initializeState(FunctionInitializationContext context) throws Exception {
            offset =
                    context.getOperatorStateStore()
                            .getListState(new ListStateDescriptor<>("offset", Long.class));
            for (Long o : offset.get()) {
                next = o;
            }
        }
    }

    /** For the tumbling windows' reduce: (key, timestamp, value) to (key, 1, value). */
    static final class ToCount
            implements MapFunction<Tuple3<Integer, Long, Long>, Tuple3<Integer, Long, Long>> {
        private final boolean count;

        ToCount(boolean count) {
            this.count = count;
        }

        @Override
        public Tuple3<Integer, Long, Long> map(Tuple3<Integer, Long, Long> e) {
            return count ? Tuple3.of(e.f0, 1L, e.f2) : e;
        }
    }

    /** (sum, count) of the values: the session windows' aggregating state. */
    static final class SumCount
            implements AggregateFunction<
                    Tuple3<Integer, Long, Long>, Tuple2<Long, Long>, Tuple2<Long, Long>> {
        @Override
        public Tuple2<Long, Long> createAccumulator() {
            return Tuple2.of(0L, 0L);
        }

        @Override
        public Tuple2<Long, Long> add(Tuple3<Integer, Long, Long> e, Tuple2<Long, Long> acc) {
            return Tuple2.of(acc.f0 + e.f2, acc.f1 + 1);
        }

        @Override
        public Tuple2<Long, Long> getResult(Tuple2<Long, Long> acc) {
            return acc;
        }

        @Override
        public Tuple2<Long, Long> merge(Tuple2<Long, Long> a, Tuple2<Long, Long> b) {
            return Tuple2.of(a.f0 + b.f0, a.f1 + b.f1);
        }
    }

    /**
     * Describes a window's result: the reduce's (key, count, sum) tuple or the aggregate's (sum,
     * count).
     */
    static final class Describe<T> extends ProcessWindowFunction<T, String, Integer, TimeWindow> {
        @Override
        public void process(Integer key, Context ctx, Iterable<T> results, Collector<String> out) {
            for (T r : results) {
                long sum;
                long count;
                if (r instanceof Tuple3) {
                    @SuppressWarnings("unchecked")
                    Tuple3<Integer, Long, Long> t = (Tuple3<Integer, Long, Long>) r;
                    sum = t.f2;
                    count = t.f1;
                } else {
                    @SuppressWarnings("unchecked")
                    Tuple2<Long, Long> t = (Tuple2<Long, Long>) r;
                    sum = t.f0;
                    count = t.f1;
                }
                out.collect(
                        describe(key, ctx.window().getStart(), ctx.window().getEnd(), sum, count));
            }
        }
    }
}
