package io.statebackend;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.RunnableFuture;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Supplier;
import java.util.stream.Stream;
import org.apache.flink.api.common.JobID;
import org.apache.flink.api.common.state.ListState;
import org.apache.flink.api.common.state.ListStateDescriptor;
import org.apache.flink.api.common.state.MapState;
import org.apache.flink.api.common.state.MapStateDescriptor;
import org.apache.flink.api.common.state.ReducingState;
import org.apache.flink.api.common.state.ReducingStateDescriptor;
import org.apache.flink.api.common.state.State;
import org.apache.flink.api.common.state.StateDescriptor;
import org.apache.flink.api.common.state.StateTtlConfig;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeutils.base.StringSerializer;
import org.apache.flink.contrib.streaming.state.EmbeddedRocksDBStateBackend;
import org.apache.flink.core.execution.SavepointFormatType;
import org.apache.flink.core.fs.CloseableRegistry;
import org.apache.flink.metrics.groups.UnregisteredMetricsGroup;
import org.apache.flink.runtime.checkpoint.CheckpointOptions;
import org.apache.flink.runtime.checkpoint.SavepointType;
import org.apache.flink.runtime.operators.testutils.MockEnvironment;
import org.apache.flink.runtime.operators.testutils.MockEnvironmentBuilder;
import org.apache.flink.runtime.state.AbstractKeyedStateBackend;
import org.apache.flink.runtime.state.CheckpointStorageAccess;
import org.apache.flink.runtime.state.CheckpointStorageLocationReference;
import org.apache.flink.runtime.state.CheckpointStreamFactory;
import org.apache.flink.runtime.state.KeyGroupRange;
import org.apache.flink.runtime.state.KeyGroupRangeAssignment;
import org.apache.flink.runtime.state.KeyGroupedInternalPriorityQueue;
import org.apache.flink.runtime.state.KeyGroupsSavepointStateHandle;
import org.apache.flink.runtime.state.KeyedStateBackendParametersImpl;
import org.apache.flink.runtime.state.KeyedStateHandle;
import org.apache.flink.runtime.state.SavepointResources;
import org.apache.flink.runtime.state.SavepointSnapshotStrategy;
import org.apache.flink.runtime.state.SnapshotResult;
import org.apache.flink.runtime.state.SnapshotStrategyRunner;
import org.apache.flink.runtime.state.StateBackend;
import org.apache.flink.runtime.state.VoidNamespace;
import org.apache.flink.runtime.state.VoidNamespaceSerializer;
import org.apache.flink.runtime.state.hashmap.HashMapStateBackend;
import org.apache.flink.runtime.state.storage.FileSystemCheckpointStorage;
import org.apache.flink.runtime.state.ttl.TtlTimeProvider;
import org.apache.flink.streaming.api.operators.TimerHeapInternalTimer;
import org.apache.flink.streaming.api.operators.TimerSerializer;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Canonical savepoints between Flink's HashMapStateBackend / EmbeddedRocksDBStateBackend and the
 * native backends, in both directions, through Flink's keyed backend API: value, list, map (in a
 * String namespace: variable-sized key and namespace; no null values, which Flink's heap backend
 * cannot write into canonical savepoints), reducing state and event-time timers; the savepoint of
 * one backend covering all key groups is restored into two backends splitting them (rescaling 1 →
 * 2).
 */
class CanonicalSavepointTest {
    private static final int MAX_PARALLELISM = 128;
    private static final int KEYS = 300;

    @TempDir static Path dir;

    private static final ValueStateDescriptor<Long> VALUE =
            new ValueStateDescriptor<>("value", Long.class);
    private static final ListStateDescriptor<String> LIST =
            new ListStateDescriptor<>("list", String.class);
    private static final MapStateDescriptor<String, Integer> MAP =
            new MapStateDescriptor<>("map", String.class, Integer.class);
    private static final ReducingStateDescriptor<Long> REDUCING =
            new ReducingStateDescriptor<>("reducing", Long::sum, Long.class);
    private static final String LONG = "x".repeat(300);
    private static final TimerSerializer<String, VoidNamespace> TIMERS =
            new TimerSerializer<>(StringSerializer.INSTANCE, VoidNamespaceSerializer.INSTANCE);

