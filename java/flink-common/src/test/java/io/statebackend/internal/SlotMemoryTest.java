package io.statebackend.internal;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.statebackend.NativeRocksDBBackend;
import java.nio.file.Path;
import java.util.Collections;
import org.apache.flink.api.common.JobID;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeutils.base.LongSerializer;
import org.apache.flink.core.fs.CloseableRegistry;
import org.apache.flink.metrics.groups.UnregisteredMetricsGroup;
import org.apache.flink.runtime.io.disk.iomanager.IOManagerAsync;
import org.apache.flink.runtime.operators.testutils.MockEnvironment;
import org.apache.flink.runtime.operators.testutils.MockEnvironmentBuilder;
import org.apache.flink.runtime.state.KeyGroupRange;
import org.apache.flink.runtime.state.KeyedStateBackendParametersImpl;
import org.apache.flink.runtime.state.VoidNamespace;
import org.apache.flink.runtime.state.VoidNamespaceSerializer;
import org.apache.flink.runtime.state.ttl.TtlTimeProvider;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Where a NativeRocksDBBackend keyed backend takes its memory from: the slot's managed memory by
 * default, shared by the backends of one slot (one memory manager, as for the operators of a slot);
 * {@code memory.fixed-per-slot}; a budget of its own with {@code memory.managed: false}; and the
 * errors for a budget too small for the write cache and for malformed ratios.
 */
class SlotMemoryTest {
    private static final long MIB = 1 << 20;

    @TempDir Path dir;

    private MockEnvironment slot(long managedBytes) throws Exception {
        return new MockEnvironmentBuilder()
                .setManagedMemorySize(managedBytes)
                .setIOManager(new IOManagerAsync(dir.toString()))
                .build();
    }

    private NativeKeyedStateBackend<Long> keyed(
            NativeRocksDBBackend backend, MockEnvironment env, double fraction) throws Exception {
        return (NativeKeyedStateBackend<Long>)
                backend.createKeyedStateBackend(
                        new KeyedStateBackendParametersImpl<>(
                                env,
                                new JobID(),
                                "op-" + fraction,
                                LongSerializer.INSTANCE,
                                128,
                                new KeyGroupRange(0, 127),
                                env.getTaskKvStateRegistry(),
                                TtlTimeProvider.DEFAULT,
                                new UnregisteredMetricsGroup(),
                                null,
                                Collections.emptyList(),
                                new CloseableRegistry(),
                                fraction));
    }

    private NativeRocksDBBackend backend() {
        return new NativeRocksDBBackend(dir.resolve("checkpoints").toUri().toString());
    }

    /** Writes a value, so the budget is in use. */
    private static void write(NativeKeyedStateBackend<Long> keyed) throws Exception {
        ValueState<Long> state =
                keyed.getPartitionedState(
                        VoidNamespace.INSTANCE,
                        VoidNamespaceSerializer.INSTANCE,
                        new ValueStateDescriptor<>("v", LongSerializer.INSTANCE));
        keyed.setCurrentKey(1L);
        state.update(7L);
        assertThat(state.value()).isEqualTo(7L);
    }

    @Test
    void twoOperatorsOfASlotShareItsManagedMemory() throws Exception {
        try (MockEnvironment env = slot(256 * MIB)) {
            NativeKeyedStateBackend<Long> first = keyed(backend(), env, 0.5);
            NativeKeyedStateBackend<Long> second = keyed(backend(), env, 0.5);
            write(first);
            write(second);
            long id = first.memory().nativeId();
            assertThat(id).isNotZero().isEqualTo(second.memory().nativeId());
            long[] stats = NativeBridge.sharedMemoryStats(id);
            // [total, RocksDB, write caches, backends sharing them, block cache usage]
            assertThat(stats[0]).isEqualTo(128 * MIB);
            assertThat(stats[1]).isEqualTo(64 * MIB);
            assertThat(stats[2]).isEqualTo(64 * MIB);
            assertThat(stats[3]).isEqualTo(2);
            first.dispose();
            assertThat(NativeBridge.sharedMemoryStats(id)[3]).isEqualTo(1);
            second.dispose();
            // The slot's last backend gone, Flink frees the budget.
            assertThatThrownBy(() -> NativeBridge.sharedMemoryStats(id))
                    .isInstanceOf(IllegalStateException.class)
                    .hasMessageContaining("released");
        }
    }

