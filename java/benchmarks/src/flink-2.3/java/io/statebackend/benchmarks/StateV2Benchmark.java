package io.statebackend.benchmarks;

import io.statebackend.AbstractNativeBackend;
import io.statebackend.NativeFsBackend;
import io.statebackend.NativeMemoryBackend;
import io.statebackend.NativeRocksDBBackend;
import java.io.File;
import java.lang.reflect.Field;
import java.nio.file.Files;
import java.util.HashMap;
import java.util.Locale;
import java.util.Map;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.CheckpointListener;
import org.apache.flink.api.common.state.v2.StateFuture;
import org.apache.flink.api.java.functions.KeySelector;
import org.apache.flink.api.java.tuple.Tuple3;
import org.apache.flink.configuration.CheckpointingOptions;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.RestartStrategyOptions;
import org.apache.flink.configuration.StateBackendOptions;
import org.apache.flink.runtime.state.v2.adaptor.StateAdaptor;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.DataStreamUtils;
import org.apache.flink.streaming.api.datastream.KeyedStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.streaming.api.functions.sink.legacy.SinkFunction;
import org.apache.flink.util.Collector;
import org.apache.flink.util.FileUtils;

/**
 * What Flink 2.x's asynchronous State V2 API costs against the classic (V1) API on each backend, at
 * job level (issue 18). One keyed job per (backend, API) on a local MiniCluster in this JVM,
 * parallelism 1, checkpoints every second to a temporary directory: {@code records} records
 * (0..records-1, {@code fromSequence}), each keyed by a hash of its number to one of {@code keys}
 * keys (uniform), and per record one value-state read-modify-write (the key's running sum of its
 * records) and one map-state get/put (a count per bucket, {@code record % BUCKETS}).
 *
 * <p>V1: a {@link KeyedProcessFunction} with {@code ValueState}/{@code MapState}. V2: the same
 * after {@code enableAsyncState()}, with {@code asyncValue}/{@code asyncUpdate} and {@code
 * asyncGet}/{@code asyncPut} chained by {@code thenCompose}, the record completing when both chains
 * have ({@code thenCombine}). On our backends, HashMapStateBackend and EmbeddedRocksDBStateBackend,
 * V2 goes through Flink's {@code AsyncKeyedStateBackendAdaptor} (each request executed at once on
 * the task thread by the synchronous keyed backend); ForSt runs it on its own asynchronous keyed
 * backend (batches, its I/O threads). The run line says which ({@code states}).
 *
 * <p>The source is chained to the keyed operator ({@code reinterpretAsKeyedStream}, valid at
 * parallelism 1: the one subtask owns every key group), so no network shuffle or serialization of
 * records dilutes the state work. Throughput: records completed per second between the completion
 * of record {@code records * WARMUP} and of the last one, measured inside the operator (so job
 * start-up and shutdown are out, checkpoints in). Each key emits (key, sum, bucket count) once,
 * when its last record completes; the sink adds these up and the run fails unless they equal the
 * numbers computed here on plain arrays: the sums over all keys {@code records*(records-1)/2}, and
 * every key's count of its last record's bucket.
 *
 * <p>Usage: {@code StateV2Benchmark BACKEND [records [keys [rounds [apis]]]]}, BACKEND one of HEAP,
 * ROCKSDB, FORST, NATIVE_MEMORY, NATIVE_FS, NATIVE_ROCKSDB; defaults 2,000,000 records, 100,000
 * keys, 3 rounds of "v1,v2" (V1 then V2 in each round: drift hits both), and for our backends also
 * "v2-own": V2 through our own asynchronous keyed backend ({@code
 * state.backend.native.async-keyed-backend: true}) instead of Flink's adaptor. One line per job:
 * {@code V2RUN {json}}. Backends are chosen by configuration as a Flink 2.x job does ({@code
 * state.backend.type: hashmap | rocksdb | forst}, ours through {@code toConfiguration()}), with
 * their defaults; {@code -Dbench.conf=key=value;key=value} adds options to every job's
 * configuration.
 */
