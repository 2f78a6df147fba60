package io.statebackend.benchmarks;

import io.statebackend.NativeRocksDBBackendFactory;
import java.io.File;
import java.io.IOException;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.attribute.BasicFileAttributes;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.ToLongFunction;
import org.apache.flink.api.common.JobExecutionResult;
import org.apache.flink.api.common.accumulators.LongCounter;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.functions.RichMapFunction;
import org.apache.flink.api.common.state.CheckpointListener;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeutils.base.array.BytePrimitiveArraySerializer;
import org.apache.flink.api.java.functions.KeySelector;
import org.apache.flink.configuration.CheckpointingOptions;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.RestartStrategyOptions;
import org.apache.flink.configuration.StateBackendOptions;
import org.apache.flink.configuration.WebOptions;
import org.apache.flink.runtime.checkpoint.AbstractCheckpointStats;
import org.apache.flink.runtime.checkpoint.CheckpointStatsSnapshot;
import org.apache.flink.runtime.checkpoint.CheckpointStatsStatus;
import org.apache.flink.runtime.checkpoint.CompletedCheckpointStats;
import org.apache.flink.runtime.checkpoint.FailedCheckpointStats;
import org.apache.flink.runtime.checkpoint.SubtaskStateStats;
import org.apache.flink.runtime.checkpoint.TaskStateStats;
import org.apache.flink.runtime.jobgraph.JobGraph;
import org.apache.flink.runtime.jobmaster.JobResult;
import org.apache.flink.runtime.minicluster.MiniCluster;
import org.apache.flink.runtime.minicluster.MiniClusterConfiguration;
import org.apache.flink.runtime.util.EnvironmentInformation;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink;
import org.apache.flink.util.Collector;
import org.apache.flink.util.FileUtils;

/**
 * {@link LargeStateBenchmark}'s larger-than-memory read-modify-write as a keyed Flink job (issue
 * 19): one job on a {@link MiniCluster} in this JVM (1 TaskManager, 1 slot, parallelism 1, max
 * parallelism 128), Flink's EmbeddedRocksDBStateBackend ({@code ROCKSDB}) or ours ({@code
 * NATIVE_ROCKSDB}), chosen by configuration as on a cluster ({@code state.backend.type: rocksdb} or
 * {@code io.statebackend.NativeRocksDBBackendFactory}), incremental checkpoints every {@code
 * interval} seconds (10) into a local directory during the whole job.
 *
 * <p>The job: a sequence source ({@code fromSequence(0, n + records - 1)}), a map that turns
 * numbers into keys, {@code keyBy} (a hash exchange, as any keyed job has) and a {@link
 * KeyedProcessFunction} with one {@code ValueState<byte[]>}. Phase 1, the load: keys 0..n-1 in
 * ascending order, each written once with {@code valueSize}-byte incompressible values ({@link
 * CheckpointBenchmark#fill}); n = stateMiB MiB / valueSize. Phase 2, measured: {@code records}
 * read-modify-writes on keys drawn by {@link LargeStateBenchmark}'s generators ({@code uniform}, or
 * {@code zipf}: s = 0.99, ranks scattered by its fixed permutation), each reading the key's value
 * (absent: the job fails), changing 8 bytes and writing it back. Throughput is timed inside the
 * operator on the task thread, from the first phase-2 record to the end of the last: records per
 * second over phase 2, the load and job start-up excluded, checkpoints included.
 *
 * <p>Memory as in {@link LargeStateBenchmark}: budget {@code default} runs each backend with
 * managed memory off and nothing else set; a size ({@code 256mb}) gives both {@code
 * state.backend.rocksdb.memory.fixed-per-slot} of that size, ours split by {@code
 * memory.write-cache-ratio} (RATIO; {@code default}: ours' 0.5). The RocksDB directories and the
 * checkpoints live under a temporary directory in {@code java.io.tmpdir} (a real disk), deleted at
 * the end.
 *
 * <p>Reported (one line {@code LARGEJOB {json}} at the end, after one line per checkpoint): load
 * and phase-2 times, records/s (also over phase 2's second half), completed checkpoints (from
 * Flink's checkpoint statistics; those during phase 2 with their end-to-end, synchronous and
 * asynchronous durations and uploaded bytes), peak VmRSS and RssAnon growth over the process before
 * the job was submitted (sampled every 200 ms; run with {@code -Xms} = {@code -Xmx} and {@code
 * -XX:+AlwaysPreTouch} so that this growth is native memory), the bytes this process read from and
 * wrote to the block device (/proc/self/io) per phase-2 record (checkpoint uploads included), and
 * the state's size on disk after the load and at the end.
 *
 * <p>Usage: {@code LargeStateJobBenchmark ROCKSDB|NATIVE_ROCKSDB [BUDGET [RATIO]] [name=value
 * ...]}, names {@code valueSize} (1024), {@code stateMiB} (2560), {@code distribution} ({@code
 * uniform} or {@code zipf}), {@code records} (1,200,000), {@code interval} (seconds, 10), {@code
 * options} (further {@code state.backend.rocksdb.*} options, {@code key=value;...} without the
 * prefix). scripts/bench-flink runs it: {@code BENCH_PARTS=large-job}.
 */
