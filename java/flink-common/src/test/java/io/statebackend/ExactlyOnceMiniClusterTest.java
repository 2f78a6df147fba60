package io.statebackend;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.stream.Stream;
import org.apache.flink.api.common.state.CheckpointListener;
import org.apache.flink.api.common.state.ListState;
import org.apache.flink.api.common.state.ListStateDescriptor;
import org.apache.flink.api.common.state.MapState;
import org.apache.flink.api.common.state.MapStateDescriptor;
import org.apache.flink.api.common.state.ReducingState;
import org.apache.flink.api.common.state.ReducingStateDescriptor;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.RestartStrategyOptions;
import org.apache.flink.runtime.state.FunctionInitializationContext;
import org.apache.flink.runtime.state.FunctionSnapshotContext;
import org.apache.flink.runtime.testutils.MiniClusterResourceConfiguration;
import org.apache.flink.streaming.api.checkpoint.CheckpointedFunction;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.apache.flink.util.Collector;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * A keyed job with value, list, map and reducing state on each native backend, checkpointing every
 * 100 ms, failing once after a checkpoint completed: its output must equal the exactly-once result.
 */
class ExactlyOnceMiniClusterTest {
    static final int EVENTS = 6000;
    private static final int KEYS = 20;

    @RegisterExtension
    static final MiniClusterExtension CLUSTER =
            new MiniClusterExtension(
                    new MiniClusterResourceConfiguration.Builder()
                            .setNumberTaskManagers(1)
                            .setNumberSlotsPerTaskManager(2)
                            .build());

    static final AtomicBoolean checkpointCompleted = new AtomicBoolean();
    static final AtomicBoolean failed = new AtomicBoolean();
    static final java.util.concurrent.atomic.AtomicInteger completedCheckpoints =
            new java.util.concurrent.atomic.AtomicInteger();
    static final Map<Integer, String> results = new ConcurrentHashMap<>();
    static final List<String> duplicates = new ArrayList<>();

    static Stream<String> backends() {
        return Stream.of("rocksdb", "rocksdb-incremental", "fs", "memory");
    }