    @Test
    void fixedPerSlotIsSharedAndUnmanagedIsTheBackendsOwn() throws Exception {
        try (MockEnvironment env = slot(256 * MIB)) {
            NativeRocksDBBackend fixed = backend();
            fixed.setRocksDBOption("state.backend.rocksdb.memory.fixed-per-slot", "96 mb");
            fixed.setRocksDBOption("state.backend.rocksdb.memory.write-cache-ratio", "0.25");
            NativeKeyedStateBackend<Long> a = keyed(fixed, env, 1.0);
            NativeKeyedStateBackend<Long> b = keyed(fixed, env, 1.0);
            write(a);
            write(b);
            assertThat(a.memory().nativeId()).isEqualTo(b.memory().nativeId());
            long[] stats = NativeBridge.sharedMemoryStats(a.memory().nativeId());
            assertThat(stats[0]).isEqualTo(96 * MIB);
            assertThat(stats[2]).isEqualTo(24 * MIB);
            assertThat(stats[3]).isEqualTo(2);

            NativeRocksDBBackend own = backend();
            own.setRocksDBOption("state.backend.rocksdb.memory.managed", "false");
            NativeKeyedStateBackend<Long> c = keyed(own, env, 1.0);
            write(c);
            assertThat(c.memory().nativeId()).isZero();
            a.dispose();
            b.dispose();
            c.dispose();
        }
    }

    @Test
    void aBudgetTooSmallForTheWriteCacheIsAClearError() throws Exception {
        try (MockEnvironment env = slot(6 * MIB)) {
            assertThatThrownBy(() -> keyed(backend(), env, 1.0))
                    .hasMessageContaining("state.backend.rocksdb.memory.write-cache-ratio")
                    .hasMessageContaining("managed memory");
            // Without the write cache the same budget works.
            NativeRocksDBBackend noCache = backend();
            noCache.setRocksDBOption("state.backend.rocksdb.memory.write-cache-ratio", "0");
            NativeKeyedStateBackend<Long> keyed = keyed(noCache, env, 1.0);
            write(keyed);
            assertThat(NativeBridge.sharedMemoryStats(keyed.memory().nativeId())[3]).isZero();
            keyed.dispose();
        }
    }

    @Test
    void malformedMemoryOptionsAreNamed() throws Exception {
        try (MockEnvironment env = slot(64 * MIB)) {
            NativeRocksDBBackend ratio = backend();
            ratio.setRocksDBOption("state.backend.rocksdb.memory.write-cache-ratio", "1.5");
            assertThatThrownBy(() -> keyed(ratio, env, 1.0))
                    .hasMessageContaining("state.backend.rocksdb.memory.write-cache-ratio")
                    .hasMessageContaining("1.5");
            NativeRocksDBBackend managed = backend();
            managed.setRocksDBOption("state.backend.rocksdb.memory.managed", "maybe");
            assertThatThrownBy(() -> keyed(managed, env, 1.0))
                    .hasMessageContaining("state.backend.rocksdb.memory.managed");
            NativeRocksDBBackend fixed = backend();
            fixed.setRocksDBOption("state.backend.rocksdb.memory.fixed-per-slot", "lots");
            assertThatThrownBy(() -> keyed(fixed, env, 1.0))
                    .hasMessageContaining("state.backend.rocksdb.memory.fixed-per-slot")
                    .hasMessageContaining("lots");
            assertThatThrownBy(() -> keyed(backend(), env, 0.0))
                    .hasMessageContaining("managed memory fraction 0.0")
                    .hasMessageContaining("state.backend.rocksdb.memory.fixed-per-slot");
        }
    }
}