public final class LargeStateJobBenchmark {
    private static final long MIB = 1L << 20;
    static final long DEFAULT_RECORDS = 1_200_000L;
    private static final int MAX_PARALLELISM = 128;
    private static final long KEY_SEED = 0x5eedL;

    // Accumulators of the keyed function (one subtask: each is set once, or counted).
    private static final String LOADED = "loadedRecords";
    private static final String MEASURED = "measuredRecords";
    private static final String LOAD_NANOS = "loadNanos";
    private static final String MEASURE_NANOS = "measureNanos";
    private static final String SECOND_HALF_NANOS = "secondHalfNanos";
    private static final String MEASURE_START_MILLIS = "measureStartMillis";
    private static final String MEASURE_END_MILLIS = "measureEndMillis";
    private static final String LOAD_WRITE_BYTES = "loadWriteBytes";
    private static final String READ_BYTES = "measureReadBytes";
    private static final String WRITE_BYTES = "measureWriteBytes";
    private static final String DISK_AFTER_LOAD = "diskBytesAfterLoad";
    private static final String DISK_END = "diskBytesEnd";
    private static final String DB_AFTER_LOAD = "dbBytesAfterLoad";
    private static final String DB_END = "dbBytesEnd";
    private static final String CHECKPOINT_DIR_END = "checkpointDirBytesEnd";
    private static final String OPEN_RSS_ANON = "openRssAnon";
    private static final String NOTIFIED = "checkpointsNotified";

    private LargeStateJobBenchmark() {}

    public static void main(String[] args) throws Exception {
        Params params;
        try {
            params = Params.parse(args);
            params.rocksDBOptions();
        } catch (IllegalArgumentException e) {
            System.err.println(e.getMessage());
            System.err.println(
                    "usage: LargeStateJobBenchmark ROCKSDB|NATIVE_ROCKSDB [BUDGET [RATIO]]"
                            + " [valueSize=1024] [stateMiB=2560] [distribution=uniform|zipf]"
                            + " [records="
                            + DEFAULT_RECORDS
                            + "] [interval=10] [options=key=value;...]");
            System.exit(2);
            return;
        }
        int status = 0;
        try {
            run(params);
        } catch (Throwable t) {
            t.printStackTrace();
            status = 1;
        }
        // Flink's and RocksDB's threads must not keep the JVM alive.
        System.exit(status);
    }

    /** The run's parameters. */
    static final class Params {
        BackendType backend;
        String budget = "default";
        String ratio = "default";
        int valueSize = 1024;
        int stateMiB = 2560;
        String distribution = "uniform";
        long records = DEFAULT_RECORDS;
        double intervalSeconds = 10;
        String options = "none";
        long keys;

        static Params parse(String[] args) {
            if (args.length < 1) {
                throw new IllegalArgumentException("no backend");
            }
            Params p = new Params();
            p.backend = BackendType.valueOf(args[0].toUpperCase(Locale.ROOT));
            if (p.backend != BackendType.ROCKSDB && p.backend != BackendType.NATIVE_ROCKSDB) {
                throw new IllegalArgumentException("ROCKSDB or NATIVE_ROCKSDB, got " + args[0]);
            }
            int i = 1;
            if (i < args.length && !args[i].contains("=")) {
                p.budget = args[i++];
            }
            if (i < args.length && !args[i].contains("=")) {
                p.ratio = args[i++];
            }
            for (; i < args.length; i++) {
                String[] kv = args[i].split("=", 2);
                if (kv.length != 2) {
                    throw new IllegalArgumentException("expected name=value, got " + args[i]);
                }
                String v = kv[1].trim().replace("_", "");
                switch (kv[0].trim()) {
                    case "valueSize":
                        p.valueSize = Integer.parseInt(v);
                        break;
                    case "stateMiB":
                        p.stateMiB = Integer.parseInt(v);
                        break;
                    case "distribution":
                        p.distribution = v;
                        break;
                    case "records":
                        p.records = Long.parseLong(v);
                        break;
                    case "interval":
                        p.intervalSeconds = Double.parseDouble(v);
                        break;
                    case "options":
                        p.options = kv[1].trim();
                        break;
                    default:
                        throw new IllegalArgumentException("unknown parameter " + kv[0]);
                }
            }
            if (!p.distribution.equals("uniform") && !p.distribution.equals("zipf")) {
                throw new IllegalArgumentException(
                        "distribution: uniform or zipf, got " + p.distribution);
            }
            if (p.valueSize < 8 || p.records < 2 || p.intervalSeconds <= 0) {
                throw new IllegalArgumentException(
                        "valueSize >= 8, records >= 2 and interval > 0 needed");
            }
            p.keys = p.stateMiB * MIB / p.valueSize;
            if (p.keys < 1 || p.keys > Integer.MAX_VALUE) {
                throw new IllegalArgumentException("keys out of range: " + p.keys);
            }
            return p;
        }