    static Map<String, Supplier<StateBackend>> backends() {
        Map<String, Supplier<StateBackend>> b = new HashMap<>();
        b.put("HashMapStateBackend", HashMapStateBackend::new);
        // Source and target share one slot's managed memory here; in a job they never do.
        // Flink's RocksDB backend takes a budget of its own, ours the slot's.
        b.put(
                "EmbeddedRocksDBStateBackend",
                () -> {
                    EmbeddedRocksDBStateBackend rocks = new EmbeddedRocksDBStateBackend();
                    rocks.getMemoryConfiguration().setUseManagedMemory(false);
                    return rocks;
                });
        b.put("NativeMemoryBackend", NativeMemoryBackend::new);
        b.put("NativeFsBackend", () -> new NativeFsBackend(dir.resolve("fs").toUri().toString()));
        b.put(
                "NativeRocksDBBackend",
                () -> new NativeRocksDBBackend(dir.resolve("rocksdb").toUri().toString()));
        return b;
    }

    static Stream<Arguments> pairs() {
        List<Arguments> pairs = new ArrayList<>();
        List<String> flink = List.of("HashMapStateBackend", "EmbeddedRocksDBStateBackend");
        List<String> ours =
                List.of("NativeMemoryBackend", "NativeFsBackend", "NativeRocksDBBackend");
        for (String f : flink) {
            for (String o : ours) {
                pairs.add(Arguments.of(f, o));
                pairs.add(Arguments.of(o, f));
            }
        }
        for (String o : ours) {
            pairs.add(Arguments.of(o, "NativeRocksDBBackend"));
        }
        pairs.add(Arguments.of("HashMapStateBackend", "HashMapStateBackend"));
        return pairs.stream();
    }

    @ParameterizedTest(name = "{0} -> {1}")
    @MethodSource("pairs")
    void savepointMovesBetweenBackends(String from, String to) throws Exception {
        Map<String, Supplier<StateBackend>> backends = backends();
        try (MockEnvironment env =
                new MockEnvironmentBuilder()
                        .setMaxParallelism(MAX_PARALLELISM)
                        .setManagedMemorySize(64 << 20)
                        .build()) {
            CheckpointStorageAccess storage =
                    new FileSystemCheckpointStorage(dir.resolve("savepoints").toUri())
                            .createCheckpointStorage(new JobID());
            storage.initializeBaseLocationsForCheckpoint();

            AbstractKeyedStateBackend<String> source =
                    create(backends.get(from).get(), env, KeyGroupRange.of(0, 127), List.of());
            KeyedStateHandle savepoint;
            try {
                fill(source);
                savepoint = savepoint(source, storage, 1);
            } finally {
                source.dispose();
            }
            assertThat(savepoint).isInstanceOf(KeyGroupsSavepointStateHandle.class);

            int seen = 0;
            for (KeyGroupRange range :
                    List.of(KeyGroupRange.of(0, 63), KeyGroupRange.of(64, 127))) {
                AbstractKeyedStateBackend<String> target =
                        create(backends.get(to).get(), env, range, List.of(clip(savepoint, range)));
                try {
                    // Back again through a canonical savepoint of the target.
                    KeyedStateHandle again = savepoint(target, storage, 2);
                    seen += check(target, range);
                    AbstractKeyedStateBackend<String> third =
                            create(backends.get(from).get(), env, range, List.of(again));
                    try {
                        check(third, range);
                    } finally {
                        third.dispose();
                    }
                } finally {
                    target.dispose();
                }
            }
            assertThat(seen).isEqualTo(KEYS);
        }
    }

