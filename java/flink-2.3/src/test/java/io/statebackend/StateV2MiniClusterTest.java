package io.statebackend;

import static org.assertj.core.api.Assertions.assertThat;

import java.lang.reflect.Field;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.stream.Stream;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.CheckpointListener;
import org.apache.flink.api.common.state.v2.ListState;
import org.apache.flink.api.common.state.v2.ListStateDescriptor;
import org.apache.flink.api.common.state.v2.MapState;
import org.apache.flink.api.common.state.v2.MapStateDescriptor;
import org.apache.flink.api.common.state.v2.ReducingState;
import org.apache.flink.api.common.state.v2.ReducingStateDescriptor;
import org.apache.flink.api.common.state.v2.StateFuture;
import org.apache.flink.api.common.state.v2.ValueState;
import org.apache.flink.api.common.state.v2.ValueStateDescriptor;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.RestartStrategyOptions;
import org.apache.flink.runtime.asyncprocessing.AsyncExecutionController;
import org.apache.flink.runtime.state.FunctionInitializationContext;
import org.apache.flink.runtime.state.FunctionSnapshotContext;
import org.apache.flink.runtime.state.v2.AbstractKeyedState;
import org.apache.flink.runtime.state.v2.adaptor.StateAdaptor;
import org.apache.flink.runtime.testutils.MiniClusterResourceConfiguration;
import org.apache.flink.streaming.api.checkpoint.CheckpointedFunction;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.apache.flink.util.Collector;
import org.apache.flink.util.FileUtils;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Flink 2.x's asynchronous State V2 API ({@code enableAsyncState()}, {@code
 * org.apache.flink.api.common.state.v2}) on each native backend: value, list, map and reducing
 * state through {@code asyncValue}/{@code asyncUpdate}, {@code asyncAdd}/{@code asyncGet}, {@code
 * asyncGet}/{@code asyncPut}/{@code asyncRemove}/{@code asyncContains}/{@code asyncEntries}.
 *
 * <p>The states are our asynchronous keyed backend's ({@code NativeAsyncKeyedStateBackend}):
 * Flink's request-issuing V2 states whose requests Flink's controller hands to our {@code
 * NativeStateExecutor}; the test checks that, and that the operator's keyed state store reports our
 * backend type. The job checkpoints every 100 ms and fails once after a checkpoint completed: its
 * output must equal the exactly-once result, computed here by replaying the same per-key rules on
 * plain Java collections.
 */
class StateV2MiniClusterTest {
    /** The events of the source, {@link ExactlyOnceMiniClusterTest}'s, which this job reads. */
    private static final int EVENTS = ExactlyOnceMiniClusterTest.EVENTS;

    private static final int KEYS = 20;
    private static final int RECENT = 3;

    @RegisterExtension
    static final MiniClusterExtension CLUSTER =
            new MiniClusterExtension(
                    new MiniClusterResourceConfiguration.Builder()
                            .setNumberTaskManagers(1)
                            .setNumberSlotsPerTaskManager(2)
                            .build());

    /** The source's gate: past the middle only once a checkpoint has completed. */
    private static final AtomicBoolean checkpointCompleted =
            ExactlyOnceMiniClusterTest.checkpointCompleted;

    static final AtomicBoolean failed = new AtomicBoolean();

    /** Whether the keyed function was restored from a checkpoint (after the failure). */
    static final AtomicBoolean restored = new AtomicBoolean();

    static final Map<Integer, String> results = new ConcurrentHashMap<>();
    static final List<String> duplicates = new ArrayList<>();

    /** What the keyed state store reports as its backend, from every (re)started subtask. */
    static final Set<String> backendTypes = ConcurrentHashMap.newKeySet();

    /**
     * The V2 states' classes, as "adaptor class -> adapted state class" or "state class via the
     * executor of its requests".
     */
    static final Set<String> stateClasses = ConcurrentHashMap.newKeySet();

    private static String expectedBackendType(String kind) {
        return "native-" + (kind.startsWith("rocksdb") ? "rocksdb" : kind);
    }