        /**
         * The {@code state.backend.rocksdb.*} options, as {@link LargeStateBenchmark} gives its
         * backends: managed memory off (both), the budget as fixed-per-slot (both), ours' split.
         */
        Map<String, String> rocksDBOptions() {
            Map<String, String> result = new LinkedHashMap<>();
            result.put("state.backend.rocksdb.memory.managed", "false");
            result.putAll(LargeStateBenchmark.rocksDBOptions(backend, budget, ratio, options));
            return result;
        }
    }

    /**
     * The cluster's and the job's configuration: the backend by {@code state.backend.type}, its
     * options, incremental checkpoints to {@code checkpoints}, working directories in {@code tmp}.
     */
    static Configuration configuration(Params p, File tmp, File checkpoints) {
        Configuration config = new Configuration();
        config.set(
                StateBackendOptions.STATE_BACKEND,
                p.backend == BackendType.ROCKSDB
                        ? "rocksdb"
                        : NativeRocksDBBackendFactory.class.getName());
        // execution.checkpointing.dir (1.20.5 and 2.x; state.checkpoints.dir is its fallback key).
        config.set(CheckpointingOptions.CHECKPOINTS_DIRECTORY, checkpoints.toURI().toString());
        config.set(CheckpointingOptions.INCREMENTAL_CHECKPOINTS, true);
        config.set(
                CheckpointingOptions.CHECKPOINTING_INTERVAL,
                Duration.ofMillis(Math.round(p.intervalSeconds * 1000)));
        for (Map.Entry<String, String> e : p.rocksDBOptions().entrySet()) {
            config.setString(e.getKey(), e.getValue());
        }
        // A failure (a missing value, a failed checkpoint) ends the run instead of a restart.
        config.set(RestartStrategyOptions.RESTART_STRATEGY, "none");
        // Both backends put their RocksDB directories into the TaskManager's io.tmp.dirs.
        config.setString("io.tmp.dirs", tmp.getAbsolutePath());
        // Every checkpoint's statistics, not only the last 10.
        config.set(WebOptions.CHECKPOINTS_HISTORY_SIZE, 100_000);
        return config;
    }

    private static void run(Params p) throws Exception {
        File dir = Files.createTempDirectory("statebackend-largejob-").toFile();
        Thread cleanup = new Thread(() -> FileUtils.deleteDirectoryQuietly(dir));
        Runtime.getRuntime().addShutdownHook(cleanup);
        File tmp = new File(dir, "tmp");
        File checkpoints = new File(dir, "checkpoints");
        if (!tmp.mkdirs() || !checkpoints.mkdirs()) {
            throw new IOException("cannot create directories under " + dir);
        }
        try {
            runIn(p, tmp, checkpoints);
        } finally {
            FileUtils.deleteDirectoryQuietly(dir);
        }
    }

