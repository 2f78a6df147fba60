package io.statebackend.benchmarks;

import java.util.HashMap;
import java.util.Iterator;
import java.util.Map;
import org.apache.flink.api.common.state.MapState;
import org.apache.flink.api.common.state.MapStateDescriptor;
import org.apache.flink.runtime.state.VoidNamespace;
import org.apache.flink.runtime.state.VoidNamespaceSerializer;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.infra.Blackhole;

/**
 * Map state, 10 user keys ({@code Long}) with {@code Double} values under each preloaded key. The
 * iterating benchmarks count one operation per entry.
 */
public class MapStateBenchmark extends StateBenchmarkBase {
    private MapState<Long, Double> mapState;
    private Map<Long, Double> tenEntries;

    @Setup(Level.Trial)
    public void setUp() throws Exception {
        setUpBackend();
        mapState =
                keyed.getPartitionedState(
                        VoidNamespace.INSTANCE,
                        VoidNamespaceSerializer.INSTANCE,
                        new MapStateDescriptor<>("mapState", Long.class, Double.class));
        tenEntries = new HashMap<>(MAP_KEY_COUNT);
        for (int i = 0; i < MAP_KEY_COUNT; i++) {
            tenEntries.put(mapKeys[i], random.nextDouble());
        }
        for (int i = 0; i < keyCount; i++) {
            keyed.setCurrentKey((long) i);
            for (int j = 0; j < MAP_KEY_COUNT; j++) {
                mapState.put(mapKeys[j], random.nextDouble());
            }
        }
    }

    @Benchmark
    public void mapUpdate() throws Exception {
        int i = next();
        keyed.setCurrentKey(setupKey(i));
        mapState.put(mapKey(i), mapValue(i));
    }

    @Benchmark
    public void mapAdd() throws Exception {
        int i = next();
        keyed.setCurrentKey(newKey(i));
        mapState.put(mapKey(i), mapValue(i));
    }

    @Benchmark
    public Double mapGet() throws Exception {
        int i = next();
        keyed.setCurrentKey(setupKey(i));
        return mapState.get(mapKey(i));
    }

    @Benchmark
    public boolean mapContains() throws Exception {
        int i = next();
        keyed.setCurrentKey(setupKey(i));
        // Half the probes miss (user keys 10..18 do not exist), as in flink-benchmarks.
        return mapState.contains(mapKey(i) << 1);
    }

    @Benchmark
    public boolean mapIsEmpty() throws Exception {
        keyed.setCurrentKey(setupKey(next()));
        return mapState.isEmpty();
    }

    @Benchmark
    @OperationsPerInvocation(MAP_KEY_COUNT)
    public void mapKeys(Blackhole bh) throws Exception {
        keyed.setCurrentKey(setupKey(next()));
        for (Long key : mapState.keys()) {
            bh.consume(key);
        }
    }

    @Benchmark
    @OperationsPerInvocation(MAP_KEY_COUNT)
    public void mapValues(Blackhole bh) throws Exception {
        keyed.setCurrentKey(setupKey(next()));
        for (Double value : mapState.values()) {
            bh.consume(value);
        }
    }

    @Benchmark
    @OperationsPerInvocation(MAP_KEY_COUNT)
    public void mapEntries(Blackhole bh) throws Exception {
        keyed.setCurrentKey(setupKey(next()));
        Iterable<Map.Entry<Long, Double>> entries = mapState.entries();
        if (entries != null) {
            for (Map.Entry<Long, Double> entry : entries) {
                bh.consume(entry.getKey());
                bh.consume(entry.getValue());
            }
        }
    }

    @Benchmark
    @OperationsPerInvocation(MAP_KEY_COUNT)
    public void mapIterator(Blackhole bh) throws Exception {
        keyed.setCurrentKey(setupKey(next()));
        Iterator<Map.Entry<Long, Double>> iterator = mapState.iterator();
        while (iterator.hasNext()) {
            Map.Entry<Long, Double> entry = iterator.next();
            bh.consume(entry.getKey());
            bh.consume(entry.getValue());
        }
    }

    @Benchmark
    public void mapRemove() throws Exception {
        int i = next();
        keyed.setCurrentKey(setupKey(i));
        mapState.remove(mapKey(i));
    }

    @Benchmark
    public void mapPutAll() throws Exception {
        keyed.setCurrentKey(setupKey(next()));
        mapState.putAll(tenEntries);
    }
}
