package io.statebackend;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.statebackend.internal.NativeKeyedStateBackend;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Random;
import java.util.TreeSet;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeutils.base.IntSerializer;
import org.apache.flink.runtime.state.KeyGroupRange;
import org.apache.flink.runtime.state.KeyGroupRangeAssignment;
import org.apache.flink.runtime.state.KeyGroupedInternalPriorityQueue;
import org.apache.flink.runtime.state.KeyedStateHandle;
import org.apache.flink.runtime.state.VoidNamespace;
import org.apache.flink.runtime.state.VoidNamespaceSerializer;
import org.apache.flink.streaming.api.operators.TimerHeapInternalTimer;
import org.apache.flink.streaming.api.operators.TimerSerializer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Timers in native sorted sets (NativeRocksDBBackend, {@code timer-service.factory: ROCKSDB})
 * against a model: enough timers per key group that the heap cache of each key group's smallest
 * timers is refilled many times, polls and removals between additions, a small write-back cache so
 * that the timers' changes are still landing in RocksDB while they are read, then a checkpoint
 * restored into two backends (rescaling) and, with {@code HEAP}, into Flink's heap queues.
 */
class NativeTimerQueueTest {
    private static final TimerSerializer<Integer, VoidNamespace> TIMERS =
            new TimerSerializer<>(IntSerializer.INSTANCE, VoidNamespaceSerializer.INSTANCE);
    private static final String QUEUE = "_timer_state/event_user-timers";
    private static final int KEYS = 3_000;
    private static final int OPERATIONS = 150_000;

    /** The model's order: the timers' serialized order (timestamp, key, namespace). */
    private static final Comparator<TimerHeapInternalTimer<Integer, VoidNamespace>> ORDER =
            Comparator.<TimerHeapInternalTimer<Integer, VoidNamespace>>comparingLong(
                            TimerHeapInternalTimer::getTimestamp)
                    .thenComparing(TimerHeapInternalTimer::getKey);

    @TempDir Path dir;

    private NativeRocksDBBackend backend(boolean incremental, String factory) {
        return new NativeRocksDBBackend(dir.resolve("checkpoints").toUri().toString(), incremental)
                .setRocksDBOption("state.backend.rocksdb.timer-service.factory", factory)
                .setRocksDBOption("state.backend.rocksdb.write-cache.size", "1 mb")
                .setRocksDBOption("state.backend.rocksdb.write-cache.dirty-size", "64 kb")
                .setRocksDBOption("state.backend.rocksdb.memory.managed", "false");
    }

    @Test
    void anUnknownTimerServiceFailsTheBackendNamingTheKey() throws Exception {
        try (BackendHarness harness = new BackendHarness(backend(false, "FORST"))) {
            assertThatThrownBy(harness::create)
                    .hasMessageContaining("state.backend.rocksdb.timer-service.factory")
                    .hasMessageContaining("FORST")
                    .hasMessageContaining("expected HEAP or ROCKSDB");
        }
    }

    @Test
    void aKeyValueStateIsNotATimerQueue() throws Exception {
        try (BackendHarness harness = new BackendHarness(backend(false, "ROCKSDB"))) {
            NativeKeyedStateBackend<Integer> keyed = harness.create();
            try {
                keyed.getPartitionedState(
                        VoidNamespace.INSTANCE,
                        VoidNamespaceSerializer.INSTANCE,
                        new ValueStateDescriptor<>("taken", Long.class));
                assertThatThrownBy(() -> keyed.create("taken", TIMERS))
                        .hasMessageContaining("'taken' is a key/value state, not a timer queue");
            } finally {
                keyed.dispose();
            }
        }
    }

    private static TimerHeapInternalTimer<Integer, VoidNamespace> timer(long timestamp, int key) {
        return new TimerHeapInternalTimer<>(timestamp, key, VoidNamespace.INSTANCE);
    }