    private static void runIn(Params p, File tmp, File checkpoints) throws Exception {
        Configuration config = configuration(p, tmp, checkpoints);
        System.out.printf(
                Locale.ROOT,
                "large-state job on Flink %s: %s, budget %s, write-cache ratio %s, %,d keys of"
                        + " %d-byte values (%d MiB), then %,d read-modify-writes (%s);"
                        + " incremental checkpoints every %s s under %s%n  %s%n",
                EnvironmentInformation.getVersion(),
                p.backend,
                p.budget,
                p.ratio,
                p.keys,
                p.valueSize,
                p.stateMiB,
                p.records,
                p.distribution,
                fmt(p.intervalSeconds),
                checkpoints,
                p.rocksDBOptions());
        MiniClusterConfiguration clusterConfig =
                new MiniClusterConfiguration.Builder()
                        .setConfiguration(config)
                        .setNumTaskManagers(1)
                        .setNumSlotsPerTaskManager(1)
                        .withRandomPorts()
                        .build();
        try (MiniCluster cluster = new MiniCluster(clusterConfig)) {
            cluster.start();
            JobGraph job = jobGraph(p, config, tmp, checkpoints);
            LargeStateBenchmark.Status before = LargeStateBenchmark.Status.read();
            long t0 = System.nanoTime();
            cluster.submitJob(job).get();
            CompletableFuture<JobResult> done = cluster.requestJobResult(job.getJobID());
            Memory memory = new Memory();
            JobResult result;
            while (true) {
                memory.sample();
                try {
                    result = done.get(200, TimeUnit.MILLISECONDS);
                    break;
                } catch (TimeoutException e) {
                    // Still running: sample again.
                }
            }
            memory.sample();
            double jobSeconds = (System.nanoTime() - t0) / 1e9;
            // Throws the job's failure (a missing value, a failed checkpoint) if it failed.
            JobExecutionResult execution =
                    result.toJobExecutionResult(LargeStateJobBenchmark.class.getClassLoader());
            Map<String, Object> acc = execution.getAllAccumulatorResults();
            long loaded = count(acc, LOADED);
            long measured = count(acc, MEASURED);
            if (loaded != p.keys || measured != p.records) {
                throw new IllegalStateException(
                        String.format(
                                Locale.ROOT,
                                "the job saw %d load and %d measured records, not %d and %d",
                                loaded,
                                measured,
                                p.keys,
                                p.records));
            }
            Checkpoints stats =
                    Checkpoints.of(
                            cluster.getExecutionGraph(job.getJobID()).get(),
                            count(acc, MEASURE_START_MILLIS),
                            count(acc, MEASURE_END_MILLIS),
                            checkpoints);
            report(p, acc, stats, memory, before, jobSeconds);
        }
    }

    private static JobGraph jobGraph(Params p, Configuration config, File tmp, File checkpoints) {
        StreamExecutionEnvironment env = new StreamExecutionEnvironment(config);
        env.setParallelism(1);
        env.setMaxParallelism(MAX_PARALLELISM);
        env.enableCheckpointing(Math.round(p.intervalSeconds * 1000));
        env.fromSequence(0, p.keys + p.records - 1)
                .name("sequence")
                .map(new ToKey(p.keys, p.distribution))
                .name("keys")
                .keyBy(new Identity())
                .process(
                        new ReadModifyWrite(
                                p.keys,
                                p.records,
                                p.valueSize,
                                p.backend.toString(),
                                tmp.getAbsolutePath(),
                                checkpoints.getAbsolutePath()))
                .name("read-modify-write")
                .uid("read-modify-write")
                .sinkTo(new DiscardingSink<>())
                .name("discard");
        return env.getStreamGraph().getJobGraph();
    }

    private static long count(Map<String, Object> acc, String name) {
        Object value = acc.get(name);
        if (!(value instanceof Long)) {
            throw new IllegalStateException("no accumulator " + name + " in " + acc.keySet());
        }
        return (Long) value;
    }

