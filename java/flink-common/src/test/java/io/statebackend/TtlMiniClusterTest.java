package io.statebackend;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Stream;
import org.apache.flink.api.common.state.CheckpointListener;
import org.apache.flink.api.common.state.ListState;
import org.apache.flink.api.common.state.ListStateDescriptor;
import org.apache.flink.api.common.state.MapState;
import org.apache.flink.api.common.state.MapStateDescriptor;
import org.apache.flink.api.common.state.StateTtlConfig;
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
import org.apache.flink.util.FileUtils;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * State TTL end to end on each native backend: a keyed job writes value, list and map state with a
 * processing-time TTL of 2 s for every key, keeps refreshing the even keys (the value by reading
 * it: {@code OnReadAndWrite}; the list and the map by writing them: {@code OnCreateAndWrite}) for 5
 * s while the odd keys are left alone, fails once in the middle (restoring from a checkpoint, so
 * the TTL timestamps must survive the restore), then reads every key. The odd keys must read as
 * expired (no value, empty list and map: {@code NeverReturnExpired}), the even keys as alive.
 * Checkpoints every 200 ms, with {@code cleanupFullSnapshot}.
 */
class TtlMiniClusterTest {
    private static final int KEYS = 20;
    private static final Duration TTL = Duration.ofSeconds(2);
    private static final long REFRESH_MILLIS = 200;
    private static final int REFRESH_ROUNDS = 25;

    /** Event kinds, encoded as {@code kind * KEYS + key}. */
    private static final int WRITE = 0;

    private static final int REFRESH = 1;
    private static final int READ = 2;

    /** Offsets of the event sequence: writes, refresh rounds (even keys), reads. */
    private static final long WRITES_END = KEYS;

    private static final long REFRESH_END = WRITES_END + (long) REFRESH_ROUNDS * (KEYS / 2);
    private static final long EVENTS = REFRESH_END + KEYS;

    @RegisterExtension
    static final MiniClusterExtension CLUSTER =
            new MiniClusterExtension(
                    new MiniClusterResourceConfiguration.Builder()
                            .setNumberTaskManagers(1)
                            .setNumberSlotsPerTaskManager(2)
                            .build());

    /** The highest source offset contained in a completed checkpoint. */
    static final AtomicLong checkpointedOffset = new AtomicLong(-1);

    static final AtomicBoolean failed = new AtomicBoolean();
    static final Map<Integer, String> results = new ConcurrentHashMap<>();

    static Stream<String> backends() {
        return Stream.of("rocksdb", "fs", "memory");
    }