    @ParameterizedTest(name = "incremental = {0}")
    @ValueSource(booleans = {false, true})
    void matchesAModelThroughCheckpointsAndRescaling(boolean incremental) throws Exception {
        TreeSet<TimerHeapInternalTimer<Integer, VoidNamespace>> model = new TreeSet<>(ORDER);
        KeyedStateHandle checkpoint;
        List<TimerHeapInternalTimer<Integer, VoidNamespace>> atCheckpoint;
        try (BackendHarness harness = new BackendHarness(backend(incremental, "ROCKSDB"))) {
            NativeKeyedStateBackend<Integer> keyed = harness.create();
            try {
                KeyGroupedInternalPriorityQueue<TimerHeapInternalTimer<Integer, VoidNamespace>>
                        queue = keyed.create(QUEUE, TIMERS);
                Random random = new Random(42);
                for (int i = 0; i < OPERATIONS; i++) {
                    int op = random.nextInt(10);
                    if (op < 6) {
                        // Timestamps drift upwards, as event time does; some land below the
                        // smallest cached ones.
                        long ts = i / 10 + random.nextInt(2_000);
                        var t = timer(ts, random.nextInt(KEYS));
                        boolean headBefore =
                                !model.isEmpty() && ORDER.compare(t, model.first()) >= 0;
                        queue.add(t);
                        model.add(t);
                        if (headBefore) {
                            assertThat(queue.peek().getTimestamp())
                                    .isEqualTo(model.first().getTimestamp());
                        }
                    } else if (op < 8) {
                        var polled = queue.poll();
                        if (model.isEmpty()) {
                            assertThat(polled).isNull();
                        } else {
                            assertThat(polled.getTimestamp())
                                    .isEqualTo(model.first().getTimestamp());
                            assertThat(model.remove(polled)).as("polled %s", polled).isTrue();
                        }
                    } else if (op < 9 && !model.isEmpty()) {
                        var t = timer(i / 10 + random.nextInt(2_000), random.nextInt(KEYS));
                        var present = model.ceiling(t);
                        if (present != null) {
                            queue.remove(present);
                            model.remove(present);
                        }
                    } else {
                        var head = queue.peek();
                        assertThat(head == null ? null : head.getTimestamp())
                                .isEqualTo(model.isEmpty() ? null : model.first().getTimestamp());
                    }
                    if (i == OPERATIONS / 3) {
                        assertThat(queue.size()).isEqualTo(model.size());
                    }
                }
                assertThat(queue.size()).isEqualTo(model.size());
                checkpoint = harness.snapshot(keyed, 1);
                atCheckpoint = new ArrayList<>(model);
                // After the checkpoint: must not show in the restored backends.
                while (queue.poll() != null) {}
                queue.add(timer(-1, 7));
            } finally {
                keyed.dispose();
            }

            // Rescaled 1 -> 2: each half gets the timers of its key groups, in order.
            List<TimerHeapInternalTimer<Integer, VoidNamespace>> restored = new ArrayList<>();
            for (KeyGroupRange range :
                    List.of(KeyGroupRange.of(0, 63), KeyGroupRange.of(64, 127))) {
                NativeKeyedStateBackend<Integer> half = harness.create(range, List.of(checkpoint));
                try {
                    var queue = half.create(QUEUE, TIMERS);
                    long last = Long.MIN_VALUE;
                    for (var t = queue.poll(); t != null; t = queue.poll()) {
                        assertThat(t.getTimestamp()).isGreaterThanOrEqualTo(last);
                        last = t.getTimestamp();
                        int kg =
                                KeyGroupRangeAssignment.assignToKeyGroup(
                                        t.getKey(), BackendHarness.MAX_PARALLELISM);
                        assertThat(range.contains(kg)).isTrue();
                        restored.add(t);
                    }
                } finally {
                    half.dispose();
                }
            }
            restored.sort(ORDER);
            assertThat(restored).hasSize(atCheckpoint.size()).isEqualTo(atCheckpoint);
            assertThat(atCheckpoint.size()).isGreaterThan(10 * 128);
        }

        // The same checkpoint with heap timers: the native timers move into Flink's heap queue.
        try (BackendHarness harness = new BackendHarness(backend(incremental, "HEAP"))) {
            NativeKeyedStateBackend<Integer> keyed =
                    harness.create(
                            KeyGroupRange.of(0, BackendHarness.MAX_PARALLELISM - 1),
                            List.of(checkpoint));
            try {
                var queue = keyed.create(QUEUE, TIMERS);
                assertThat(queue.getClass().getSimpleName()).isEqualTo("HeapPriorityQueueSet");
                List<TimerHeapInternalTimer<Integer, VoidNamespace>> moved = new ArrayList<>();
                for (var t = queue.poll(); t != null; t = queue.poll()) {
                    moved.add(t);
                }
                moved.sort(ORDER);
                assertThat(moved).isEqualTo(atCheckpoint);
            } finally {
                keyed.dispose();
            }
        }
    }
}