    private static void report(
            Params p,
            Map<String, Object> acc,
            Checkpoints ck,
            Memory memory,
            LargeStateBenchmark.Status before,
            double jobSeconds)
            throws IOException {
        LargeStateBenchmark.Status end = LargeStateBenchmark.Status.read();
        double loadSeconds = count(acc, LOAD_NANOS) / 1e9;
        double measureSeconds = count(acc, MEASURE_NANOS) / 1e9;
        long secondHalf = p.records - p.records / 2;
        StringBuilder json = new StringBuilder("{");
        field(json, "backend", p.backend.toString());
        field(json, "budget", p.budget);
        field(json, "ratio", p.ratio);
        field(json, "options", p.options);
        field(json, "flink", EnvironmentInformation.getVersion());
        field(json, "valueSize", p.valueSize);
        field(json, "stateMiB", p.stateMiB);
        field(json, "keys", p.keys);
        field(json, "distribution", p.distribution);
        field(json, "records", p.records);
        field(json, "intervalSeconds", p.intervalSeconds);
        field(json, "loadSeconds", loadSeconds);
        field(json, "measureSeconds", measureSeconds);
        field(json, "recordsPerSecond", p.records / measureSeconds);
        field(
                json,
                "secondHalfRecordsPerSecond",
                secondHalf / (count(acc, SECOND_HALF_NANOS) / 1e9));
        field(json, "jobSeconds", jobSeconds);
        field(json, "checkpoints", ck.completed);
        field(json, "checkpointsFailed", ck.failed);
        field(json, "checkpointsFailedBeforeEnd", ck.failedBeforeEnd);
        field(json, "checkpointsNotified", count(acc, NOTIFIED));
        field(json, "checkpointsDuringMeasure", ck.duringMeasure.size());
        field(json, "checkpointMedianSeconds", ck.medianSeconds());
        field(json, "checkpointMaxSeconds", ck.maxSeconds());
        field(json, "checkpointSyncMaxMillis", ck.syncMaxMillis());
        field(json, "checkpointAsyncMaxSeconds", ck.asyncMaxSeconds());
        field(json, "checkpointedMiBDuringMeasure", ck.uploadedBytes() / (double) MIB);
        field(json, "baselineRssMiB", before.vmRss / (double) MIB);
        field(json, "peakRssMiB", memory.maxVmRss / (double) MIB);
        field(json, "hwmMiB", end.vmHwm / (double) MIB);
        field(json, "nativeGrowthMiB", (memory.maxRssAnon - before.rssAnon) / (double) MIB);
        field(
                json,
                "nativeGrowthFromOpenMiB",
                (memory.maxRssAnon - count(acc, OPEN_RSS_ANON)) / (double) MIB);
        field(json, "diskMiBAfterLoad", count(acc, DISK_AFTER_LOAD) / (double) MIB);
        field(json, "diskMiB", count(acc, DISK_END) / (double) MIB);
        field(json, "dbMiBAfterLoad", count(acc, DB_AFTER_LOAD) / (double) MIB);
        field(json, "dbMiB", count(acc, DB_END) / (double) MIB);
        field(json, "checkpointDirMiB", count(acc, CHECKPOINT_DIR_END) / (double) MIB);
        field(json, "loadWriteMiB", count(acc, LOAD_WRITE_BYTES) / (double) MIB);
        field(json, "diskWriteBytesPerRecord", count(acc, WRITE_BYTES) / (double) p.records);
        field(json, "diskReadBytesPerRecord", count(acc, READ_BYTES) / (double) p.records);
        json.setLength(json.length() - 1);
        json.append('}');
        System.out.println("LARGEJOB " + json);
    }

    private static void field(StringBuilder json, String name, Object value) {
        json.append('"').append(name).append("\":");
        if (value instanceof String) {
            json.append('"').append(((String) value).replace("\"", "'")).append('"');
        } else if (value instanceof Double) {
            double d = (Double) value;
            json.append(Double.isFinite(d) ? String.format(Locale.ROOT, "%.3f", d) : "null");
        } else {
            json.append(value);
        }
        json.append(',');
    }

    private static String fmt(double seconds) {
        return seconds == Math.rint(seconds)
                ? String.valueOf((long) seconds)
                : String.valueOf(seconds);
    }

    /**
     * The backend's files in the TaskManager's working directories: each file once (a local
     * checkpoint's hard links to the DB's files count once), Flink's own files (its RPC jar, the
     * extracted RocksDB JNI library, blobs) left out; and those of the RocksDB directories ({@code
     * db}) alone.
     */
    static final class LocalDisk {
        long stateBytes;
        long dbBytes;

        static LocalDisk measure(File root) throws IOException {
            LocalDisk result = new LocalDisk();
            Set<Object> seen = new HashSet<>();
            Set<Object> seenInDb = new HashSet<>();
            Path top = root.toPath();
            Files.walkFileTree(
                    top,
                    new SimpleFileVisitor<Path>() {
                        @Override
                        public FileVisitResult preVisitDirectory(
                                Path dir, BasicFileAttributes attrs) {
                            String name = String.valueOf(dir.getFileName());
                            return name.startsWith("rocksdb-lib-") || name.equals("blobStorage")
                                    ? FileVisitResult.SKIP_SUBTREE
                                    : FileVisitResult.CONTINUE;
                        }

                        @Override
                        public FileVisitResult visitFile(Path file, BasicFileAttributes attrs) {
                            if (!attrs.isRegularFile() || file.toString().endsWith(".jar")) {
                                return FileVisitResult.CONTINUE;
                            }
                            Object inode = attrs.fileKey() != null ? attrs.fileKey() : file;
                            if (seen.add(inode)) {
                                result.stateBytes += attrs.size();
                            }
                            if (inDb(file) && seenInDb.add(inode)) {
                                result.dbBytes += attrs.size();
                            }
                            return FileVisitResult.CONTINUE;
                        }

                        private boolean inDb(Path file) {
                            for (Path p = file.getParent();
                                    p != null && p.startsWith(top);
                                    p = p.getParent()) {
                                if (String.valueOf(p.getFileName()).equals("db")) {
                                    return true;
                                }
                            }
                            return false;
                        }

                        @Override
                        public FileVisitResult visitFileFailed(Path file, IOException e) {
                            // Deleted during the walk (RocksDB's files come and go).
                            return FileVisitResult.CONTINUE;
                        }
                    });
            return result;
        }
    }