    static Stream<Arguments> backendsAndPaths() {
        return ExactlyOnceMiniClusterTest.backends()
                .flatMap(kind -> Stream.of(Arguments.of(kind, false), Arguments.of(kind, true)));
    }

    @ParameterizedTest(name = "{0}, own async keyed backend: {1}")
    @MethodSource("backendsAndPaths")
    void asyncStateJobRecoversExactlyOnce(String kind, boolean asyncKeyedBackend) throws Exception {
        // Not @TempDir: a checkpoint's file may still be written while the finished job shuts
        // down, and JUnit would fail the test on the leftover.
        Path checkpoints = Files.createTempDirectory("state-v2-");
        try {
            runJob(kind, asyncKeyedBackend, checkpoints);
        } finally {
            FileUtils.deleteDirectoryQuietly(checkpoints.toFile());
        }
    }

    private void runJob(String kind, boolean asyncKeyedBackend, Path checkpoints) throws Exception {
        checkpointCompleted.set(false);
        failed.set(false);
        restored.set(false);
        results.clear();
        duplicates.clear();
        backendTypes.clear();
        stateClasses.clear();
        Configuration conf = new Configuration();
        conf.set(RestartStrategyOptions.RESTART_STRATEGY, "fixed-delay");
        conf.set(RestartStrategyOptions.RESTART_STRATEGY_FIXED_DELAY_ATTEMPTS, 3);
        conf.set(RestartStrategyOptions.RESTART_STRATEGY_FIXED_DELAY_DELAY, Duration.ofMillis(100));
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(conf);
        env.setParallelism(2);
        env.setMaxParallelism(128);
        env.enableCheckpointing(100);
        TestJobs.setStateBackend(env, ExactlyOnceMiniClusterTest.backend(kind, checkpoints));
        env.configure(
                new Configuration()
                        .set(AbstractNativeBackend.ASYNC_KEYED_BACKEND, asyncKeyedBackend));

        env.addSource(new ExactlyOnceMiniClusterTest.CountingSource())
                .setParallelism(1)
                .keyBy(i -> (int) (i % KEYS))
                .enableAsyncState()
                .process(new AsyncStatefulFunction())
                .addSink(new CollectSink());
        env.execute("native state v2 exactly-once (" + kind + ")");

        assertThat(failed).as("a failure was injected").isTrue();
        assertThat(restored).as("the V2 states were restored from a checkpoint").isTrue();
        assertThat(backendTypes)
                .as("the keyed state store's backend, in every subtask and attempt")
                .containsExactly(expectedBackendType(kind));
        if (asyncKeyedBackend) {
            // Our asynchronous keyed backend ran the requests.
            assertThat(stateClasses)
                    .isNotEmpty()
                    .allSatisfy(
                            c ->
                                    assertThat(c)
                                            .doesNotStartWith(StateAdaptor.class.getPackageName())
                                            .endsWith(
                                                    " via io.statebackend.internal"
                                                            + ".NativeStateExecutor"));
        } else {
            // Flink wrapped our synchronous keyed states in its V2 adaptors.
            assertThat(stateClasses)
                    .isNotEmpty()
                    .allSatisfy(
                            c ->
                                    assertThat(c)
                                            .startsWith(StateAdaptor.class.getPackageName() + ".")
                                            .contains(" -> io.statebackend.internal.Native"));
        }
        assertThat(duplicates).isEmpty();
        assertThat(new TreeMap<>(results)).isEqualTo(expected());
    }

