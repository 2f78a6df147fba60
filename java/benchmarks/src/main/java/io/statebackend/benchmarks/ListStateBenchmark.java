package io.statebackend.benchmarks;

import io.statebackend.internal.NativeKeyedStateBackend;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import org.apache.flink.api.common.state.ListState;
import org.apache.flink.api.common.state.ListStateDescriptor;
import org.apache.flink.runtime.state.VoidNamespace;
import org.apache.flink.runtime.state.VoidNamespaceSerializer;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.infra.Blackhole;

/**
 * List state. Each iteration starts from one element under each preloaded key and ends by clearing
 * every key, as in flink-benchmarks. Flink's RocksDB backend is compacted after both, as there, and
 * so are Flink's ForSt backend (on 2.x) and ours ({@code NativeKeyedStateBackend#compactState}):
 * all start each iteration with no background compaction owed.
 */
public class ListStateBenchmark extends StateBenchmarkBase {
    private final ListStateDescriptor<Long> descriptor =
            new ListStateDescriptor<>("listState", Long.class);
    private ListState<Long> listState;
    private List<Long> hundredValues;

    @Setup(Level.Trial)
    public void setUp() throws Exception {
        setUpBackend();
        listState =
                keyed.getPartitionedState(
                        VoidNamespace.INSTANCE, VoidNamespaceSerializer.INSTANCE, descriptor);
        hundredValues = new ArrayList<>(LIST_VALUE_COUNT);
        for (int i = 0; i < LIST_VALUE_COUNT; i++) {
            hundredValues.add(random.nextLong());
        }
    }

    @Setup(Level.Iteration)
    public void setUpIteration() throws Exception {
        for (int i = 0; i < keyCount; i++) {
            keyed.setCurrentKey((long) i);
            listState.add(random.nextLong());
        }
        compactRocksDB();
    }

    @TearDown(Level.Iteration)
    public void tearDownIteration() throws Exception {
        keyed.applyToAllKeys(
                VoidNamespace.INSTANCE,
                VoidNamespaceSerializer.INSTANCE,
                descriptor,
                (key, state) -> {
                    keyed.setCurrentKey(key);
                    state.clear();
                });
        if (!compactRocksDB()) {
            System.gc();
        }
        if (backend == BackendType.ROCKSDB
                || backend == BackendType.FORST
                || backend == BackendType.NATIVE_ROCKSDB) {
            // Let background flushes and compactions settle (flink-benchmarks waits 1 s).
            Thread.sleep(1000);
        }
    }

    private boolean compactRocksDB() throws Exception {
        if (FlinkLineBackends.compact(keyed, descriptor)) {
            return true;
        }
        if (backend == BackendType.NATIVE_ROCKSDB) {
            ((NativeKeyedStateBackend<Long>) keyed).compactState(descriptor);
            return true;
        }
        return false;
    }

    @Benchmark
    public void listUpdate() throws Exception {
        int i = next();
        keyed.setCurrentKey(setupKey(i));
        listState.update(Collections.singletonList(value(i)));
    }

    @Benchmark
    public void listAdd() throws Exception {
        int i = next();
        keyed.setCurrentKey(newKey(i));
        listState.update(Collections.singletonList(value(i)));
    }

    @Benchmark
    public void listAppend() throws Exception {
        int i = next();
        keyed.setCurrentKey(setupKey(i));
        listState.add(value(i));
    }

    @Benchmark
    public Iterable<Long> listGet() throws Exception {
        keyed.setCurrentKey(setupKey(next()));
        return listState.get();
    }

    @Benchmark
    public void listGetAndIterate(Blackhole bh) throws Exception {
        keyed.setCurrentKey(setupKey(next()));
        for (Long value : listState.get()) {
            bh.consume(value);
        }
    }

    @Benchmark
    public void listAddAll() throws Exception {
        keyed.setCurrentKey(setupKey(next()));
        listState.addAll(hundredValues);
    }
}