public final class StateV2Benchmark {
    static final int BUCKETS = 4;
    static final double WARMUP = 0.2;

    /** NativeMemoryBackend's limit on one state's snapshot here (its default is 5 MiB). */
    static final int MEMORY_MAX_STATE_SIZE = 64 << 20;

    // Set by the job's single keyed subtask and sink; read by main after the job ends (the
    // MiniCluster runs in this JVM).
    static volatile long startNanos;
    static volatile long endNanos;
    static volatile long completed;
    static volatile int checkpoints;
    static volatile String stateClasses = "";
    static long sinkKeys;
    static long sinkSum;
    static long sinkLastBucketCounts;

    private StateV2Benchmark() {}

    public static void main(String[] args) throws Exception {
        if (args.length < 1) {
            System.err.println(
                    "usage: StateV2Benchmark BACKEND [records [keys [rounds [v1,v2,v2-own]]]]");
            System.exit(2);
        }
        String backend = args[0].toUpperCase(Locale.ROOT);
        long records = args.length > 1 ? Long.parseLong(args[1].replace("_", "")) : 2_000_000L;
        int keys = args.length > 2 ? Integer.parseInt(args[2].replace("_", "")) : 100_000;
        int rounds = args.length > 3 ? Integer.parseInt(args[3]) : 3;
        String defaultApis = backend.startsWith("NATIVE_") ? "v1,v2,v2-own" : "v1,v2";
        String[] apis = (args.length > 4 ? args[4] : defaultApis).split(",");

        Expected expected = Expected.compute(records, keys);
        try {
            for (int round = 1; round <= rounds; round++) {
                for (String api : apis) {
                    runJob(
                            backend,
                            api.trim().toLowerCase(Locale.ROOT),
                            records,
                            keys,
                            round,
                            expected);
                }
            }
        } catch (Throwable t) {
            t.printStackTrace();
            System.exit(1);
        }
        // ForSt leaves native threads attached to the JVM as non-daemon threads after its jobs:
        // without an exit the JVM would wait for them forever.
        System.exit(0);
    }

    private static void runJob(
            String backend, String api, long records, int keys, int round, Expected expected)
            throws Exception {
        if (!api.equals("v1") && !api.equals("v2") && !api.equals("v2-own")) {
            throw new IllegalArgumentException("API: v1, v2 or v2-own, got " + api);
        }
        startNanos = 0;
        endNanos = 0;
        completed = 0;
        checkpoints = 0;
        stateClasses = "";
        synchronized (StateV2Benchmark.class) {
            sinkKeys = 0;
            sinkSum = 0;
            sinkLastBucketCounts = 0;
        }
        File dir = Files.createTempDirectory("state-v2-bench-").toFile();
        try {
            Configuration config = configuration(backend, dir);
            config.set(AbstractNativeBackend.ASYNC_KEYED_BACKEND, api.equals("v2-own"));
            StreamExecutionEnvironment env =
                    StreamExecutionEnvironment.getExecutionEnvironment(config);
            env.setParallelism(1);
            env.setMaxParallelism(128);
            env.enableCheckpointing(1000);

            DataStream<Long> source = env.fromSequence(0, records - 1);
            KeyedStream<Long, Long> keyed =
                    DataStreamUtils.reinterpretAsKeyedStream(source, new KeyOf(keys));
            DataStream<Tuple3<Long, Long, Integer>> out;
            if (api.startsWith("v2")) {
                out = keyed.enableAsyncState().process(new V2Function(records, keys));
            } else {
                out = keyed.process(new V1Function(records, keys));
            }
            out.addSink(new SumSink()).name("sum");

            long t0 = System.nanoTime();
            env.execute("state " + api + " on " + backend);
            double jobSeconds = (System.nanoTime() - t0) / 1e9;

            long measured = records - warmupRecords(records);
            double seconds = (endNanos - startNanos) / 1e9;
            double perSecond = measured / seconds;
            boolean ok;
            synchronized (StateV2Benchmark.class) {
                ok =
                        sinkKeys == expected.distinctKeys
                                && sinkSum == expected.sum
                                && sinkLastBucketCounts == expected.lastBucketCounts
                                && completed == records;
            }
            String line =
                    String.format(
                            Locale.ROOT,
                            "V2RUN {\"backend\":\"%s\",\"api\":\"%s\",\"round\":%d,"
                                    + "\"records\":%d,\"keys\":%d,\"measuredRecords\":%d,"
                                    + "\"seconds\":%.3f,\"recordsPerSecond\":%.0f,"
                                    + "\"jobSeconds\":%.3f,\"checkpoints\":%d,\"verified\":%s,"
                                    + "\"states\":\"%s\"}",
                            backend,
                            api,
                            round,
                            records,
                            keys,
                            measured,
                            seconds,
                            perSecond,
                            jobSeconds,
                            checkpoints,
                            ok,
                            stateClasses.replace("\"", "'"));
            System.out.println(line);
            if (!ok) {
                throw new IllegalStateException(
                        String.format(
                                "wrong final state (%s, %s): keys %d (expected %d), sum %d"
                                        + " (expected %d), last-bucket counts %d (expected %d),"
                                        + " completed %d of %d",
                                backend,
                                api,
                                sinkKeys,
                                expected.distinctKeys,
                                sinkSum,
                                expected.sum,
                                sinkLastBucketCounts,
                                expected.lastBucketCounts,
                                completed,
                                records));
            }
        } finally {
            FileUtils.deleteDirectoryQuietly(dir);
        }
    }