    /**
     * State TTL's {@code cleanupFullSnapshot} in canonical savepoints: values, list elements and
     * map entries expired when the savepoint is taken are left out, as Flink's RocksDB backend
     * does. Read back with a clock at 0, so that the TTL layer hides nothing.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("ours")
    void ttlCleanupFullSnapshotLeavesExpiredValuesOut(String name) throws Exception {
        StateTtlConfig ttl =
                StateTtlConfig.newBuilder(Duration.ofMillis(1000)).cleanupFullSnapshot().build();
        ValueStateDescriptor<Long> valueDesc = new ValueStateDescriptor<>("tv", Long.class);
        ListStateDescriptor<String> listDesc = new ListStateDescriptor<>("tl", String.class);
        MapStateDescriptor<String, Integer> mapDesc =
                new MapStateDescriptor<>("tm", String.class, Integer.class);
        valueDesc.enableTimeToLive(ttl);
        listDesc.enableTimeToLive(ttl);
        mapDesc.enableTimeToLive(ttl);
        AtomicLong now = new AtomicLong(10_000);
        try (MockEnvironment env =
                new MockEnvironmentBuilder().setMaxParallelism(MAX_PARALLELISM).build()) {
            CheckpointStorageAccess storage =
                    new FileSystemCheckpointStorage(dir.resolve("ttl-savepoints").toUri())
                            .createCheckpointStorage(new JobID());
            storage.initializeBaseLocationsForCheckpoint();
            KeyGroupRange all = KeyGroupRange.of(0, MAX_PARALLELISM - 1);
            AbstractKeyedStateBackend<String> source =
                    create(backends().get(name).get(), env, all, List.of(), now::get);
            KeyedStateHandle savepoint;
            try {
                ValueState<Long> value = ns(source, valueDesc);
                ListState<String> list = ns(source, listDesc);
                MapState<String, Integer> map = ns(source, mapDesc);
                for (int i = 0; i < 100; i++) {
                    source.setCurrentKey(key(i));
                    value.update(1L);
                    list.add("old");
                    map.put("old", 1);
                }
                now.set(10_800);
                for (int i = 50; i < 150; i++) {
                    source.setCurrentKey(key(i));
                    value.update(2L);
                    list.add("new");
                    map.put("new", 2);
                }
                // The first writes expired at 11,000, the second ones expire at 11,800.
                now.set(11_500);
                savepoint = savepoint(source, storage, 1);
            } finally {
                source.dispose();
            }
            AbstractKeyedStateBackend<String> target =
                    create(backends().get(name).get(), env, all, List.of(savepoint), () -> 0L);
            try {
                ValueState<Long> value = ns(target, valueDesc);
                ListState<String> list = ns(target, listDesc);
                MapState<String, Integer> map = ns(target, mapDesc);
                for (int i = 0; i < 150; i++) {
                    target.setCurrentKey(key(i));
                    boolean fresh = i >= 50;
                    assertThat(value.value()).as("value of %s", i).isEqualTo(fresh ? 2L : null);
                    List<String> elements = new ArrayList<>();
                    Iterable<String> got = list.get();
                    if (got != null) {
                        got.forEach(elements::add);
                    }
                    assertThat(elements)
                            .as("list of %s", i)
                            .isEqualTo(fresh ? List.of("new") : List.of());
                    Map<String, Integer> entries = new HashMap<>();
                    map.entries().forEach(e -> entries.put(e.getKey(), e.getValue()));
                    assertThat(entries)
                            .as("map of %s", i)
                            .isEqualTo(fresh ? Map.of("new", 2) : Map.of());
                }
            } finally {
                target.dispose();
            }
        }
    }

    static Stream<String> ours() {
        return Stream.of("NativeMemoryBackend", "NativeFsBackend", "NativeRocksDBBackend");
    }

    private static <S extends State> S ns(
            AbstractKeyedStateBackend<String> backend, StateDescriptor<S, ?> desc)
            throws Exception {
        return backend.getPartitionedState(
                VoidNamespace.INSTANCE, VoidNamespaceSerializer.INSTANCE, desc);
    }

    /** What Flink's StateAssignmentOperation hands a subtask: the handle cut to its range. */
    private static KeyedStateHandle clip(KeyedStateHandle handle, KeyGroupRange range) {
        return handle.getIntersection(range);
    }

    static AbstractKeyedStateBackend<String> create(
            StateBackend backend,
            MockEnvironment env,
            KeyGroupRange range,
            Collection<KeyedStateHandle> restore)
            throws Exception {
        return create(backend, env, range, restore, TtlTimeProvider.DEFAULT);
    }

    @SuppressWarnings("unchecked")
    private static AbstractKeyedStateBackend<String> create(
            StateBackend backend,
            MockEnvironment env,
            KeyGroupRange range,
            Collection<KeyedStateHandle> restore,
            TtlTimeProvider time)
            throws Exception {
        return (AbstractKeyedStateBackend<String>)
                backend.createKeyedStateBackend(
                        new KeyedStateBackendParametersImpl<>(
                                env,
                                new JobID(),
                                "test-operator",
                                StringSerializer.INSTANCE,
                                MAX_PARALLELISM,
                                range,
                                env.getTaskKvStateRegistry(),
                                time,
                                new UnregisteredMetricsGroup(),
                                restore,
                                new CloseableRegistry()));
    }

    private static String key(int i) {
        return "key-" + i;
    }

