package io.statebackend;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.statebackend.internal.NativeKeyedStateBackend;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import java.util.stream.Stream;
import org.apache.flink.api.common.functions.AggregateFunction;
import org.apache.flink.api.common.state.AggregatingState;
import org.apache.flink.api.common.state.AggregatingStateDescriptor;
import org.apache.flink.api.common.state.ListState;
import org.apache.flink.api.common.state.ListStateDescriptor;
import org.apache.flink.api.common.state.MapState;
import org.apache.flink.api.common.state.MapStateDescriptor;
import org.apache.flink.api.common.state.ReducingState;
import org.apache.flink.api.common.state.ReducingStateDescriptor;
import org.apache.flink.api.common.state.StateDescriptor;
import org.apache.flink.api.common.state.StateTtlConfig;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeutils.base.IntSerializer;
import org.apache.flink.api.common.typeutils.base.LongSerializer;
import org.apache.flink.api.common.typeutils.base.StringSerializer;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.queryablestate.client.state.serialization.KvStateSerializer;
import org.apache.flink.runtime.state.IncrementalRemoteKeyedStateHandle;
import org.apache.flink.runtime.state.KeyGroupRange;
import org.apache.flink.runtime.state.KeyGroupRangeAssignment;
import org.apache.flink.runtime.state.KeyGroupsStateHandle;
import org.apache.flink.runtime.state.KeyedStateHandle;
import org.apache.flink.runtime.state.VoidNamespace;
import org.apache.flink.runtime.state.VoidNamespaceSerializer;
import org.apache.flink.runtime.state.internal.InternalListState;
import org.apache.flink.runtime.state.internal.InternalMapState;
import org.apache.flink.runtime.state.internal.InternalReducingState;
import org.apache.flink.runtime.state.internal.InternalValueState;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/** Each state kind on each native backend, through Flink's keyed backend API. */
class NativeStateBackendTest {
    @TempDir static Path checkpoints;

    static Stream<AbstractNativeBackend> backends() {
        return Stream.of(
                new NativeMemoryBackend(),
                new NativeFsBackend(checkpoints.resolve("fs").toUri().toString()),
                new NativeRocksDBBackend(checkpoints.resolve("rocksdb").toUri().toString()));
    }

    private static final ValueStateDescriptor<Long> VALUE =
            new ValueStateDescriptor<>("value", Long.class);
    private static final ListStateDescriptor<String> LIST =
            new ListStateDescriptor<>("list", String.class);
    private static final MapStateDescriptor<String, Integer> MAP =
            new MapStateDescriptor<>("map", String.class, Integer.class);
    private static final ReducingStateDescriptor<Long> REDUCING =
            new ReducingStateDescriptor<>("reducing", Long::sum, Long.class);
    private static final AggregatingStateDescriptor<Long, long[], Double> AVERAGE =
            new AggregatingStateDescriptor<>("average", new Average(), long[].class);

    /** Average of longs; accumulator {sum, count}. */
    static final class Average implements AggregateFunction<Long, long[], Double> {
        @Override
        public long[] createAccumulator() {
            return new long[2];
        }

        @Override
        public long[] add(Long value, long[] acc) {
            return new long[] {acc[0] + value, acc[1] + 1};
        }

        @Override
        public Double getResult(long[] acc) {
            return acc[1] == 0 ? null : (double) acc[0] / acc[1];
        }

        @Override
        public long[] merge(long[] a, long[] b) {
            return new long[] {a[0] + b[0], a[1] + b[1]};
        }
    }

    private static <S extends org.apache.flink.api.common.state.State> S state(
            NativeKeyedStateBackend<Integer> keyed,
            org.apache.flink.api.common.state.StateDescriptor<S, ?> desc)
            throws Exception {
        return keyed.getPartitionedState(
                VoidNamespace.INSTANCE, VoidNamespaceSerializer.INSTANCE, desc);
    }

    /** Writes every kind for keys 0..n-1. */
    private static void fill(NativeKeyedStateBackend<Integer> keyed, int n) throws Exception {
        ValueState<Long> value = state(keyed, VALUE);
        ListState<String> list = state(keyed, LIST);
        MapState<String, Integer> map = state(keyed, MAP);
        ReducingState<Long> reducing = state(keyed, REDUCING);
        AggregatingState<Long, Double> average = state(keyed, AVERAGE);
        for (int k = 0; k < n; k++) {
            keyed.setCurrentKey(k);
            value.update((long) k * 10);
            list.add("a" + k);
            list.addAll(List.of("b" + k, "c" + k));
            map.put("x", k);
            map.put("y", null);
            reducing.add((long) k);
            reducing.add(1L);
            average.add((long) k);
            average.add((long) k + 2);
        }
    }