    /** The job's configuration: the backend as Flink 2.x chooses it, checkpoints under dir. */
    static Configuration configuration(String backend, File dir) {
        String checkpoints = new File(dir, "checkpoints").toURI().toString();
        Configuration config;
        switch (backend) {
            case "HEAP":
                config = flinkBackend("hashmap");
                break;
            case "ROCKSDB":
                config = flinkBackend("rocksdb");
                break;
            case "FORST":
                config = flinkBackend("forst");
                break;
            case "NATIVE_MEMORY":
                // Its snapshots are inline, 5 MiB per state by default: this job's map state
                // (keys * BUCKETS entries) is more at 100,000 keys.
                config = nativeBackend(new NativeMemoryBackend(MEMORY_MAX_STATE_SIZE));
                break;
            case "NATIVE_FS":
                config = nativeBackend(new NativeFsBackend(checkpoints));
                break;
            case "NATIVE_ROCKSDB":
                config = nativeBackend(new NativeRocksDBBackend(checkpoints));
                break;
            default:
                throw new IllegalArgumentException("unknown backend " + backend);
        }
        config.set(CheckpointingOptions.CHECKPOINTS_DIRECTORY, checkpoints);
        // A failure (a failed checkpoint included) ends the run instead of restarting the job.
        config.set(RestartStrategyOptions.RESTART_STRATEGY, "none");
        // Working directories (RocksDB, ForSt, ours) under the run's directory too.
        config.setString("io.tmp.dirs", new File(dir, "tmp").getAbsolutePath());
        for (Map.Entry<String, String> e : extraOptions().entrySet()) {
            config.setString(e.getKey(), e.getValue());
        }
        return config;
    }

    private static Configuration flinkBackend(String type) {
        Configuration config = new Configuration();
        config.set(StateBackendOptions.STATE_BACKEND, type);
        return config;
    }

    private static Configuration nativeBackend(AbstractNativeBackend backend) {
        return backend.toConfiguration();
    }