    /** The largest VmRSS and RssAnon seen while the job ran. */
    private static final class Memory {
        long maxVmRss;
        long maxRssAnon;

        void sample() throws IOException {
            LargeStateBenchmark.Status status = LargeStateBenchmark.Status.read();
            maxVmRss = Math.max(maxVmRss, status.vmRss);
            maxRssAnon = Math.max(maxRssAnon, status.rssAnon);
        }
    }

    /** Flink's statistics of the job's checkpoints, after the job ended. */
    private static final class Checkpoints {
        long completed;
        long failed;
        long failedBeforeEnd;
        final List<CompletedCheckpointStats> duringMeasure = new ArrayList<>();

        static Checkpoints of(
                org.apache.flink.runtime.executiongraph.AccessExecutionGraph graph,
                long measureStartMillis,
                long measureEndMillis,
                File checkpointDir) {
            CheckpointStatsSnapshot snapshot = graph.getCheckpointStatsSnapshot();
            Checkpoints result = new Checkpoints();
            if (snapshot == null) {
                System.out.println("no checkpoint statistics");
                return result;
            }
            result.completed = snapshot.getCounts().getNumberOfCompletedCheckpoints();
            result.failed = snapshot.getCounts().getNumberOfFailedCheckpoints();
            List<AbstractCheckpointStats> history =
                    new ArrayList<>(snapshot.getHistory().getCheckpoints());
            history.sort((a, b) -> Long.compare(a.getCheckpointId(), b.getCheckpointId()));
            String expectedDir = checkpointDir.toURI().getPath();
            for (AbstractCheckpointStats c : history) {
                long trigger = c.getTriggerTimestamp();
                String phase =
                        trigger < measureStartMillis
                                ? "load"
                                : trigger <= measureEndMillis ? "measure" : "after";
                SubtaskStateStats slowest = slowest(c);
                System.out.printf(
                        Locale.ROOT,
                        "checkpoint %d (%s, %s): %.2f s end to end, sync %s ms, async %s s,"
                                + " %.1f MiB uploaded, %.1f MiB state%s%n",
                        c.getCheckpointId(),
                        phase,
                        c.getStatus(),
                        c.getEndToEndDuration() / 1e3,
                        slowest == null ? "?" : String.valueOf(slowest.getSyncCheckpointDuration()),
                        slowest == null
                                ? "?"
                                : String.format(
                                        Locale.ROOT,
                                        "%.2f",
                                        slowest.getAsyncCheckpointDuration() / 1e3),
                        c.getCheckpointedSize() / (double) MIB,
                        c.getStateSize() / (double) MIB,
                        c instanceof FailedCheckpointStats
                                ? ": " + ((FailedCheckpointStats) c).getFailureMessage()
                                : "");
                if (c.getStatus() == CheckpointStatsStatus.FAILED && !phase.equals("after")) {
                    // After phase 2 a checkpoint may fail because the job is finishing.
                    result.failedBeforeEnd++;
                }
                if (c.getStatus() != CheckpointStatsStatus.COMPLETED) {
                    continue;
                }
                CompletedCheckpointStats done = (CompletedCheckpointStats) c;
                String path = done.getExternalPath();
                if (path != null && !path.contains(expectedDir)) {
                    throw new IllegalStateException(
                            "checkpoint "
                                    + c.getCheckpointId()
                                    + " went to "
                                    + path
                                    + ", not under "
                                    + expectedDir);
                }
                if (phase.equals("measure")) {
                    result.duringMeasure.add(done);
                }
            }
            if (result.completed > 0 && history.isEmpty()) {
                System.out.println("no checkpoint history");
            }
            return result;
        }

        /** The subtask whose checkpoint took longest (the keyed one: the source's are short). */
        static SubtaskStateStats slowest(AbstractCheckpointStats c) {
            SubtaskStateStats slowest = null;
            for (TaskStateStats task : c.getAllTaskStateStats()) {
                for (SubtaskStateStats s : task.getSubtaskStats()) {
                    if (s != null
                            && (slowest == null
                                    || s.getSyncCheckpointDuration()
                                                    + s.getAsyncCheckpointDuration()
                                            > slowest.getSyncCheckpointDuration()
                                                    + slowest.getAsyncCheckpointDuration())) {
                        slowest = s;
                    }
                }
            }
            return slowest;
        }

