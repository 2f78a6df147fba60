package io.statebackend.benchmarks;

import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.apache.flink.api.common.state.ListState;
import org.apache.flink.api.common.state.ListStateDescriptor;
import org.apache.flink.api.common.state.MapState;
import org.apache.flink.api.common.state.MapStateDescriptor;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeutils.base.LongSerializer;
import org.apache.flink.api.common.typeutils.base.array.BytePrimitiveArraySerializer;
import org.apache.flink.runtime.state.AbstractKeyedStateBackend;
import org.apache.flink.runtime.state.VoidNamespace;
import org.apache.flink.runtime.state.VoidNamespaceSerializer;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;
import org.openjdk.jmh.runner.Runner;
import org.openjdk.jmh.runner.options.CommandLineOptions;

/**
 * Keyed state far larger than the backend's native memory budget (issue 19: "larger-than-memory" at
 * "equal memory"), Flink's EmbeddedRocksDBStateBackend ({@link BackendType#ROCKSDB}) against ours
 * ({@link BackendType#NATIVE_ROCKSDB}).
 *
 * <p>The state: {@link #stateMiB} MiB of {@code byte[]} values of {@link #valueSize} bytes
 * (incompressible: a xorshift sequence per value, so compression cannot shrink it below the
 * budget), under {@code Long} keys 0..n-1, 2 key groups, {@code VoidNamespace}; loaded once, in
 * ascending key order, before the first trial. Each operation picks a key ({@link #distribution}:
 * {@code uniform}, or {@code zipf}: Zipf-distributed ranks with exponent 0.99 scattered over the
 * key space by a fixed permutation) and then, by {@link #workload} (Flink's V1 state API):
 *
 * <ul>
 *   <li>{@code value}: {@code ValueState<byte[]>}, one value per key; reads the key's value,
 *       changes 8 bytes of it and writes it back.
 *   <li>{@code map}: {@code MapState<Long, byte[]>} with {@link #userKeys} user keys 0..u-1 per key
 *       (so n = stateMiB / (userKeys * valueSize)); reads the value of a uniformly random user key
 *       of the key, changes 8 bytes of it and puts it back (get + put).
 *   <li>{@code list}: {@code ListState<byte[]>} with {@link #listLength} elements per key after the
 *       load (appended one by one; n = stateMiB / (listLength * valueSize)); 15 of 16 operations
 *       append one new element of valueSize bytes to the key's list, every 16th reads the key's
 *       whole list instead (iterates it, touches every element and checks the count against the
 *       appends so far). Appends grow the state during the trials (by about valueSize * 15/16 bytes
 *       per operation), and the lists of hot keys under {@code zipf} grow long: intended, the
 *       report shows the disk size and {@code maxListLength}.
 * </ul>
 *
 * <p>Memory ({@link #budget}, {@link #writeCacheRatio}): {@code default} runs each backend as
 * {@link Backends#create(BackendType)} does (managed memory off: Flink's RocksDB with its default
 * options, ours with its own 256 MiB RocksDB budget and 256 MiB write cache); a size such as {@code
 * 256mb} gives both backends {@code state.backend.rocksdb.memory.fixed-per-slot} of that size, the
 * one total budget for block cache, memtables and (ours) the write-back cache, of which ours gives
 * {@code state.backend.rocksdb.memory.write-cache-ratio} to the write cache ({@code default}: 0.5;
 * {@code 0}: no write cache). {@link #options}: further {@code state.backend.rocksdb.*} options,
 * {@code key=value} separated by {@code ;} (keys without the prefix), or {@code none}.
 *
 * <p>Besides the throughput, each trial prints one line {@code LARGE {json}}: the load time, the
 * files' size on disk after the load and at the end, the resident memory (VmRSS, and RssAnon's
 * growth over the process before the backend existed: native memory when the heap is committed and
 * touched up front, {@code -Xms} = {@code -Xmx} and {@code -XX:+AlwaysPreTouch}) after the load and
 * at the end of every iteration (the largest), VmHWM, and the bytes this process read from and
 * wrote to the block device (/proc/self/io) per operation, and {@code bytesUpdatedPerOp}, the bytes
 * of state an operation writes on average (value, map: valueSize; list: valueSize * 15/16), against
 * which the device writes per operation are the write amplification. scripts/bench-flink ({@code
 * BENCH_PARTS=large}) runs one JVM per workload, backend, budget and value size, both distributions
 * in it.
 *
 * <p>The state is loaded once per JVM: trials whose workload (with its user keys or list length),
 * backend, memory, options, value size and state size are those of the previous trial reuse its
 * state (the distributions run one after the other on it; with {@code list}, on lists grown by the
 * trials before). The last one is closed and its files deleted by {@link #main} (which runs JMH in
 * this JVM and then exits) or, in forked JVMs, by a shutdown hook.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Fork(
        value = 1,
        jvmArgsAppend = {
            "-Xms1g",
            "-Xmx1g",
            "-XX:+AlwaysPreTouch",
            "--add-opens=java.base/java.util=ALL-UNNAMED",
            "--add-opens=java.base/java.lang=ALL-UNNAMED"
        })
@Warmup(iterations = 1, time = 10)
@Measurement(iterations = 3, time = 5)
public class LargeStateBenchmark {
    private static final long MIB = 1L << 20;
    static final double ZIPF_EXPONENT = 0.99;

    /** A prime larger than any key count: rank r is key (r * SCATTER) mod n, a permutation. */
    private static final long SCATTER = 1_000_000_007L;

    /** list: every LIST_READ_EVERY-th operation reads the whole list, the others append. */
    private static final int LIST_READ_EVERY = 16;

    @Param({"ROCKSDB", "NATIVE_ROCKSDB"})
    public BackendType backend;

    /** {@code default}, or the total native budget of each backend (fixed-per-slot). */
    @Param({"256mb"})
    public String budget;

    /** Ours, with a budget: the write cache's share of it; {@code default}: the backend's. */
    @Param({"default"})
    public String writeCacheRatio;

    /** Further {@code state.backend.rocksdb.*} options ({@code key=value;...}), or none. */
    @Param({"none"})
    public String options;

    @Param({"1024", "100"})
    public int valueSize;

    /** Bytes of values in the state, in MiB: 10× the 256 MiB budget. */
    @Param({"2560"})
    public int stateMiB;

    @Param({"uniform", "zipf"})
    public String distribution;

    /** {@code value}, {@code map} or {@code list}: see the class comment. */
    @Param({"value"})
    public String workload;

    /** map: user keys per key. */
    @Param({"64"})
    public int userKeys;

    /** list: elements per key after the load. */
    @Param({"16"})
    public int listLength;

    /** The loaded state, kept for the next trial on the same state. */
    private static Loaded loaded;

    private static boolean hooked;

    private Loaded state;
    private KeySource keys;
    private SplittableRandom userKeyRandom;
    private long ops;
    private long touched;
    private Io ioStart;
    private long maxRssAnon;
    private long maxVmRss;

    public static void main(String[] args) throws Exception {
        int status = 0;
        try {
            new Runner(new CommandLineOptions(args)).run();
        } catch (Exception e) {
            e.printStackTrace();
            status = 1;
        } finally {
            closeLoaded();
        }
        // Flink's and RocksDB's threads must not keep the JVM alive.
        System.exit(status);
    }

    private static synchronized void closeLoaded() throws Exception {
        if (loaded != null) {
            Loaded last = loaded;
            loaded = null;
            last.backends.close();
        }
    }

    @Setup(Level.Trial)
    public void setUp() throws Exception {
        Map<String, String> rocksOptions = rocksDBOptions();
        Workload kind = Workload.parse(workload);
        int perKey = kind.valuesPerKey(this);
        if (perKey < 1) {
            throw new IllegalArgumentException(kind + ": values per key must be positive");
        }
        long n = stateMiB * MIB / ((long) perKey * valueSize);
        if (n > Integer.MAX_VALUE || n < 1) {
            throw new IllegalArgumentException("keys out of range: " + n);
        }
        String identity =
                String.format(
                        Locale.ROOT,
                        "%s|%d|%s|%s|%d|%d|%s",
                        kind,
                        perKey,
                        backend,
                        rocksOptions,
                        valueSize,
                        stateMiB,
                        budget);
        synchronized (LargeStateBenchmark.class) {
            if (loaded != null && !loaded.identity.equals(identity)) {
                closeLoaded();
            }
            if (loaded == null) {
                if (!hooked) {
                    hooked = true;
                    Runtime.getRuntime()
                            .addShutdownHook(
                                    new Thread(
                                            () -> {
                                                try {
                                                    closeLoaded();
                                                } catch (Exception e) {
                                                    e.printStackTrace();
                                                }
                                            }));
                }
                loaded =
                        Loaded.load(
                                identity, kind, perKey, backend, rocksOptions, (int) n, valueSize);
            } else {
                loaded.reused = true;
            }
            state = loaded;
        }
        switch (distribution) {
            case "uniform":
                keys = new Uniform(state.keys, 0x5eedL);
                break;
            case "zipf":
                keys = new Zipf(state.keys, ZIPF_EXPONENT, 0x5eedL);
                break;
            default:
                throw new IllegalArgumentException(
                        "distribution: uniform or zipf, got " + distribution);
        }
        // Its own sequence: the key sequence is that of the value workload.
        userKeyRandom = new SplittableRandom(0x05e7L);
        ops = 0;
        touched = 0;
        maxRssAnon = 0;
        maxVmRss = 0;
        ioStart = Io.read();
    }

    /** The {@code state.backend.rocksdb.*} options of this trial's budget and options. */
    private Map<String, String> rocksDBOptions() {
        return rocksDBOptions(backend, budget, writeCacheRatio, options);
    }

    /**
     * The {@code state.backend.rocksdb.*} options of a budget ({@code default} or a size: {@code
     * memory.fixed-per-slot}), ours' write-cache ratio and further {@code key=value;...} options.
     */
    static Map<String, String> rocksDBOptions(
            BackendType backend, String budget, String writeCacheRatio, String options) {
        Map<String, String> result = new LinkedHashMap<>();
        String prefix = "state.backend.rocksdb.";
        if (!budget.equals("default")) {
            result.put(prefix + "memory.fixed-per-slot", budget);
        }
        if (!writeCacheRatio.equals("default")) {
            if (backend != BackendType.NATIVE_ROCKSDB || budget.equals("default")) {
                throw new IllegalArgumentException(
                        "writeCacheRatio applies to NATIVE_ROCKSDB with a budget only");
            }
            result.put(prefix + "memory.write-cache-ratio", writeCacheRatio);
        }
        if (!options.equals("none")) {
            for (String option : options.split(";")) {
                String[] kv = option.split("=", 2);
                if (kv.length != 2) {
                    throw new IllegalArgumentException(
                            "options: expected key=value, got " + option);
                }
                result.put(prefix + kv[0].trim(), kv[1].trim());
            }
        }
        return result;
    }

    /** One operation of the workload (the name is the value workload's, kept for the results). */
    @Benchmark
    public void readModifyWrite() throws Exception {
        long key = keys.next();
        state.keyed.setCurrentKey(key);
        ++ops;
        switch (state.workload) {
            case VALUE:
                {
                    byte[] value = state.values.value();
                    if (value == null || value.length != valueSize) {
                        throw new IllegalStateException(backend + ": no value of key " + key);
                    }
                    change(value);
                    state.values.update(value);
                    break;
                }
            case MAP:
                {
                    Long userKey = (long) userKeyRandom.nextInt(state.perKey);
                    byte[] value = state.maps.get(userKey);
                    if (value == null || value.length != valueSize) {
                        throw new IllegalStateException(
                                backend + ": no value of key " + key + ", user key " + userKey);
                    }
                    change(value);
                    state.maps.put(userKey, value);
                    break;
                }
            case LIST:
                if (ops % LIST_READ_EVERY == 0) {
                    readList((int) key);
                } else {
                    // A new array each time: the backend may keep the one it is given.
                    state.lists.add(CheckpointBenchmark.fill(new byte[valueSize], key, (int) ops));
                    state.appended[(int) key]++;
                }
                break;
            default:
                throw new AssertionError(state.workload);
        }
    }

    /** Changes 8 bytes of {@code value}, a different place and pattern each operation. */
    private void change(byte[] value) {
        long change = ops * 0x9E3779B97F4A7C15L;
        int at = (int) ((ops & 0x7fffffff) % (valueSize - 7));
        for (int b = 0; b < 8; b++) {
            value[at + b] ^= (byte) (change >>> (8 * b));
        }
    }

    /** Iterates the current key's list, touching every element; its length must be exact. */
    private void readList(int key) throws Exception {
        Iterable<byte[]> elements = state.lists.get();
        long count = 0;
        if (elements != null) {
            for (byte[] element : elements) {
                if (element.length != valueSize) {
                    throw new IllegalStateException(
                            backend + ": element of " + element.length + " bytes, key " + key);
                }
                touched += element[0] ^ element[element.length - 1];
                count++;
            }
        }
        long expected = (long) state.perKey + state.appended[key];
        if (count != expected) {
            throw new IllegalStateException(
                    backend + ": key " + key + " has " + count + " elements, not " + expected);
        }
    }

    @TearDown(Level.Iteration)
    public void sampleMemory() throws IOException {
        Status status = Status.read();
        maxRssAnon = Math.max(maxRssAnon, status.rssAnon);
        maxVmRss = Math.max(maxVmRss, status.vmRss);
    }

    @TearDown(Level.Trial)
    public void report() throws IOException {
        Io io = Io.read();
        Status status = Status.read();
        StringBuilder json = new StringBuilder("{");
        field(json, "backend", backend.toString());
        field(json, "budget", budget);
        field(json, "writeCacheRatio", writeCacheRatio);
        field(json, "options", options);
        field(json, "valueSize", valueSize);
        field(json, "stateMiB", stateMiB);
        field(json, "distribution", distribution);
        field(json, "workload", workload);
        switch (state.workload) {
            case MAP:
                field(json, "userKeys", state.perKey);
                break;
            case LIST:
                field(json, "listLength", state.perKey);
                field(json, "maxListLength", state.perKey + max(state.appended));
                break;
            default:
                break;
        }
        field(json, "keys", state.keys);
        field(json, "reusedState", state.reused);
        field(json, "loadSeconds", state.loadSeconds);
        field(json, "diskMiBAfterLoad", state.diskAfterLoad / (double) MIB);
        field(json, "diskMiB", directoryBytes(state.backends.root()) / (double) MIB);
        field(json, "baselineRssMiB", state.baseline.vmRss / (double) MIB);
        field(json, "rssMiBAfterLoad", state.afterLoad.vmRss / (double) MIB);
        field(
                json,
                "nativeMiBAfterLoad",
                (state.afterLoad.rssAnon - state.baseline.rssAnon) / (double) MIB);
        field(json, "rssMiB", maxVmRss / (double) MIB);
        field(json, "nativeMiB", (maxRssAnon - state.baseline.rssAnon) / (double) MIB);
        field(json, "rssMiBEnd", status.vmRss / (double) MIB);
        field(json, "hwmMiB", status.vmHwm / (double) MIB);
        field(json, "ops", ops);
        field(json, "loadWriteMiB", state.loadWriteBytes / (double) MIB);
        field(
                json,
                "readBytesPerOp",
                ops == 0 ? 0 : (io.readBytes - ioStart.readBytes) / (double) ops);
        field(
                json,
                "writeBytesPerOp",
                ops == 0 ? 0 : (io.writeBytes - ioStart.writeBytes) / (double) ops);
        field(json, "bytesUpdatedPerOp", state.workload.bytesUpdatedPerOp(valueSize));
        json.setLength(json.length() - 1);
        json.append('}');
        System.out.println();
        System.out.println("LARGE " + json);
    }

    private static int max(int[] values) {
        int max = 0;
        for (int v : values) {
            max = Math.max(max, v);
        }
        return max;
    }

    private static void field(StringBuilder json, String name, Object value) {
        json.append('"').append(name).append("\":");
        if (value instanceof String) {
            json.append('"').append(value).append('"');
        } else if (value instanceof Double) {
            json.append(String.format(Locale.ROOT, "%.3f", (Double) value));
        } else {
            json.append(value);
        }
        json.append(',');
    }

    /** The kind of state and its operation. */
    private enum Workload {
        VALUE,
        MAP,
        LIST;

        static Workload parse(String name) {
            switch (name) {
                case "value":
                    return VALUE;
                case "map":
                    return MAP;
                case "list":
                    return LIST;
                default:
                    throw new IllegalArgumentException("workload: value, map or list, got " + name);
            }
        }

        /** Values (map entries, list elements) per key after the load. */
        int valuesPerKey(LargeStateBenchmark params) {
            switch (this) {
                case MAP:
                    return params.userKeys;
                case LIST:
                    return params.listLength;
                default:
                    return 1;
            }
        }

        /** Bytes of state one operation writes on average: list reads write nothing. */
        double bytesUpdatedPerOp(int valueSize) {
            return this == LIST
                    ? valueSize * (LIST_READ_EVERY - 1) / (double) LIST_READ_EVERY
                    : valueSize;
        }
    }

    /** One loaded backend and its state. */
    private static final class Loaded {
        final String identity;
        final Workload workload;
        final int perKey;
        final Backends backends;
        final AbstractKeyedStateBackend<Long> keyed;
        final int keys;
        ValueState<byte[]> values;
        MapState<Long, byte[]> maps;
        ListState<byte[]> lists;

        /** list: elements appended to each key since the load. */
        int[] appended;

        Status baseline;
        Status afterLoad;
        double loadSeconds;
        long diskAfterLoad;
        long loadWriteBytes;
        boolean reused;

        private Loaded(
                String identity, Workload workload, int perKey, Backends backends, int keys) {
            this.identity = identity;
            this.workload = workload;
            this.perKey = perKey;
            this.backends = backends;
            this.keyed = backends.keyed;
            this.keys = keys;
        }

        static Loaded load(
                String identity,
                Workload workload,
                int perKey,
                BackendType type,
                Map<String, String> options,
                int keys,
                int valueSize)
                throws Exception {
            Status baseline = baseline();
            Backends backends = Backends.createRocksDB(type, options);
            Loaded loaded;
            try {
                loaded = new Loaded(identity, workload, perKey, backends, keys);
                switch (workload) {
                    case VALUE:
                        loaded.values =
                                backends.keyed.getPartitionedState(
                                        VoidNamespace.INSTANCE,
                                        VoidNamespaceSerializer.INSTANCE,
                                        new ValueStateDescriptor<>(
                                                "values", BytePrimitiveArraySerializer.INSTANCE));
                        break;
                    case MAP:
                        loaded.maps =
                                backends.keyed.getPartitionedState(
                                        VoidNamespace.INSTANCE,
                                        VoidNamespaceSerializer.INSTANCE,
                                        new MapStateDescriptor<>(
                                                "maps",
                                                LongSerializer.INSTANCE,
                                                BytePrimitiveArraySerializer.INSTANCE));
                        break;
                    case LIST:
                        loaded.lists =
                                backends.keyed.getPartitionedState(
                                        VoidNamespace.INSTANCE,
                                        VoidNamespaceSerializer.INSTANCE,
                                        new ListStateDescriptor<>(
                                                "lists", BytePrimitiveArraySerializer.INSTANCE));
                        loaded.appended = new int[keys];
                        break;
                    default:
                        throw new AssertionError(workload);
                }
            } catch (Exception | Error e) {
                backends.close();
                throw e;
            }
            loaded.baseline = baseline;
            System.out.printf(
                    Locale.ROOT,
                    "%nloading %,d keys, %d %d-byte values each, %s state (%s, %s) under %s%n",
                    keys,
                    perKey,
                    valueSize,
                    workload,
                    type,
                    options,
                    backends.root());
            Io io0 = Io.read();
            long t0 = System.nanoTime();
            for (int k = 0; k < keys; k++) {
                loaded.keyed.setCurrentKey((long) k);
                switch (workload) {
                    case VALUE:
                        loaded.values.update(CheckpointBenchmark.fill(new byte[valueSize], k, 0));
                        break;
                    case MAP:
                        for (int u = 0; u < perKey; u++) {
                            loaded.maps.put(
                                    (long) u,
                                    CheckpointBenchmark.fill(
                                            new byte[valueSize], (long) k * perKey + u, 0));
                        }
                        break;
                    default:
                        for (int e = 0; e < perKey; e++) {
                            loaded.lists.add(
                                    CheckpointBenchmark.fill(
                                            new byte[valueSize], (long) k * perKey + e, 0));
                        }
                        break;
                }
            }
            loaded.loadSeconds = (System.nanoTime() - t0) / 1e9;
            loaded.loadWriteBytes = Io.read().writeBytes - io0.writeBytes;
            loaded.afterLoad = Status.read();
            loaded.diskAfterLoad = directoryBytes(backends.root());
            System.out.printf(
                    Locale.ROOT,
                    "loaded in %.1f s: %.0f MiB on disk, VmRSS %.0f MiB%n",
                    loaded.loadSeconds,
                    loaded.diskAfterLoad / (double) MIB,
                    loaded.afterLoad.vmRss / (double) MIB);
            return loaded;
        }

        /** The process before the backend exists, the heap collected. */
        private static Status baseline() throws Exception {
            for (int i = 0; i < 3; i++) {
                System.gc();
                Thread.sleep(100);
            }
            return Status.read();
        }
    }

    /** The key of each operation (LargeStateJobBenchmark's job draws its keys with these too). */
    interface KeySource {
        long next();
    }

    static final class Uniform implements KeySource {
        private final SplittableRandom random;
        private final int n;

        Uniform(int n, long seed) {
            this.random = new SplittableRandom(seed);
            this.n = n;
        }

        @Override
        public long next() {
            return random.nextInt(n);
        }
    }

    /**
     * Zipf-distributed ranks 1..n (probability of rank r proportional to r^-s), drawn by
     * rejection-inversion (W. Hörmann, G. Derflinger: "Rejection-inversion to generate variates
     * from monotone discrete distributions", 1996), rank r mapped to key ((r - 1) * SCATTER) mod n
     * so that the hot keys are spread over the key space (and over the key groups).
     */
    static final class Zipf implements KeySource {
        private final SplittableRandom random;
        private final long n;
        private final double s;
        private final double hIntegralX1;
        private final double hIntegralN;
        private final double sCut;

        Zipf(int n, double s, long seed) {
            this.random = new SplittableRandom(seed);
            this.n = n;
            this.s = s;
            this.hIntegralX1 = hIntegral(1.5) - 1.0;
            this.hIntegralN = hIntegral(n + 0.5);
            this.sCut = 2.0 - hIntegralInverse(hIntegral(2.5) - h(2.0));
        }

        @Override
        public long next() {
            return ((rank() - 1) * SCATTER) % n;
        }

        long rank() {
            while (true) {
                double u = hIntegralN + random.nextDouble() * (hIntegralX1 - hIntegralN);
                double x = hIntegralInverse(u);
                long k = (long) (x + 0.5);
                if (k < 1) {
                    k = 1;
                } else if (k > n) {
                    k = n;
                }
                if (k - x <= sCut || u >= hIntegral(k + 0.5) - h(k)) {
                    return k;
                }
            }
        }

        /** x^-s. */
        private double h(double x) {
            return Math.exp(-s * Math.log(x));
        }

        /** The integral of h from 1 to x: (x^(1-s) - 1) / (1 - s), also near s = 1. */
        private double hIntegral(double x) {
            double logX = Math.log(x);
            return expm1OverX((1.0 - s) * logX) * logX;
        }

        private double hIntegralInverse(double x) {
            double t = x * (1.0 - s);
            if (t < -1.0) {
                t = -1.0;
            }
            return Math.exp(log1pOverX(t) * x);
        }

        private static double expm1OverX(double x) {
            return Math.abs(x) > 1e-8
                    ? Math.expm1(x) / x
                    : 1.0 + x * 0.5 * (1.0 + x / 3.0 * (1.0 + 0.25 * x));
        }

        private static double log1pOverX(double x) {
            return Math.abs(x) > 1e-8
                    ? Math.log1p(x) / x
                    : 1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x));
        }
    }

    /** Resident memory of this process, from /proc/self/status, in bytes. */
    static final class Status {
        long vmRss;
        long vmHwm;
        long rssAnon;

        static Status read() throws IOException {
            Status status = new Status();
            for (String line : Files.readAllLines(Paths.get("/proc/self/status"))) {
                if (line.startsWith("VmRSS:")) {
                    status.vmRss = kib(line);
                } else if (line.startsWith("VmHWM:")) {
                    status.vmHwm = kib(line);
                } else if (line.startsWith("RssAnon:")) {
                    status.rssAnon = kib(line);
                }
            }
            return status;
        }

        private static long kib(String line) {
            return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
        }
    }

    /** Bytes this process had read from and written to storage, from /proc/self/io. */
    static final class Io {
        long readBytes;
        long writeBytes;

        static Io read() throws IOException {
            Io io = new Io();
            for (String line : Files.readAllLines(Paths.get("/proc/self/io"))) {
                if (line.startsWith("read_bytes:")) {
                    io.readBytes = Long.parseLong(line.substring(11).trim());
                } else if (line.startsWith("write_bytes:")) {
                    io.writeBytes = Long.parseLong(line.substring(12).trim());
                }
            }
            return io;
        }
    }

    /** Bytes of the regular files under {@code root} (files deleted meanwhile are skipped). */
    static long directoryBytes(File root) throws IOException {
        try (Stream<Path> files = Files.walk(root.toPath())) {
            return files.mapToLong(
                            p -> {
                                try {
                                    return Files.isRegularFile(p) ? Files.size(p) : 0;
                                } catch (NoSuchFileException e) {
                                    return 0;
                                } catch (IOException e) {
                                    throw new java.io.UncheckedIOException(e);
                                }
                            })
                    .sum();
        } catch (java.io.UncheckedIOException e) {
            if (e.getCause() instanceof NoSuchFileException) {
                // A directory deleted during the walk (RocksDB's files come and go): once more.
                return directoryBytes(root);
            }
            throw e;
        }
    }
}