    static void fill(AbstractKeyedStateBackend<String> backend) throws Exception {
        ValueState<Long> value =
                backend.getPartitionedState(
                        VoidNamespace.INSTANCE, VoidNamespaceSerializer.INSTANCE, VALUE);
        ListState<String> list =
                backend.getPartitionedState(
                        VoidNamespace.INSTANCE, VoidNamespaceSerializer.INSTANCE, LIST);
        MapState<String, Integer> map =
                backend.getPartitionedState("window-7", StringSerializer.INSTANCE, MAP);
        ReducingState<Long> reducing =
                backend.getPartitionedState(
                        VoidNamespace.INSTANCE, VoidNamespaceSerializer.INSTANCE, REDUCING);
        KeyGroupedInternalPriorityQueue<TimerHeapInternalTimer<String, VoidNamespace>> timers =
                backend.create("_timer_state/event_user-timers", TIMERS);
        for (int i = 0; i < KEYS; i++) {
            backend.setCurrentKey(key(i));
            value.update(i * 10L);
            list.add("a" + i);
            list.add("b" + i);
            // Over the 256 bytes of the JNI input buffer: restoring grows it.
            list.add(LONG + i);
            map.put("x", i);
            map.put("y" + i, -i);
            reducing.add((long) i);
            reducing.add(1L);
            timers.add(new TimerHeapInternalTimer<>(1000L + i, key(i), VoidNamespace.INSTANCE));
        }
    }

    /** Checks the keys of {@code range}; how many there were. */
    private static int check(AbstractKeyedStateBackend<String> backend, KeyGroupRange range)
            throws Exception {
        ValueState<Long> value =
                backend.getPartitionedState(
                        VoidNamespace.INSTANCE, VoidNamespaceSerializer.INSTANCE, VALUE);
        ListState<String> list =
                backend.getPartitionedState(
                        VoidNamespace.INSTANCE, VoidNamespaceSerializer.INSTANCE, LIST);
        MapState<String, Integer> map =
                backend.getPartitionedState("window-7", StringSerializer.INSTANCE, MAP);
        ReducingState<Long> reducing =
                backend.getPartitionedState(
                        VoidNamespace.INSTANCE, VoidNamespaceSerializer.INSTANCE, REDUCING);
        KeyGroupedInternalPriorityQueue<TimerHeapInternalTimer<String, VoidNamespace>> timers =
                backend.create("_timer_state/event_user-timers", TIMERS);
        Map<String, Long> timerByKey = new HashMap<>();
        TimerHeapInternalTimer<String, VoidNamespace> t;
        while ((t = timers.poll()) != null) {
            assertThat(timerByKey.put(t.getKey(), t.getTimestamp())).isNull();
        }
        int n = 0;
        for (int i = 0; i < KEYS; i++) {
            String k = key(i);
            int kg = KeyGroupRangeAssignment.assignToKeyGroup(k, MAX_PARALLELISM);
            if (!range.contains(kg)) {
                assertThat(timerByKey).doesNotContainKey(k);
                continue;
            }
            n++;
            backend.setCurrentKey(k);
            assertThat(value.value()).as("value of " + k + " in kg " + kg).isEqualTo(i * 10L);
            assertThat(list.get()).containsExactly("a" + i, "b" + i, LONG + i);
            Map<String, Integer> entries = new HashMap<>();
            for (Map.Entry<String, Integer> e : map.entries()) {
                entries.put(e.getKey(), e.getValue());
            }
            Map<String, Integer> expected = new HashMap<>();
            expected.put("x", i);
            expected.put("y" + i, -i);
            assertThat(entries).isEqualTo(expected);
            assertThat(reducing.get()).isEqualTo(i + 1L);
            assertThat(timerByKey.get(k)).isEqualTo(1000L + i);
        }
        assertThat(timerByKey).hasSize(n);
        // The keys are listed by the backend too.
        try (Stream<String> keys = backend.getKeys("value", VoidNamespace.INSTANCE)) {
            assertThat(keys.count()).isEqualTo(n);
        }
        return n;
    }

    static KeyedStateHandle savepoint(
            AbstractKeyedStateBackend<String> backend, CheckpointStorageAccess storage, long id)
            throws Exception {
        CheckpointStreamFactory streams =
                storage.resolveCheckpointStorageLocation(
                        id, CheckpointStorageLocationReference.getDefault());
        SavepointResources<String> resources = backend.savepoint();
        RunnableFuture<SnapshotResult<KeyedStateHandle>> future =
                new SnapshotStrategyRunner<>(
                                "canonical savepoint",
                                new SavepointSnapshotStrategy<>(resources.getSnapshotResources()),
                                new CloseableRegistry(),
                                resources.getPreferredSnapshotExecutionType())
                        .snapshot(
                                id,
                                0L,
                                streams,
                                new CheckpointOptions(
                                        SavepointType.savepoint(SavepointFormatType.CANONICAL),
                                        CheckpointStorageLocationReference.getDefault()));
        future.run();
        return future.get().getJobManagerOwnedSnapshot();
    }
}
