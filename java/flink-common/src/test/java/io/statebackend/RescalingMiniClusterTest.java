package io.statebackend;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.IntFunction;
import java.util.stream.Stream;
import org.apache.flink.api.common.JobID;
import org.apache.flink.api.common.state.ListState;
import org.apache.flink.api.common.state.ListStateDescriptor;
import org.apache.flink.api.common.state.MapState;
import org.apache.flink.api.common.state.MapStateDescriptor;
import org.apache.flink.api.common.state.ReducingState;
import org.apache.flink.api.common.state.ReducingStateDescriptor;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.client.program.ClusterClient;
import org.apache.flink.contrib.streaming.state.EmbeddedRocksDBStateBackend;
import org.apache.flink.core.execution.SavepointFormatType;
import org.apache.flink.runtime.jobgraph.JobGraph;
import org.apache.flink.runtime.jobgraph.SavepointRestoreSettings;
import org.apache.flink.runtime.jobmaster.JobResult;
import org.apache.flink.runtime.state.FunctionInitializationContext;
import org.apache.flink.runtime.state.FunctionSnapshotContext;
import org.apache.flink.runtime.state.StateBackend;
import org.apache.flink.runtime.state.hashmap.HashMapStateBackend;
import org.apache.flink.runtime.testutils.MiniClusterResourceConfiguration;
import org.apache.flink.streaming.api.checkpoint.CheckpointedFunction;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.test.junit5.InjectClusterClient;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.apache.flink.util.Collector;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Rescaling through savepoints on each native backend: a keyed job with value, list, map and
 * reducing state runs at parallelism 2, is stopped with a canonical savepoint, resumed at
 * parallelism 3, stopped with a native savepoint, and resumed at parallelism 1, where it finishes;
 * every key's state must have carried over exactly through both rescalings. The same between
 * Flink's own backends and ours, through canonical savepoints.
 */
class RescalingMiniClusterTest {
    private static final int KEYS = 40;
    private static final long[] PHASE_END = {1200, 2400, 3600};
    private static final int[] PARALLELISM = {2, 3, 1};
    private static final SavepointFormatType[] FORMAT = {
        SavepointFormatType.CANONICAL, SavepointFormatType.NATIVE
    };

    @RegisterExtension
    static final MiniClusterExtension CLUSTER =
            new MiniClusterExtension(
                    new MiniClusterResourceConfiguration.Builder()
                            .setNumberTaskManagers(1)
                            .setNumberSlotsPerTaskManager(4)
                            .build());

    static final AtomicLong processed = new AtomicLong();
    static final Map<Integer, String> results = new ConcurrentHashMap<>();
    static final List<String> duplicates = new ArrayList<>();

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
    void stateCarriesOverRescaling(String kind, @InjectClusterClient ClusterClient<?> client)
            throws Exception {
        inTempDirectory(
                dir ->
                        run(
                                phase -> backend(kind, dir.resolve("checkpoints")),
                                FORMAT,
                                dir,
                                client));
    }

    /**
     * A job moves from Flink's own backend to NativeRocksDBBackend and back, rescaling each time,
     * through canonical savepoints.
     */
    @ParameterizedTest
    @ValueSource(strings = {"HashMapStateBackend", "EmbeddedRocksDBStateBackend"})
    void stateMovesToAndFromFlinksBackends(
            String flink, @InjectClusterClient ClusterClient<?> client) throws Exception {
        inTempDirectory(
                dir ->
                        run(
                                phase ->
                                        phase == 1
                                                ? backend("rocksdb", dir.resolve("checkpoints"))
                                                : flink.equals("HashMapStateBackend")
                                                        ? new HashMapStateBackend()
                                                        : new EmbeddedRocksDBStateBackend(),
                                new SavepointFormatType[] {
                                    SavepointFormatType.CANONICAL, SavepointFormatType.CANONICAL
                                },
                                dir,
                                client));
    }

    private interface InDirectory {
        void run(Path dir) throws Exception;
    }

    private static void inTempDirectory(InDirectory body) throws Exception {
        Path dir = Files.createTempDirectory("rescaling-");
        try {
            body.run(dir);
        } finally {
            org.apache.flink.util.FileUtils.deleteDirectoryQuietly(dir.toFile());
        }
    }