    private static AbstractNativeBackend backend(String kind, Path checkpoints) {
        switch (kind) {
            case "rocksdb":
                return new NativeRocksDBBackend(checkpoints.toUri().toString());
            case "fs":
                return new NativeFsBackend(checkpoints.toUri().toString());
            default:
                return new NativeMemoryBackend();
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void expiredStateIsGoneAndRefreshedStateStaysAcrossARestore(String kind) throws Exception {
        // Not @TempDir: Flink may still discard a checkpoint while the job shuts down.
        Path checkpoints = Files.createTempDirectory("ttl-");
        try {
            runJob(kind, checkpoints);
        } finally {
            FileUtils.deleteDirectoryQuietly(checkpoints.toFile());
        }
    }

    private void runJob(String kind, Path checkpoints) throws Exception {
        checkpointedOffset.set(-1);
        failed.set(false);
        results.clear();
        Configuration conf = new Configuration();
        conf.set(RestartStrategyOptions.RESTART_STRATEGY, "fixed-delay");
        conf.set(RestartStrategyOptions.RESTART_STRATEGY_FIXED_DELAY_ATTEMPTS, 3);
        conf.set(RestartStrategyOptions.RESTART_STRATEGY_FIXED_DELAY_DELAY, Duration.ofMillis(100));
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(conf);
        env.setParallelism(2);
        env.setMaxParallelism(128);
        env.enableCheckpointing(200);
        TestJobs.setStateBackend(env, backend(kind, checkpoints));

        env.addSource(new PhasedSource())
                .setParallelism(1)
                .keyBy(e -> (int) (e % KEYS))
                .process(new TtlFunction())
                .addSink(new CollectSink());
        env.execute("native ttl " + kind);

        assertThat(failed).as("a failure was injected").isTrue();
        Map<Integer, String> expected = new TreeMap<>();
        for (int key = 0; key < KEYS; key++) {
            expected.put(
                    key,
                    key % 2 == 0
                            ? key + ": value=v" + key + " list=[" + key + "] map={" + key + "=1}"
                            : key + ": value=null list=[] map={}");
        }
        assertThat(new TreeMap<>(results)).isEqualTo(expected);
    }

    /**
     * Writes every key, then (once a checkpoint holds all writes) refreshes the even keys every 200
     * ms for 5 s, then reads every key. Its offset is in operator state.
     */
    static final class PhasedSource
            implements TestSource<Long>, CheckpointedFunction, CheckpointListener {
        private volatile boolean running = true;
        private long next;
        private transient ListState<Long> offset;
        private final Map<Long, Long> offsetsByCheckpoint = new ConcurrentHashMap<>();

        @Override
        public void run(SourceContext<Long> ctx) throws Exception {
            while (running && next < EVENTS) {
                long event;
                if (next < WRITES_END) {
                    event = WRITE * KEYS + next;
                } else if (next < REFRESH_END) {
                    long i = next - WRITES_END;
                    if (i % (KEYS / 2) == 0) {
                        // A refresh round starts: only once the writes are checkpointed (the
                        // failure must restore them), then every REFRESH_MILLIS.
                        while (running && checkpointedOffset.get() < WRITES_END) {
                            Thread.sleep(10);
                        }
                        Thread.sleep(REFRESH_MILLIS);
                    }
                    event = REFRESH * KEYS + 2 * (i % (KEYS / 2));
                } else {
                    event = READ * KEYS + (next - REFRESH_END);
                }
                synchronized (ctx.getCheckpointLock()) {
                    ctx.collect(event);
                    next++;
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
            offsetsByCheckpoint.put(context.getCheckpointId(), next);
        }

        @Override
        public void notifyCheckpointComplete(long checkpointId) {
            Long done = offsetsByCheckpoint.remove(checkpointId);
            if (done != null) {
                checkpointedOffset.accumulateAndGet(done, Math::max);
            }
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

    /** Value, list and map state with a 2 s TTL. */
    static final class TtlFunction extends KeyedProcessFunction<Integer, Long, String> {
        private transient ValueState<String> value;
        private transient ListState<Integer> list;
        private transient MapState<Integer, Integer> map;

        private static StateTtlConfig ttl(StateTtlConfig.UpdateType update) {
            return StateTtlConfig.newBuilder(TTL)
                    .setUpdateType(update)
                    .setStateVisibility(StateTtlConfig.StateVisibility.NeverReturnExpired)
                    .cleanupFullSnapshot()
                    .build();
        }

        @Override
        public void open(org.apache.flink.api.common.functions.OpenContext ctx) {
            ValueStateDescriptor<String> v = new ValueStateDescriptor<>("value", String.class);
            v.enableTimeToLive(ttl(StateTtlConfig.UpdateType.OnReadAndWrite));
            value = getRuntimeContext().getState(v);
            ListStateDescriptor<Integer> l = new ListStateDescriptor<>("list", Integer.class);
            l.enableTimeToLive(ttl(StateTtlConfig.UpdateType.OnCreateAndWrite));
            list = getRuntimeContext().getListState(l);
            MapStateDescriptor<Integer, Integer> m =
                    new MapStateDescriptor<>("map", Integer.class, Integer.class);
            m.enableTimeToLive(ttl(StateTtlConfig.UpdateType.OnCreateAndWrite));
            map = getRuntimeContext().getMapState(m);
        }

        @Override
        public void processElement(Long event, Context ctx, Collector<String> out)
                throws Exception {
            int key = ctx.getCurrentKey();
            int kind = (int) (event / KEYS);
            switch (kind) {
                case WRITE:
                    value.update("v" + key);
                    list.add(key);
                    map.put(key, 1);
                    break;
                case REFRESH:
                    if (checkpointedOffset.get() >= WRITES_END
                            && key == 4
                            && failed.compareAndSet(false, true)) {
                        throw new RuntimeException("injected failure while refreshing");
                    }
                    value.value(); // OnReadAndWrite: a read refreshes the value
                    list.update(List.of(key)); // OnCreateAndWrite: writes refresh
                    map.put(key, 1);
                    break;
                default:
                    Map<Integer, Integer> entries = new TreeMap<>();
                    for (Map.Entry<Integer, Integer> e : map.entries()) {
                        entries.put(e.getKey(), e.getValue());
                    }
                    List<Integer> elements = new java.util.ArrayList<>();
                    Iterable<Integer> stored = list.get();
                    if (stored != null) {
                        stored.forEach(elements::add);
                    }
                    out.collect(
                            key
                                    + ": value="
                                    + value.value()
                                    + " list="
                                    + elements
                                    + " map="
                                    + entries);
            }
        }
    }

    static final class CollectSink implements TestSink<String> {
        @Override
        public void invoke(String value, Context context) {
            int key = Integer.parseInt(value.substring(0, value.indexOf(':')));
            results.put(key, value);
        }
    }
}