    /** Checks what {@link #fill} wrote, for the keys the backend owns. */
    private static void verify(NativeKeyedStateBackend<Integer> keyed, int n) throws Exception {
        ValueState<Long> value = state(keyed, VALUE);
        ListState<String> list = state(keyed, LIST);
        MapState<String, Integer> map = state(keyed, MAP);
        ReducingState<Long> reducing = state(keyed, REDUCING);
        AggregatingState<Long, Double> average = state(keyed, AVERAGE);
        for (int k = 0; k < n; k++) {
            int kg = KeyGroupRangeAssignment.assignToKeyGroup(k, BackendHarness.MAX_PARALLELISM);
            if (!keyed.getKeyGroupRange().contains(kg)) {
                continue;
            }
            keyed.setCurrentKey(k);
            assertThat(value.value()).isEqualTo(k * 10L);
            assertThat(list.get()).containsExactly("a" + k, "b" + k, "c" + k);
            assertThat(map.get("x")).isEqualTo(k);
            assertThat(map.contains("y")).isTrue();
            assertThat(map.get("y")).isNull();
            Map<String, Integer> copy = new HashMap<>();
            map.entries().forEach(e -> copy.put(e.getKey(), e.getValue()));
            assertThat(copy).containsOnlyKeys("x", "y");
            assertThat(reducing.get()).isEqualTo(k + 1L);
            assertThat(average.get()).isEqualTo(k + 1.0);
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void everyStateKind(AbstractNativeBackend backend) throws Exception {
        try (BackendHarness h = new BackendHarness(backend)) {
            NativeKeyedStateBackend<Integer> keyed = h.create();
            fill(keyed, 50);
            verify(keyed, 50);

            ValueState<Long> value = state(keyed, VALUE);
            ListState<String> list = state(keyed, LIST);
            MapState<String, Integer> map = state(keyed, MAP);
            keyed.setCurrentKey(7);
            value.clear();
            assertThat(value.value()).isNull();
            list.update(List.of("only"));
            assertThat(list.get()).containsExactly("only");
            list.update(List.of());
            assertThat(list.get()).isNull();
            map.remove("x");
            assertThat(map.contains("x")).isFalse();
            var it = map.iterator();
            it.next();
            it.remove();
            assertThat(map.isEmpty()).isTrue();
            keyed.setCurrentKey(8);
            assertThat(value.value()).isEqualTo(80L);

            // A large value makes the output buffer grow.
            String big = "z".repeat(100_000);
            list.add(big);
            assertThat(list.get()).contains(big);

            assertThat(keyed.getKeys("value", VoidNamespace.INSTANCE).count()).isEqualTo(49);
            try (Stream<Tuple2<Integer, VoidNamespace>> keys = keyed.getKeysAndNamespaces("list")) {
                assertThat(keys.map(t -> t.f0).collect(Collectors.toSet())).hasSize(49);
            }
            assertThat(keyed.numKeyValueStateEntries()).isGreaterThan(200);
            keyed.dispose();
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void mergingNamespaces(AbstractNativeBackend backend) throws Exception {
        try (BackendHarness h = new BackendHarness(backend)) {
            NativeKeyedStateBackend<Integer> keyed = h.create();
            InternalListState<Integer, String, String> list =
                    (InternalListState<Integer, String, String>)
                            keyed.getPartitionedState("w1", StringSerializer.INSTANCE, LIST);
            InternalReducingState<Integer, String, Long> sum =
                    (InternalReducingState<Integer, String, Long>)
                            keyed.getPartitionedState("w1", StringSerializer.INSTANCE, REDUCING);
            keyed.setCurrentKey(1);
            for (String w : List.of("w1", "w2", "w3")) {
                list.setCurrentNamespace(w);
                list.add(w);
                sum.setCurrentNamespace(w);
                sum.add(10L);
            }
            list.mergeNamespaces("w1", List.of("w2", "w3"));
            sum.mergeNamespaces("w1", List.of("w2", "w3"));
            list.setCurrentNamespace("w1");
            sum.setCurrentNamespace("w1");
            assertThat(list.get()).containsExactlyInAnyOrder("w1", "w2", "w3");
            assertThat(sum.get()).isEqualTo(30L);
            list.setCurrentNamespace("w2");
            sum.setCurrentNamespace("w3");
            assertThat(list.get()).isNull();
            assertThat(sum.get()).isNull();
            assertThat(keyed.getKeys("list", "w1").collect(Collectors.toList())).containsExactly(1);
            keyed.dispose();
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void snapshotAndRestore(AbstractNativeBackend backend) throws Exception {
        try (BackendHarness h = new BackendHarness(backend)) {
            NativeKeyedStateBackend<Integer> keyed = h.create();
            fill(keyed, 200);
            KeyedStateHandle handle = h.snapshot(keyed, 1);
            // RocksDB checkpoints its files, as Flink's RocksDB backend does.
            assertThat(handle)
                    .isInstanceOf(
                            backend instanceof NativeRocksDBBackend
                                    ? IncrementalRemoteKeyedStateHandle.class
                                    : KeyGroupsStateHandle.class);
            // Writes after the synchronous phase are not in the snapshot.
            keyed.setCurrentKey(0);
            state(keyed, VALUE).update(-1L);
            keyed.dispose();

            NativeKeyedStateBackend<Integer> restored =
                    h.create(
                            KeyGroupRange.of(0, BackendHarness.MAX_PARALLELISM - 1),
                            List.of(handle));
            verify(restored, 200);
            restored.dispose();
        }
    }

    /**
     * A RocksDB full checkpoint is the DB's files, unless a state has TTL's {@code
     * cleanupFullSnapshot}: then it is streamed through the state's filter, which leaves expired
     * values out.
     */
    @Test
    void rocksDBFullCheckpointsAreFilesUnlessTtlCleansThem() throws Exception {
        String uri = checkpoints.resolve("rocksdb-ttl").toUri().toString();
        try (BackendHarness h = new BackendHarness(new NativeRocksDBBackend(uri, false))) {
            NativeKeyedStateBackend<Integer> keyed = h.create();
            fill(keyed, 50);
            assertThat(h.snapshot(keyed, 1)).isInstanceOf(IncrementalRemoteKeyedStateHandle.class);
            ValueStateDescriptor<Long> ttl = new ValueStateDescriptor<>("ttl", Long.class);
            ttl.enableTimeToLive(
                    StateTtlConfig.newBuilder(Duration.ofHours(1)).cleanupFullSnapshot().build());
            keyed.setCurrentKey(1);
            state(keyed, ttl).update(7L);
            KeyedStateHandle handle = h.snapshot(keyed, 2);
            assertThat(handle).isInstanceOf(KeyGroupsStateHandle.class);
            keyed.dispose();
            NativeKeyedStateBackend<Integer> restored =
                    h.create(
                            KeyGroupRange.of(0, BackendHarness.MAX_PARALLELISM - 1),
                            List.of(handle));
            verify(restored, 50);
            restored.setCurrentKey(1);
            assertThat(state(restored, ttl).value()).isEqualTo(7L);
            restored.dispose();
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void rescaleOneToTwo(AbstractNativeBackend backend) throws Exception {
        try (BackendHarness h = new BackendHarness(backend)) {
            NativeKeyedStateBackend<Integer> keyed = h.create();
            fill(keyed, 300);
            KeyedStateHandle handle = h.snapshot(keyed, 1);
            keyed.dispose();

            Set<Integer> seen = new java.util.HashSet<>();
            for (int i = 0; i < 2; i++) {
                KeyGroupRange range =
                        KeyGroupRangeAssignment.computeKeyGroupRangeForOperatorIndex(
                                BackendHarness.MAX_PARALLELISM, 2, i);
                NativeKeyedStateBackend<Integer> part =
                        h.create(range, List.of(handle.getIntersection(range)));
                verify(part, 300);
                List<Integer> keys =
                        part.getKeys("value", VoidNamespace.INSTANCE).collect(Collectors.toList());
                for (int k : keys) {
                    assertThat(
                                    range.contains(
                                            KeyGroupRangeAssignment.assignToKeyGroup(
                                                    k, BackendHarness.MAX_PARALLELISM)))
                            .isTrue();
                }
                seen.addAll(keys);
                part.dispose();
            }
            assertThat(seen).isEqualTo(IntStream.range(0, 300).boxed().collect(Collectors.toSet()));
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void closedBackendThrowsIllegalState(AbstractNativeBackend backend) throws Exception {
        try (BackendHarness h = new BackendHarness(backend)) {
            NativeKeyedStateBackend<Integer> keyed = h.create();
            ValueState<Long> value = state(keyed, VALUE);
            keyed.setCurrentKey(1);
            value.update(1L);
            keyed.dispose();
            assertThatThrownBy(value::value)
                    .isInstanceOf(IllegalStateException.class)
                    .hasMessageContaining("closed");
            assertThatThrownBy(() -> value.update(2L)).isInstanceOf(IllegalStateException.class);
            keyed.dispose(); // idempotent
        }
    }

    /**
     * The serialized key stays in the input buffer between accesses, and the namespace after it
     * while the same namespace object is used: keys of changing lengths, namespaces switching,
     * equal but distinct namespace objects, fields outgrowing the buffers.
     */
    @ParameterizedTest
    @MethodSource("backends")
    void keysAndNamespacesOfChangingLengths(AbstractNativeBackend backend) throws Exception {
        try (BackendHarness h = new BackendHarness(backend)) {
            NativeKeyedStateBackend<String> keyed = h.create(StringSerializer.INSTANCE);
            InternalValueState<String, String, String> value =
                    keyed.createOrUpdateInternalState(
                            StringSerializer.INSTANCE,
                            new ValueStateDescriptor<>("value", StringSerializer.INSTANCE));
            InternalMapState<String, String, String, String> map =
                    keyed.createOrUpdateInternalState(
                            StringSerializer.INSTANCE,
                            new MapStateDescriptor<>(
                                    "map", StringSerializer.INSTANCE, StringSerializer.INSTANCE));
            List<String> keys = List.of("", "k", "key-" + "x".repeat(300), "kk", "k2");
            List<String> namespaces = List.of("n", "namespace-" + "y".repeat(500), "m");
            // Namespaces outer, keys inner: the namespace stays, the key changes length.
            for (String ns : namespaces) {
                value.setCurrentNamespace(ns);
                map.setCurrentNamespace(ns);
                for (String key : keys) {
                    keyed.setCurrentKey(key);
                    value.update(key + "|" + ns);
                    map.put("u", ns + "|" + key + "|" + "z".repeat(key.length() * 3));
                }
            }
            // Keys outer, namespaces inner, each namespace an equal but new object.
            for (String key : keys) {
                keyed.setCurrentKey(key);
                for (String ns : namespaces) {
                    value.setCurrentNamespace(new String(ns));
                    map.setCurrentNamespace(new String(ns));
                    assertThat(value.value()).isEqualTo(key + "|" + ns);
                    assertThat(map.get("u"))
                            .isEqualTo(ns + "|" + key + "|" + "z".repeat(key.length() * 3));
                }
            }
            keyed.setCurrentKey("absent");
            assertThat(value.value()).isNull();
            keyed.dispose();
        }
    }

    /** Map putAll and list addAll/update go in one call each; elements of any length. */
    @ParameterizedTest
    @MethodSource("backends")
    void bulkWritesInOneCall(AbstractNativeBackend backend) throws Exception {
        try (BackendHarness h = new BackendHarness(backend)) {
            NativeKeyedStateBackend<Integer> keyed = h.create();
            MapState<String, Integer> map = state(keyed, MAP);
            ListState<String> list = state(keyed, LIST);
            keyed.setCurrentKey(7);
            map.put("a", 0);
            Map<String, Integer> more = new HashMap<>();
            more.put("a", 1);
            more.put("b", null);
            more.put("c".repeat(20000), 3);
            map.putAll(more);
            map.putAll(Map.of());
            Map<String, Integer> read = new HashMap<>();
            map.entries().forEach(e -> read.put(e.getKey(), e.getValue()));
            assertThat(read).isEqualTo(more);
            // Element lengths around the one-, two- and three-byte length prefixes.
            List<String> elements = new ArrayList<>();
            for (int len : new int[] {0, 126, 127, 128, 16382, 16383, 20000, 1}) {
                elements.add("e".repeat(len));
            }
            list.addAll(elements);
            list.add("last");
            List<String> expected = new ArrayList<>(elements);
            expected.add("last");
            assertThat(list.get()).containsExactlyElementsOf(expected);
            list.update(elements.subList(2, 5));
            assertThat(list.get()).containsExactlyElementsOf(elements.subList(2, 5));
            list.update(List.of());
            assertThat(list.get()).isNull();
            keyed.dispose();
        }
    }

    /** A manual compaction (as Flink's RocksDB backend offers) keeps every state's contents. */
    @ParameterizedTest
    @MethodSource("backends")
    void compactingKeepsTheState(AbstractNativeBackend backend) throws Exception {
        try (BackendHarness h = new BackendHarness(backend)) {
            NativeKeyedStateBackend<Integer> keyed = h.create();
            fill(keyed, 300);
            for (StateDescriptor<?, ?> d : List.of(VALUE, LIST, MAP, REDUCING, AVERAGE)) {
                keyed.compactState(d);
            }
            keyed.compactState(new ValueStateDescriptor<>("never-created", Long.class));
            verify(keyed, 300);
            keyed.dispose();
        }
    }

    /** RocksDB options reach the native side; a bad value fails with its key, not a crash. */
    @Test
    void rocksDbOptionsAreAppliedAndCheckedNatively(@TempDir Path dir) throws Exception {
        String uri = dir.toUri().toString();
        NativeRocksDBBackend without =
                new NativeRocksDBBackend(uri)
                        .setRocksDBOption("state.backend.rocksdb.write-cache.size", "0");
        try (BackendHarness h = new BackendHarness(without)) {
            NativeKeyedStateBackend<Integer> keyed = h.create();
            ValueState<Long> value = state(keyed, new ValueStateDescriptor<>("v", Long.class));
            keyed.setCurrentKey(1);
            value.update(7L);
            assertThat(value.value()).isEqualTo(7L);
            keyed.dispose();
        }
        NativeRocksDBBackend bad =
                new NativeRocksDBBackend(uri)
                        .setRocksDBOption("state.backend.rocksdb.writebuffer.count", "lots");
        try (BackendHarness h = new BackendHarness(bad)) {
            assertThatThrownBy(h::create)
                    .hasStackTraceContaining("state.backend.rocksdb.writebuffer.count");
        }
    }

    /** A query registers its buffers for the call only: many queries do not run out of them. */
    @Test
    void queriesReleaseTheirBuffers() throws Exception {
        try (BackendHarness h = new BackendHarness(new NativeMemoryBackend())) {
            NativeKeyedStateBackend<Integer> keyed = h.create();
            InternalValueState<Integer, VoidNamespace, Long> value =
                    keyed.createOrUpdateInternalState(VoidNamespaceSerializer.INSTANCE, VALUE);
            keyed.setCurrentKey(1);
            value.setCurrentNamespace(VoidNamespace.INSTANCE);
            value.update(42L);
            byte[] query =
                    KvStateSerializer.serializeKeyAndNamespace(
                            1,
                            IntSerializer.INSTANCE,
                            VoidNamespace.INSTANCE,
                            VoidNamespaceSerializer.INSTANCE);
            // More than the 65,536 buffer pairs a backend can have registered at once.
            for (int i = 0; i < 70_000; i++) {
                byte[] bytes =
                        value.getSerializedValue(
                                query,
                                IntSerializer.INSTANCE,
                                VoidNamespaceSerializer.INSTANCE,
                                LongSerializer.INSTANCE);
                assertThat(KvStateSerializer.deserializeValue(bytes, LongSerializer.INSTANCE))
                        .isEqualTo(42L);
            }
            assertThat(value.value()).isEqualTo(42L);
            keyed.dispose();
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void ttlStateExpires(AbstractNativeBackend backend) throws Exception {
        try (BackendHarness h = new BackendHarness(backend)) {
            NativeKeyedStateBackend<Integer> keyed = h.create();
            ValueStateDescriptor<Long> desc = new ValueStateDescriptor<>("ttl", Long.class);
            desc.enableTimeToLive(StateTtlConfig.newBuilder(Duration.ofMillis(1)).build());
            ValueState<Long> value = state(keyed, desc);
            keyed.setCurrentKey(3);
            value.update(5L);
            Thread.sleep(20);
            assertThat(value.value()).isNull();
            keyed.dispose();
        }
    }

    @Test
    void memoryBackendDeclinesOversizedCheckpoint() throws Exception {
        try (BackendHarness h = new BackendHarness(new NativeMemoryBackend(64 * 1024))) {
            NativeKeyedStateBackend<Integer> keyed = h.create();
            ListState<String> list = state(keyed, LIST);
            List<String> chunk = new ArrayList<>();
            for (int i = 0; i < 100; i++) {
                chunk.add("x".repeat(1000));
            }
            keyed.setCurrentKey(1);
            list.addAll(chunk);
            assertThatThrownBy(() -> h.snapshot(keyed, 1))
                    .hasStackTraceContaining("over the memory backend's limit");
            keyed.dispose();
        }
    }
}