    /** Replays the function's rules per key on Java collections. */
    static Map<Integer, String> expected() {
        Map<Integer, String> expected = new TreeMap<>();
        for (int key = 0; key < KEYS; key++) {
            int count = 0;
            List<Long> elements = new ArrayList<>();
            Map<Integer, Integer> histogram = new TreeMap<>();
            Map<Long, Integer> marks = new TreeMap<>();
            List<Long> recent = new ArrayList<>();
            long max = Long.MIN_VALUE;
            for (long i = key; i < EVENTS; i += KEYS) {
                count++;
                elements.add(i);
                histogram.merge((int) (i % 7), 1, Integer::sum);
                marks.put(i, (int) (i % 9));
                if (i % 3 == 0) {
                    marks.remove(i - KEYS);
                }
                recent.add(i);
                if (recent.size() > RECENT) {
                    recent.remove(0);
                }
                max = Math.max(max, i);
            }
            long listSum = elements.stream().mapToLong(Long::longValue).sum();
            long marksSum = 0;
            for (Map.Entry<Long, Integer> e : marks.entrySet()) {
                marksSum += e.getKey() * e.getValue();
            }
            expected.put(
                    key,
                    describe(
                            key,
                            count,
                            elements.size(),
                            listSum,
                            histogram,
                            marks.size(),
                            marksSum,
                            recent,
                            max));
        }
        return expected;
    }

    static String describe(
            int key,
            int count,
            int listSize,
            long listSum,
            Map<Integer, Integer> histogram,
            int marks,
            long marksSum,
            List<Long> recent,
            long max) {
        return key
                + ": count="
                + count
                + " list="
                + listSize
                + "/"
                + listSum
                + " histogram="
                + histogram
                + " marks="
                + marks
                + "/"
                + marksSum
                + " recent="
                + recent
                + " max="
                + max;
    }