    /** {@code -Dbench.conf=key=value;key=value}: options added to every job's configuration. */
    private static Map<String, String> extraOptions() {
        Map<String, String> options = new HashMap<>();
        String spec = System.getProperty("bench.conf", "");
        for (String pair : spec.split(";")) {
            if (pair.isBlank()) {
                continue;
            }
            int eq = pair.indexOf('=');
            if (eq <= 0) {
                throw new IllegalArgumentException("bench.conf: key=value, got " + pair);
            }
            options.put(pair.substring(0, eq).trim(), pair.substring(eq + 1).trim());
        }
        return options;
    }

    static long warmupRecords(long records) {
        return (long) (records * WARMUP);
    }

    /** splitmix64's finalizer: record numbers spread uniformly over the keys. */
    static long key(long record, int keys) {
        long z = record + 0x9E3779B97F4A7C15L;
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        z = z ^ (z >>> 31);
        return Math.floorMod(z, keys);
    }

    /** Each key's last record (-1: none), so a key emits once, after its last update. */
    static long[] lastOfKey(long records, int keys) {
        long[] last = new long[keys];
        java.util.Arrays.fill(last, -1);
        for (long r = 0; r < records; r++) {
            last[(int) key(r, keys)] = r;
        }
        return last;
    }

    /** The final numbers, computed on plain arrays. */
    static final class Expected {
        long distinctKeys;
        long sum;
        long lastBucketCounts;

        static Expected compute(long records, int keys) {
            int[] counts = new int[keys * BUCKETS];
            int[] lastCount = new int[keys];
            boolean[] seen = new boolean[keys];
            Expected e = new Expected();
            for (long r = 0; r < records; r++) {
                int k = (int) key(r, keys);
                int c = ++counts[k * BUCKETS + (int) (r % BUCKETS)];
                lastCount[k] = c;
                seen[k] = true;
                e.sum += r;
            }
            for (int k = 0; k < keys; k++) {
                if (seen[k]) {
                    e.distinctKeys++;
                    e.lastBucketCounts += lastCount[k];
                }
            }
            return e;
        }
    }

    static final class KeyOf implements KeySelector<Long, Long> {
        private final int keys;

        KeyOf(int keys) {
            this.keys = keys;
        }

        @Override
        public Long getKey(Long record) {
            return key(record, keys);
        }
    }

    /** Counts completed records and takes the times of the warm-up's end and the last record. */
    abstract static class Timed
            extends KeyedProcessFunction<Long, Long, Tuple3<Long, Long, Integer>>
            implements CheckpointListener {
        final long records;
        final int keys;
        transient long[] lastOfKey;
        private transient long done;
        private transient long warmup;

        Timed(long records, int keys) {
            this.records = records;
            this.keys = keys;
        }

        @Override
        public void open(OpenContext ctx) throws Exception {
            lastOfKey = lastOfKey(records, keys);
            warmup = warmupRecords(records);
            done = 0;
        }

        /** A record's state work is done: emits the key's result after its last record. */
        final void complete(
                long record,
                long key,
                long sum,
                int bucketCount,
                Collector<Tuple3<Long, Long, Integer>> out) {
            if (lastOfKey[(int) key] == record) {
                out.collect(Tuple3.of(key, sum, bucketCount));
            }
            done++;
            if (done == warmup) {
                startNanos = System.nanoTime();
            }
            if (done == records) {
                endNanos = System.nanoTime();
            }
            completed = done;
        }

        @Override
        public void notifyCheckpointComplete(long checkpointId) {
            checkpoints++;
        }

        /**
         * The state's class; for Flink's wrappers, "wrapper -> wrapped": a V2 state adapted to a
         * synchronous one ({@code StateAdaptor}), V1 map state behind {@code UserFacingMapState}.
         */
        static String describe(Object state) throws ReflectiveOperationException {
            if (state.getClass().getSimpleName().equals("UserFacingMapState")) {
                // Package-private in Flink: by reflection.
                Field original = state.getClass().getDeclaredField("originalState");
                original.setAccessible(true);
                return state.getClass().getSimpleName()
                        + " -> "
                        + original.get(state).getClass().getSimpleName();
            }
            if (!(state instanceof StateAdaptor)) {
                return state.getClass().getSimpleName();
            }
            Field delegated = StateAdaptor.class.getDeclaredField("delegatedState");
            delegated.setAccessible(true);
            return state.getClass().getSimpleName()
                    + " -> "
                    + delegated.get(state).getClass().getSimpleName();
        }
    }