        Double medianSeconds() {
            if (duringMeasure.isEmpty()) {
                return Double.NaN;
            }
            List<Long> durations = new ArrayList<>();
            duringMeasure.forEach(c -> durations.add(c.getEndToEndDuration()));
            Collections.sort(durations);
            int n = durations.size();
            return (n % 2 == 1
                            ? durations.get(n / 2)
                            : (durations.get(n / 2 - 1) + durations.get(n / 2)) / 2.0)
                    / 1e3;
        }

        Double maxSeconds() {
            long max =
                    duringMeasure.stream()
                            .mapToLong(CompletedCheckpointStats::getEndToEndDuration)
                            .max()
                            .orElse(-1);
            return max < 0 ? Double.NaN : max / 1e3;
        }

        Double syncMaxMillis() {
            long max = maxOverSubtasks(SubtaskStateStats::getSyncCheckpointDuration);
            return max < 0 ? Double.NaN : (double) max;
        }

        Double asyncMaxSeconds() {
            long max = maxOverSubtasks(SubtaskStateStats::getAsyncCheckpointDuration);
            return max < 0 ? Double.NaN : max / 1e3;
        }

        /** The largest {@code value} of any subtask of phase 2's checkpoints; -1 if none. */
        private long maxOverSubtasks(ToLongFunction<SubtaskStateStats> value) {
            long max = -1;
            for (CompletedCheckpointStats c : duringMeasure) {
                for (TaskStateStats task : c.getAllTaskStateStats()) {
                    for (SubtaskStateStats s : task.getSubtaskStats()) {
                        if (s != null) {
                            max = Math.max(max, value.applyAsLong(s));
                        }
                    }
                }
            }
            return max;
        }

        long uploadedBytes() {
            return duringMeasure.stream()
                    .mapToLong(CompletedCheckpointStats::getCheckpointedSize)
                    .sum();
        }
    }

    /** Numbers 0..n-1 are the load's keys in order; later numbers draw keys from a generator. */
    static final class ToKey extends RichMapFunction<Long, Long> {
        private final long keys;
        private final String distribution;
        private transient LargeStateBenchmark.KeySource random;

        ToKey(long keys, String distribution) {
            this.keys = keys;
            this.distribution = distribution;
        }

        @Override
        public void open(OpenContext ctx) {
            // One subtask, numbers in order: the key sequence is the same in every run.
            random =
                    distribution.equals("zipf")
                            ? new LargeStateBenchmark.Zipf(
                                    (int) keys, LargeStateBenchmark.ZIPF_EXPONENT, KEY_SEED)
                            : new LargeStateBenchmark.Uniform((int) keys, KEY_SEED);
        }

        @Override
        public Long map(Long number) {
            return number < keys ? number : random.next();
        }
    }

    static final class Identity implements KeySelector<Long, Long> {
        @Override
        public Long getKey(Long key) {
            return key;
        }
    }

