package io.statebackend.benchmarks;

import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.apache.flink.runtime.state.AbstractKeyedStateBackend;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * The workload of flink-benchmarks' state benchmarks: {@code Long} keys, {@link #keyCount} keys
 * preloaded (500,000 by default) and as many new keys for the {@code *Add} cases, both in a
 * shuffled order, 8-byte values ({@code Long}, {@code Double} in maps), 2 key groups, {@code
 * VoidNamespace}; throughput in operations per millisecond. The defaults of the annotations are
 * flink-benchmarks' (3 forks, 10 warmup and 10 measured iterations of JMH's 10 s);
 * scripts/bench-flink overrides them for its short run.
 *
 * <p>One difference: flink-benchmarks picks each invocation's key and value in a
 * {@code @Setup(Level.Invocation)} method, which JMH times around every call; here the benchmark
 * method advances an index itself, so the few-hundred-nanosecond operations are not dominated by
 * the harness. Both sides of every comparison pay the same.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Fork(
        value = 3,
        jvmArgsAppend = {
            "-Xms4g",
            "-Xmx4g",
            "--add-opens=java.base/java.util=ALL-UNNAMED",
            "--add-opens=java.base/java.lang=ALL-UNNAMED"
        })
@Warmup(iterations = 10)
@Measurement(iterations = 10)
public abstract class StateBenchmarkBase {
    static final int MAP_KEY_COUNT = 10;
    static final int LIST_VALUE_COUNT = 100;
    private static final long SEED = 0x5eedL;

    @Param({"HEAP", "ROCKSDB", "NATIVE_MEMORY", "NATIVE_FS", "NATIVE_ROCKSDB"})
    public BackendType backend;

    /** Keys preloaded (and new keys for the {@code *Add} cases); flink-benchmarks: 500,000. */
    @Param({"500000"})
    public int keyCount;

    Backends backends;
    AbstractKeyedStateBackend<Long> keyed;

    /** Preloaded keys 0..keyCount-1, shuffled. */
    Long[] setupKeys;

    /** New keys keyCount..2*keyCount-1, shuffled. */
    Long[] newKeys;

    /** Values 0..2*keyCount-1, shuffled. */
    Long[] values;

    Long[] mapKeys;
    Double[] mapValues;
    final Random random = new Random(SEED);
    private int index;

    /** Creates the backend and the key and value sequences; subclasses then preload state. */
    void setUpBackend() throws Exception {
        setupKeys = shuffledLongs(0, keyCount);
        newKeys = shuffledLongs(keyCount, keyCount);
        values = shuffledLongs(0, 2 * keyCount);
        mapKeys = shuffledLongs(0, MAP_KEY_COUNT);
        mapValues = new Double[MAP_KEY_COUNT];
        for (int i = 0; i < MAP_KEY_COUNT; i++) {
            mapValues[i] = random.nextDouble();
        }
        backends = Backends.create(backend);
        keyed = backends.keyed;
        index = 0;
    }

    private Long[] shuffledLongs(long first, int count) {
        Long[] result = new Long[count];
        for (int i = 0; i < count; i++) {
            result[i] = first + i;
        }
        for (int i = count - 1; i > 0; i--) {
            int j = random.nextInt(i + 1);
            Long t = result[i];
            result[i] = result[j];
            result[j] = t;
        }
        return result;
    }

    /** The index of the next invocation's key and value. */
    final int next() {
        int i = index++;
        if (i == Integer.MAX_VALUE) {
            index = 0;
        }
        return i;
    }

    final Long setupKey(int i) {
        return setupKeys[i % setupKeys.length];
    }

    final Long newKey(int i) {
        return newKeys[i % newKeys.length];
    }

    final Long value(int i) {
        return values[i % values.length];
    }

    final Long mapKey(int i) {
        return mapKeys[i % MAP_KEY_COUNT];
    }

    final Double mapValue(int i) {
        return mapValues[i % MAP_KEY_COUNT];
    }

    @TearDown(Level.Trial)
    public void tearDown() throws Exception {
        if (backends != null) {
            backends.close();
            backends = null;
        }
    }
}