    /** The classic API: synchronous ValueState and MapState. */
    static final class V1Function extends Timed {
        private transient org.apache.flink.api.common.state.ValueState<Long> sum;
        private transient org.apache.flink.api.common.state.MapState<Integer, Integer> buckets;

        V1Function(long records, int keys) {
            super(records, keys);
        }

        @Override
        public void open(OpenContext ctx) throws Exception {
            super.open(ctx);
            sum =
                    getRuntimeContext()
                            .getState(
                                    new org.apache.flink.api.common.state.ValueStateDescriptor<>(
                                            "sum", Long.class));
            buckets =
                    getRuntimeContext()
                            .getMapState(
                                    new org.apache.flink.api.common.state.MapStateDescriptor<>(
                                            "buckets", Integer.class, Integer.class));
            stateClasses = describe(sum) + ", " + describe(buckets);
        }

        @Override
        public void processElement(
                Long record, Context ctx, Collector<Tuple3<Long, Long, Integer>> out)
                throws Exception {
            long r = record;
            Long s = sum.value();
            long newSum = (s == null ? 0 : s) + r;
            sum.update(newSum);
            int bucket = (int) (r % BUCKETS);
            Integer c = buckets.get(bucket);
            int count = (c == null ? 0 : c) + 1;
            buckets.put(bucket, count);
            complete(r, ctx.getCurrentKey(), newSum, count, out);
        }
    }

    /** State V2: the same work through asynchronous requests, chained. */
    static final class V2Function extends Timed {
        private transient org.apache.flink.api.common.state.v2.ValueState<Long> sum;
        private transient org.apache.flink.api.common.state.v2.MapState<Integer, Integer> buckets;

        V2Function(long records, int keys) {
            super(records, keys);
        }

        @Override
        public void open(OpenContext ctx) throws Exception {
            super.open(ctx);
            sum =
                    getRuntimeContext()
                            .getState(
                                    new org.apache.flink.api.common.state.v2.ValueStateDescriptor<>(
                                            "sum", Long.class));
            buckets =
                    getRuntimeContext()
                            .getMapState(
                                    new org.apache.flink.api.common.state.v2.MapStateDescriptor<>(
                                            "buckets", Integer.class, Integer.class));
            stateClasses = describe(sum) + ", " + describe(buckets);
        }

        @Override
        public void processElement(
                Long record, Context ctx, Collector<Tuple3<Long, Long, Integer>> out) {
            long r = record;
            long key = ctx.getCurrentKey();
            int bucket = (int) (r % BUCKETS);
            StateFuture<Long> summed =
                    sum.asyncValue()
                            .thenCompose(
                                    s -> {
                                        long n = (s == null ? 0 : s) + r;
                                        return sum.asyncUpdate(n).thenApply(ignored -> n);
                                    });
            StateFuture<Integer> counted =
                    buckets.asyncGet(bucket)
                            .thenCompose(
                                    c -> {
                                        int n = (c == null ? 0 : c) + 1;
                                        return buckets.asyncPut(bucket, n).thenApply(ignored -> n);
                                    });
            summed.thenCombine(counted, (s, c) -> new long[] {s, c})
                    .thenAccept(sc -> complete(r, key, sc[0], (int) sc[1], out));
        }
    }

    /** Adds up what the keys emit (parallelism 1, chained). */
    static final class SumSink implements SinkFunction<Tuple3<Long, Long, Integer>> {
        @Override
        public void invoke(Tuple3<Long, Long, Integer> value, Context context) {
            synchronized (StateV2Benchmark.class) {
                sinkKeys++;
                sinkSum += value.f1;
                sinkLastBucketCounts += value.f2;
            }
        }
    }
}