    /**
     * The keyed operator: the first {@code keys} records load the state, the next {@code records}
     * read, change and write back their key's value; both phases timed on the task thread.
     */
    static final class ReadModifyWrite extends KeyedProcessFunction<Long, Long, Long>
            implements CheckpointListener {
        private final long keys;
        private final long records;
        private final int valueSize;
        private final String backend;
        private final String localDir;
        private final String checkpointDir;

        private transient ValueState<byte[]> values;
        private transient long seen;
        private transient long loadStart;
        private transient long measureStart;
        private transient long halfStart;
        private transient long lastReport;
        private transient long lastReportRecords;
        private transient LargeStateBenchmark.Io ioLoad;
        private transient LargeStateBenchmark.Io ioMeasure;
        private transient LongCounter notified;

        ReadModifyWrite(
                long keys,
                long records,
                int valueSize,
                String backend,
                String localDir,
                String checkpointDir) {
            this.keys = keys;
            this.records = records;
            this.valueSize = valueSize;
            this.backend = backend;
            this.localDir = localDir;
            this.checkpointDir = checkpointDir;
        }

        @Override
        public void open(OpenContext ctx) throws Exception {
            values =
                    getRuntimeContext()
                            .getState(
                                    new ValueStateDescriptor<>(
                                            "values", BytePrimitiveArraySerializer.INSTANCE));
            seen = 0;
            notified = getRuntimeContext().getLongCounter(NOTIFIED);
            set(OPEN_RSS_ANON, LargeStateBenchmark.Status.read().rssAnon);
        }

        private void set(String name, long value) {
            getRuntimeContext().getLongCounter(name).add(value);
        }

        @Override
        public void processElement(Long key, Context ctx, Collector<Long> out) throws Exception {
            long i = seen++;
            if (i < keys) {
                load(i, key);
                return;
            }
            long op = i - keys;
            if (op >= records) {
                throw new IllegalStateException("more records than " + (keys + records));
            }
            if (op == 0) {
                ioMeasure = LargeStateBenchmark.Io.read();
                set(MEASURE_START_MILLIS, System.currentTimeMillis());
                measureStart = System.nanoTime();
                lastReport = measureStart;
            }
            if (op == records / 2) {
                halfStart = System.nanoTime();
            }
            byte[] value = values.value();
            if (value == null || value.length != valueSize) {
                throw new IllegalStateException(
                        backend
                                + ": key "
                                + key
                                + " was loaded but read "
                                + (value == null ? "nothing" : value.length + " bytes")
                                + " (record "
                                + op
                                + " of phase 2)");
            }
            change(value, op + 1);
            values.update(value);
            long done = op + 1;
            if (done % Math.max(1, records / 10) == 0 && done < records) {
                long now = System.nanoTime();
                System.out.printf(
                        Locale.ROOT,
                        "phase 2: %,d of %,d records, %,.0f records/s since the last line%n",
                        done,
                        records,
                        (done - lastReportRecords) / ((now - lastReport) / 1e9));
                lastReport = now;
                lastReportRecords = done;
            }
            if (done == records) {
                long end = System.nanoTime();
                set(MEASURE_END_MILLIS, System.currentTimeMillis());
                LargeStateBenchmark.Io io = LargeStateBenchmark.Io.read();
                set(MEASURED, records);
                set(MEASURE_NANOS, end - measureStart);
                set(SECOND_HALF_NANOS, end - halfStart);
                set(READ_BYTES, io.readBytes - ioMeasure.readBytes);
                set(WRITE_BYTES, io.writeBytes - ioMeasure.writeBytes);
                LocalDisk disk = LocalDisk.measure(new File(localDir));
                set(DISK_END, disk.stateBytes);
                set(DB_END, disk.dbBytes);
                set(
                        CHECKPOINT_DIR_END,
                        LargeStateBenchmark.directoryBytes(new File(checkpointDir)));
                System.out.printf(
                        Locale.ROOT,
                        "phase 2: %,d records in %.1f s, %,.0f records/s%n",
                        records,
                        (end - measureStart) / 1e9,
                        records / ((end - measureStart) / 1e9));
            }
        }

        private void load(long i, long key) throws Exception {
            if (i == 0) {
                ioLoad = LargeStateBenchmark.Io.read();
                loadStart = System.nanoTime();
            }
            if (key != i) {
                throw new IllegalStateException("load out of order: key " + key + " at " + i);
            }
            // A new array per value: a backend may keep the one it is given.
            values.update(CheckpointBenchmark.fill(new byte[valueSize], key, 0));
            if (i == keys - 1) {
                long nanos = System.nanoTime() - loadStart;
                set(LOADED, keys);
                set(LOAD_NANOS, nanos);
                set(LOAD_WRITE_BYTES, LargeStateBenchmark.Io.read().writeBytes - ioLoad.writeBytes);
                LocalDisk disk = LocalDisk.measure(new File(localDir));
                set(DISK_AFTER_LOAD, disk.stateBytes);
                set(DB_AFTER_LOAD, disk.dbBytes);
                System.out.printf(
                        Locale.ROOT,
                        "loaded %,d keys in %.1f s: %.0f MiB on disk, VmRSS %.0f MiB%n",
                        keys,
                        nanos / 1e9,
                        disk.stateBytes / (double) MIB,
                        LargeStateBenchmark.Status.read().vmRss / (double) MIB);
            }
        }

        /** Changes 8 bytes of {@code value}, as {@link LargeStateBenchmark} does. */
        private void change(byte[] value, long ops) {
            long change = ops * 0x9E3779B97F4A7C15L;
            int at = (int) ((ops & 0x7fffffff) % (valueSize - 7));
            for (int b = 0; b < 8; b++) {
                value[at + b] ^= (byte) (change >>> (8 * b));
            }
        }

        @Override
        public void notifyCheckpointComplete(long checkpointId) {
            notified.add(1L);
        }
    }
}