    static AbstractNativeBackend backend(String kind, Path checkpoints) {
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

    @ParameterizedTest
    @MethodSource("backends")
    void jobRecoversExactlyOnce(String kind) throws Exception {
        // Not @TempDir: a checkpoint's file may still be written while the finished job shuts
        // down, and JUnit would fail the test on the leftover.
        Path checkpoints = java.nio.file.Files.createTempDirectory("exactly-once-");
        try {
            runJob(kind, checkpoints);
        } finally {
            org.apache.flink.util.FileUtils.deleteDirectoryQuietly(checkpoints.toFile());
        }
    }

    private void runJob(String kind, Path checkpoints) throws Exception {
        checkpointCompleted.set(false);
        failed.set(false);
        results.clear();
        duplicates.clear();
        Configuration conf = new Configuration();
        conf.set(RestartStrategyOptions.RESTART_STRATEGY, "fixed-delay");
        conf.set(RestartStrategyOptions.RESTART_STRATEGY_FIXED_DELAY_ATTEMPTS, 3);
        conf.set(RestartStrategyOptions.RESTART_STRATEGY_FIXED_DELAY_DELAY, Duration.ofMillis(100));
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(conf);
        env.setParallelism(2);
        env.setMaxParallelism(128);
        env.enableCheckpointing(100);
        TestJobs.setStateBackend(env, backend(kind, checkpoints));

        env.addSource(new CountingSource())
                .setParallelism(1)
                .keyBy(i -> (int) (i % KEYS))
                .process(new StatefulFunction())
                .addSink(new CollectSink());
        env.execute("native rocksdb exactly-once");

        assertThat(failed).as("a failure was injected").isTrue();
        assertThat(duplicates).isEmpty();
        assertThat(new TreeMap<>(results)).isEqualTo(expected());
    }

    static Map<Integer, String> expected() {
        Map<Integer, String> expected = new TreeMap<>();
        for (int key = 0; key < KEYS; key++) {
            long sum = 0;
            long max = Long.MIN_VALUE;
            int count = 0;
            Map<Integer, Integer> histogram = new TreeMap<>();
            for (long i = key; i < EVENTS; i += KEYS) {
                sum += i;
                max = Math.max(max, i);
                count++;
                histogram.merge((int) (i % 7), 1, Integer::sum);
            }
            expected.put(key, describe(key, count, sum, sum, histogram, max));
        }
        return expected;
    }

    static String describe(
            int key, int count, long sum, long listSum, Map<Integer, Integer> histogram, long max) {
        return key
                + ": count="
                + count
                + " sum="
                + sum
                + " list="
                + listSum
                + " histogram="
                + histogram
                + " max="
                + max;
    }

    /** Emits 0..EVENTS-1 slowly, its offset in operator state. */
    static final class CountingSource implements TestSource<Long>, CheckpointedFunction {
        private volatile boolean running = true;
        private long next;
        private transient ListState<Long> offset;

        @Override
        public void run(SourceContext<Long> ctx) throws Exception {
            while (running && next < EVENTS) {
                // Past the middle only once a checkpoint has completed: the failure then
                // always happens after one.
                while (running && next == EVENTS / 2 && !checkpointCompleted.get()) {
                    Thread.sleep(10);
                }
                synchronized (ctx.getCheckpointLock()) {
                    ctx.collect(next++);
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

    /** Keeps every kind of state; emits once per key when its last event arrives. */
    static final class StatefulFunction extends KeyedProcessFunction<Integer, Long, String>
            implements CheckpointListener {
        private transient ValueState<Integer> count;
        private transient ListState<Long> elements;
        private transient MapState<Integer, Integer> histogram;
        private transient ReducingState<Long> max;
        private transient ReducingState<Long> sum;

        @Override
        public void open(org.apache.flink.api.common.functions.OpenContext ctx) {
            count =
                    getRuntimeContext()
                            .getState(new ValueStateDescriptor<>("count", Integer.class));
            elements =
                    getRuntimeContext()
                            .getListState(new ListStateDescriptor<>("elements", Long.class));
            histogram =
                    getRuntimeContext()
                            .getMapState(
                                    new MapStateDescriptor<>(
                                            "histogram", Integer.class, Integer.class));
            max =
                    getRuntimeContext()
                            .getReducingState(
                                    new ReducingStateDescriptor<>("max", Math::max, Long.class));
            sum =
                    getRuntimeContext()
                            .getReducingState(
                                    new ReducingStateDescriptor<>("sum", Long::sum, Long.class));
        }

        @Override
        public void processElement(Long value, Context ctx, Collector<String> out)
                throws Exception {
            if (checkpointCompleted.get()
                    && value > EVENTS / 3
                    && value < EVENTS - 2 * KEYS
                    && failed.compareAndSet(false, true)) {
                throw new RuntimeException("injected failure at event " + value);
            }
            int n = count.value() == null ? 1 : count.value() + 1;
            count.update(n);
            elements.add(value);
            Integer h = histogram.get((int) (value % 7));
            histogram.put((int) (value % 7), h == null ? 1 : h + 1);
            max.add(value);
            sum.add(value);
            if (n == EVENTS / KEYS) {
                long listSum = 0;
                int listSize = 0;
                for (long e : elements.get()) {
                    listSum += e;
                    listSize++;
                }
                Map<Integer, Integer> hist = new TreeMap<>();
                for (Map.Entry<Integer, Integer> e : histogram.entries()) {
                    hist.put(e.getKey(), e.getValue());
                }
                out.collect(
                        describe(
                                ctx.getCurrentKey(),
                                listSize,
                                sum.get(),
                                listSum,
                                hist,
                                max.get()));
            }
        }

        @Override
        public void notifyCheckpointComplete(long checkpointId) {
            completedCheckpoints.incrementAndGet();
            checkpointCompleted.set(true);
        }
    }

    static final class CollectSink implements TestSink<String> {
        @Override
        public void invoke(String value, Context context) {
            int key = Integer.parseInt(value.substring(0, value.indexOf(':')));
            if (results.putIfAbsent(key, value) != null) {
                synchronized (duplicates) {
                    duplicates.add(value);
                }
            }
        }
    }
}