    /**
     * Keeps V2 value, list, map and reducing state, only through their asynchronous methods; emits
     * once per key when its last event arrives.
     */
    static final class AsyncStatefulFunction extends KeyedProcessFunction<Integer, Long, String>
            implements CheckpointedFunction, CheckpointListener {
        private transient ValueState<Integer> count;
        private transient ListState<Long> elements;
        private transient MapState<Integer, Integer> histogram;
        private transient MapState<Long, Integer> marks;
        private transient ListState<Long> recent;
        private transient ReducingState<Long> max;

        @Override
        public void initializeState(FunctionInitializationContext context) {
            // The operator's keyed state store: the one getRuntimeContext() creates states from
            // (StreamingRuntimeContext has no public getter for it in 2.3).
            backendTypes.add(context.getKeyedStateStore().getBackendTypeIdentifier());
            if (context.isRestored()) {
                restored.set(true);
            }
        }

        @Override
        public void snapshotState(FunctionSnapshotContext context) {}

        @Override
        public void open(OpenContext ctx) throws Exception {
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
            marks =
                    getRuntimeContext()
                            .getMapState(
                                    new MapStateDescriptor<>("marks", Long.class, Integer.class));
            recent =
                    getRuntimeContext()
                            .getListState(new ListStateDescriptor<>("recent", Long.class));
            max =
                    getRuntimeContext()
                            .getReducingState(
                                    new ReducingStateDescriptor<>("max", Math::max, Long.class));
            for (Object state : List.of(count, elements, histogram, marks, recent, max)) {
                stateClasses.add(describeState(state));
            }
        }

        /**
         * "adaptor class -> adapted state class", "state class via the executor of its requests",
         * or the state's class.
         */
        private static String describeState(Object state) throws ReflectiveOperationException {
            if (state instanceof StateAdaptor) {
                Field delegated = StateAdaptor.class.getDeclaredField("delegatedState");
                delegated.setAccessible(true);
                return state.getClass().getName()
                        + " -> "
                        + delegated.get(state).getClass().getName();
            }
            if (state instanceof AbstractKeyedState<?, ?, ?> keyed) {
                AsyncExecutionController<?, ?> controller =
                        (AsyncExecutionController<?, ?>) keyed.getStateRequestHandler();
                return state.getClass().getName()
                        + " via "
                        + controller.getAsyncExecutor().getClass().getName();
            }
            return state.getClass().getName();
        }

        @Override
        public void processElement(Long value, Context ctx, Collector<String> out) {
            if (checkpointCompleted.get()
                    && value > EVENTS / 3
                    && value < EVENTS - 2 * KEYS
                    && failed.compareAndSet(false, true)) {
                throw new RuntimeException("injected failure at event " + value);
            }
            int key = ctx.getCurrentKey();
            int bucket = (int) (value % 7);
            StateFuture<Integer> counted =
                    count.asyncValue()
                            .thenCompose(
                                    c -> {
                                        int n = c == null ? 1 : c + 1;
                                        return count.asyncUpdate(n).thenApply(ignored -> n);
                                    });
            StateFuture<Void> added = elements.asyncAdd(value);
            StateFuture<Void> histogrammed =
                    histogram
                            .asyncGet(bucket)
                            .thenCompose(h -> histogram.asyncPut(bucket, h == null ? 1 : h + 1));
            StateFuture<Void> marked =
                    marks.asyncPut(value, (int) (value % 9)).thenCompose(ignored -> unmark(value));
            // onNext takes a block lambda: with an expression lambda (last::add) its two
            // overloads (consumer, function to a future) are ambiguous.
            StateFuture<Void> recorded =
                    recent.asyncGet()
                            .thenCompose(
                                    it -> {
                                        List<Long> last = new ArrayList<>();
                                        return it.onNext(
                                                        (Long e) -> {
                                                            last.add(e);
                                                        })
                                                .thenCompose(
                                                        ignored -> {
                                                            last.add(value);
                                                            while (last.size() > RECENT) {
                                                                last.remove(0);
                                                            }
                                                            return recent.asyncUpdate(last);
                                                        });
                                    });
            StateFuture<Void> maxed = max.asyncAdd(value);
            counted.thenCombine(added, (n, ignored) -> n)
                    .thenCombine(histogrammed, (n, ignored) -> n)
                    .thenCombine(marked, (n, ignored) -> n)
                    .thenCombine(recorded, (n, ignored) -> n)
                    .thenCombine(maxed, (n, ignored) -> n)
                    .thenAccept(
                            n -> {
                                if (n == EVENTS / KEYS) {
                                    emit(key, n, out);
                                }
                            });
        }

        /** Removes the key's previous mark on every third value, checks the new one otherwise. */
        private StateFuture<Void> unmark(long value) {
            if (value % 3 == 0) {
                return marks.asyncRemove(value - KEYS);
            }
            return marks.asyncContains(value)
                    .thenAccept(
                            has -> {
                                if (!has) {
                                    throw new IllegalStateException("mark " + value + " lost");
                                }
                            });
        }

        /** Reads every state back asynchronously and emits the key's summary. */
        private void emit(int key, int n, Collector<String> out) {
            long[] list = new long[2];
            Map<Integer, Integer> hist = new TreeMap<>();
            long[] marked = new long[2];
            List<Long> last = new ArrayList<>();
            StateFuture<Void> listRead =
                    elements.asyncGet()
                            .thenCompose(
                                    it ->
                                            it.onNext(
                                                    e -> {
                                                        list[0]++;
                                                        list[1] += e;
                                                    }));
            StateFuture<Void> histRead =
                    histogram
                            .asyncEntries()
                            .thenCompose(
                                    it ->
                                            it.onNext(
                                                    (Map.Entry<Integer, Integer> e) -> {
                                                        hist.put(e.getKey(), e.getValue());
                                                    }));
            StateFuture<Void> marksRead =
                    marks.asyncEntries()
                            .thenCompose(
                                    it ->
                                            it.onNext(
                                                    e -> {
                                                        marked[0]++;
                                                        marked[1] += e.getKey() * e.getValue();
                                                    }));
            StateFuture<Void> recentRead =
                    recent.asyncGet()
                            .thenCompose(
                                    it ->
                                            it.onNext(
                                                    (Long e) -> {
                                                        last.add(e);
                                                    }));
            max.asyncGet()
                    .thenCombine(listRead, (m, ignored) -> m)
                    .thenCombine(histRead, (m, ignored) -> m)
                    .thenCombine(marksRead, (m, ignored) -> m)
                    .thenCombine(recentRead, (m, ignored) -> m)
                    .thenAccept(
                            m ->
                                    out.collect(
                                            describe(
                                                    key,
                                                    n,
                                                    (int) list[0],
                                                    list[1],
                                                    hist,
                                                    (int) marked[0],
                                                    marked[1],
                                                    last,
                                                    m)));
        }

        @Override
        public void notifyCheckpointComplete(long checkpointId) {
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