    /**
     * Runs the phases, phase i on {@code backends.apply(i)}, stopped with savepoints of {@code
     * formats[i]}.
     */
    private void run(
            IntFunction<StateBackend> backends,
            SavepointFormatType[] formats,
            Path dir,
            ClusterClient<?> client)
            throws Exception {
        results.clear();
        duplicates.clear();
        String savepoint = null;
        for (int phase = 0; phase < PHASE_END.length; phase++) {
            processed.set(0);
            StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
            env.setParallelism(PARALLELISM[phase]);
            env.setMaxParallelism(128);
            TestJobs.setStateBackend(env, backends.apply(phase));
            boolean last = phase == PHASE_END.length - 1;
            env.addSource(new PhaseSource(PHASE_END[phase], last))
                    .uid("source")
                    .setParallelism(1)
                    .keyBy(i -> (int) (i % KEYS))
                    .process(new KeyedStateFunction())
                    .uid("state")
                    .addSink(new ResultSink())
                    .uid("sink")
                    .setParallelism(1);
            JobGraph job = env.getStreamGraph().getJobGraph();
            if (savepoint != null) {
                job.setSavepointRestoreSettings(SavepointRestoreSettings.forPath(savepoint, false));
            }
            JobID id = client.submitJob(job).get(30, TimeUnit.SECONDS);
            long events = PHASE_END[phase] - (phase == 0 ? 0 : PHASE_END[phase - 1]);
            if (last) {
                JobResult result = client.requestJobResult(id).get(60, TimeUnit.SECONDS);
                assertThat(result.getSerializedThrowable()).isEmpty();
                assertThat(processed.get()).isEqualTo(events);
            } else {
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
                while (processed.get() < events && System.nanoTime() < deadline) {
                    Thread.sleep(10);
                }
                assertThat(processed.get()).as("events of phase " + phase).isEqualTo(events);
                savepoint =
                        client.stopWithSavepoint(
                                        id,
                                        false,
                                        dir.resolve("savepoints").toUri().toString(),
                                        formats[phase])
                                .get(60, TimeUnit.SECONDS);
                client.requestJobResult(id).get(60, TimeUnit.SECONDS);
            }
        }
        assertThat(duplicates).isEmpty();
        assertThat(new TreeMap<>(results)).isEqualTo(expected());
    }

    static Map<Integer, String> expected() {
        Map<Integer, String> expected = new TreeMap<>();
        for (int key = 0; key < KEYS; key++) {
            List<Long> elements = new ArrayList<>();
            Map<Integer, Long> buckets = new TreeMap<>();
            long sum = 0;
            for (long i = key; i < PHASE_END[PHASE_END.length - 1]; i += KEYS) {
                elements.add(i);
                buckets.merge((int) (i % 5), i, Long::sum);
                sum += i;
            }
            expected.put(key, describe(key, elements.size(), elements, buckets, sum));
        }
        return expected;
    }

    static String describe(
            int key, long count, List<Long> elements, Map<Integer, Long> buckets, long sum) {
        return key
                + ": count="
                + count
                + " elements="
                + elements
                + " buckets="
                + buckets
                + " sum="
                + sum;
    }

    /**
     * Emits its offset up to {@code end}, then idles until stopped (or, in the last phase,
     * finishes); the offset is in operator state.
     */
    static final class PhaseSource implements TestSource<Long>, CheckpointedFunction {
        private final long end;
        private final boolean finish;
        private volatile boolean running = true;
        private long next;
        private transient ListState<Long> offset;

        PhaseSource(long end, boolean finish) {
            this.end = end;
            this.finish = finish;
        }

        @Override
        public void run(SourceContext<Long> ctx) throws Exception {
            while (running && next < end) {
                synchronized (ctx.getCheckpointLock()) {
                    ctx.collect(next++);
                }
            }
            while (running && !finish) {
                Thread.sleep(10);
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

    /** Value, list, map and reducing state per key; emits a key's state at its last event. */
    static final class KeyedStateFunction extends KeyedProcessFunction<Integer, Long, String> {
        private transient ValueState<Long> count;
        private transient ListState<Long> elements;
        private transient MapState<Integer, Long> buckets;
        private transient ReducingState<Long> sum;

        @Override
        public void open(org.apache.flink.api.common.functions.OpenContext ctx) {
            count = getRuntimeContext().getState(new ValueStateDescriptor<>("count", Long.class));
            elements =
                    getRuntimeContext()
                            .getListState(new ListStateDescriptor<>("elements", Long.class));
            buckets =
                    getRuntimeContext()
                            .getMapState(
                                    new MapStateDescriptor<>("buckets", Integer.class, Long.class));
            sum =
                    getRuntimeContext()
                            .getReducingState(
                                    new ReducingStateDescriptor<>("sum", Long::sum, Long.class));
        }

        @Override
        public void processElement(Long value, Context ctx, Collector<String> out)
                throws Exception {
            long n = count.value() == null ? 1 : count.value() + 1;
            count.update(n);
            elements.add(value);
            Long b = buckets.get((int) (value % 5));
            buckets.put((int) (value % 5), b == null ? value : b + value);
            sum.add(value);
            if (value >= PHASE_END[PHASE_END.length - 1] - KEYS) {
                List<Long> all = new ArrayList<>();
                elements.get().forEach(all::add);
                Map<Integer, Long> map = new TreeMap<>();
                for (Map.Entry<Integer, Long> e : buckets.entries()) {
                    map.put(e.getKey(), e.getValue());
                }
                out.collect(describe(ctx.getCurrentKey(), n, all, map, sum.get()));
            }
            processed.incrementAndGet();
        }
    }

    static final class ResultSink implements TestSink<String> {
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
