package io.statebackend.benchmarks;

import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.runtime.state.VoidNamespace;
import org.apache.flink.runtime.state.VoidNamespaceSerializer;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Setup;

/** Value state: get, update of a preloaded key, add (update of a new key). */
public class ValueStateBenchmark extends StateBenchmarkBase {
    private ValueState<Long> valueState;

    @Setup(Level.Trial)
    public void setUp() throws Exception {
        setUpBackend();
        valueState =
                keyed.getPartitionedState(
                        VoidNamespace.INSTANCE,
                        VoidNamespaceSerializer.INSTANCE,
                        new ValueStateDescriptor<>("kvState", Long.class));
        for (int i = 0; i < keyCount; i++) {
            keyed.setCurrentKey((long) i);
            valueState.update(random.nextLong());
        }
    }

    @Benchmark
    public void valueUpdate() throws Exception {
        int i = next();
        keyed.setCurrentKey(setupKey(i));
        valueState.update(value(i));
    }

    @Benchmark
    public void valueAdd() throws Exception {
        int i = next();
        keyed.setCurrentKey(newKey(i));
        valueState.update(value(i));
    }

    @Benchmark
    public Long valueGet() throws Exception {
        int i = next();
        keyed.setCurrentKey(setupKey(i));
        return valueState.value();
    }
}
