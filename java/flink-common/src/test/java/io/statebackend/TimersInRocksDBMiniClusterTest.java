package io.statebackend;

import static org.assertj.core.api.Assertions.assertThat;

import java.lang.management.ManagementFactory;
import java.math.BigInteger;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Stream;
import org.apache.flink.api.common.JobID;
import org.apache.flink.api.common.JobStatus;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.configuration.CheckpointingOptions;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.RestartStrategyOptions;
import org.apache.flink.configuration.TaskManagerOptions;
import org.apache.flink.runtime.jobmaster.JobResult;
import org.apache.flink.runtime.minicluster.MiniCluster;
import org.apache.flink.runtime.minicluster.MiniClusterConfiguration;
import org.apache.flink.streaming.api.TimeDomain;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.util.Collector;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Timers in RocksDB (issue 17): with {@code state.backend.rocksdb.timer-service.factory: ROCKSDB},
 * a job holding {@link #TIMERS} event-time timers on NativeRocksDBBackend keeps the JVM heap flat,
 * the timers pass through a checkpoint, and each fires exactly once, in timestamp order, when the
 * final watermark comes. The same program with {@code HEAP} and {@link #CONTROL_TIMERS} timers is
 * the control: the measurement sees Flink's heap timers.
 *
 * <p>Each run is a JVM of its own ({@link Timers#main}) with a fixed heap, so that the used heap
 * after a full GC measures what the timers keep, not what earlier tests left.
 */
class TimersInRocksDBMiniClusterTest {
    static final long TIMERS = 10_000_000;

    /** 98 MiB on the heap with HEAP (measured), well above the bound; about 25 s. */
    static final long CONTROL_TIMERS = 1_000_000;

    /** Timers per key: 1M keys at 10M timers. */
    static final int TIMERS_PER_KEY = 10;

    /**
     * Used heap growth allowed with 10M RocksDB timers. Measured: the measurement's noise is under
     * 0.3 MiB (10 timers), a heap timer takes about 98 bytes (10M: 945 MiB). The bound is what
     * about 650k heap timers take, 6 bytes a RocksDB timer: room for Flink-style caches of the
     * timer queues (128 per key group, 128 key groups: about 2 MiB), not for the timers.
     */
    static final long BOUND_BYTES = 64L << 20;

    /** The forked JVM's heap: comfortable for a MiniCluster, far too small for 10M heap timers. */
    static final String HEAP = "512m";

    @Test
    void tenMillionRocksDBTimersKeepTheHeapFlatAndFireOnce(@TempDir Path dir) throws Exception {
        Map<String, Long> result = run(dir, "ROCKSDB", TIMERS);
        assertFiredExactlyOnce(result, TIMERS);
        assertThat(result.get("heapGrowth"))
                .as("used heap growth with %d RocksDB timers", TIMERS)
                .isLessThanOrEqualTo(BOUND_BYTES);
        assertThat(result.get("heapGrowthAfterCheckpoint"))
                .as("used heap growth after a checkpoint of %d RocksDB timers", TIMERS)
                .isLessThanOrEqualTo(BOUND_BYTES);
    }

    @Test
    void heapTimersShowInTheMeasurement(@TempDir Path dir) throws Exception {
        Map<String, Long> result = run(dir, "HEAP", CONTROL_TIMERS);
        assertFiredExactlyOnce(result, CONTROL_TIMERS);
        // The measurement can see timers on the heap: a tenth of the timers exceed the bound.
        assertThat(result.get("heapGrowth")).isGreaterThan(BOUND_BYTES);
    }

    private static void assertFiredExactlyOnce(Map<String, Long> result, long timers) {
        assertThat(result.get("registered")).isEqualTo(timers);
        assertThat(result.get("fired")).isEqualTo(timers);
        // None fired while the watermark was held back.
        assertThat(result.get("early")).isZero();
        assertThat(result.get("wrongKey")).isZero();
        // Strictly increasing, within 1..timers, as many as registered: each timestamp once.
        assertThat(result.get("outOfOrder")).isZero();
        assertThat(result.get("firstFired")).isEqualTo(1);
        assertThat(result.get("lastFired")).isEqualTo(timers);
        // Order-independent too: duplicates and losses show even if the order were wrong.
        assertThat(result.get("firedChecksum")).isEqualTo(result.get("registeredChecksum"));
    }

    /** Runs {@link Timers} in a JVM of its own; its {@code result} line, by name. */
    private static Map<String, Long> run(Path dir, String factory, long timers) throws Exception {
        List<String> command =
                ForkedJvm.command(
                        // 10M heap timers do not fit: fail at once rather than collect for minutes.
                        List.of(
                                "-Xms" + HEAP,
                                "-Xmx" + HEAP,
                                "-XX:+UseG1GC",
                                "-XX:+ExitOnOutOfMemoryError"),
                        Timers.class,
                        dir.toString(),
                        factory,
                        Long.toString(timers));
        Path output = dir.resolve("output.txt");
        Process process =
                new ProcessBuilder(command)
                        .redirectErrorStream(true)
                        .redirectOutput(output.toFile())
                        .start();
        if (!process.waitFor(5, TimeUnit.MINUTES)) {
            process.destroyForcibly();
            throw new AssertionError("the timers run did not finish in 5 minutes");
        }
        List<String> lines = Files.readAllLines(output);
        String tail =
                String.join("\n", lines.subList(Math.max(0, lines.size() - 40), lines.size()));
        assertThat(process.exitValue())
                .as("the %s timers run's exit code; its output ends with:%n%s", factory, tail)
                .isZero();
        String last = lines.isEmpty() ? "" : lines.get(lines.size() - 1);
        assertThat(last).as("the last line of:%n%s", tail).startsWith("result ");
        System.out.println(factory + " " + timers + " timers: " + last);
        Map<String, Long> result = new LinkedHashMap<>();
        for (String field : last.substring("result ".length()).trim().split(" ")) {
            String[] pair = field.split("=");
            result.put(pair[0], Long.parseLong(pair[1]));
        }
        return result;
    }

    /**
     * One measured run: a MiniCluster with one slot; the job waits in its source until the baseline
     * is taken, registers all timers under a held-back watermark, and the used heap is measured
     * after full GCs; then a checkpoint, a second measurement, and the source finishes so that the
     * final watermark fires every timer. Prints {@code result name=value ...}.
     */
    public static final class Timers {
        public static void main(String[] args) throws Exception {
            Path dir = Paths.get(args[0]);
            String factory = args[1];
            long timers = Long.parseLong(args[2]);
            Files.createDirectories(dir.resolve("tmp"));
            Configuration config = new Configuration();
            config.set(TaskManagerOptions.NUM_TASK_SLOTS, 1);
            config.setString("io.tmp.dirs", dir.resolve("tmp").toString());
            // A failure (OOM in a task) must end the run, not restart it.
            config.set(RestartStrategyOptions.RESTART_STRATEGY, "none");
            MiniClusterConfiguration cluster =
                    new MiniClusterConfiguration.Builder()
                            .setConfiguration(config)
                            .setNumTaskManagers(1)
                            .setNumSlotsPerTaskManager(1)
                            .build();
            Map<String, Long> result = new LinkedHashMap<>();
            try (MiniCluster mini = new MiniCluster(cluster)) {
                mini.start();
                long t0 = System.nanoTime();
                JobID job = mini.submitJob(jobGraph(dir, factory, timers)).get().getJobID();
                waitFor(mini, job, () -> READY.get() && OPENED.get(), "the job to start");
                long baseline = usedHeapAfterGc();
                long t1 = System.nanoTime();
                GO.set(true);
                waitFor(mini, job, () -> REGISTERED.get() >= timers, "timers to be registered");
                long t2 = System.nanoTime();
                long registered = usedHeapAfterGc();
                long t3 = System.nanoTime();
                mini.triggerCheckpoint(job).get(5, TimeUnit.MINUTES);
                long t4 = System.nanoTime();
                long checkpointed = usedHeapAfterGc();
                RELEASED.set(true);
                JobResult done = mini.requestJobResult(job).get(5, TimeUnit.MINUTES);
                long t5 = System.nanoTime();
                if (done.getSerializedThrowable().isPresent()) {
                    throw new AssertionError(
                            "the job failed",
                            done.getSerializedThrowable()
                                    .get()
                                    .deserializeError(Timers.class.getClassLoader()));
                }
                result.put("registered", REGISTERED.get());
                result.put("fired", FIRED.get());
                result.put("early", EARLY.get());
                result.put("wrongKey", WRONG_KEY.get());
                result.put("outOfOrder", OUT_OF_ORDER.get());
                result.put("firstFired", FIRST_FIRED.get());
                result.put("lastFired", LAST_FIRED.get());
                result.put("registeredChecksum", REGISTERED_CHECKSUM.get());
                result.put("firedChecksum", FIRED_CHECKSUM.get());
                result.put("baselineHeap", baseline);
                result.put("heapGrowth", registered - baseline);
                result.put("heapGrowthAfterCheckpoint", checkpointed - baseline);
                result.put("checkpointBytes", sizeOf(dir.resolve("checkpoints")));
                result.put("startMillis", (t1 - t0) / 1_000_000);
                result.put("registerMillis", (t2 - t1) / 1_000_000);
                result.put("checkpointMillis", (t4 - t3) / 1_000_000);
                result.put("fireMillis", (t5 - t4) / 1_000_000);
            }
            StringBuilder line = new StringBuilder("result");
            result.forEach((k, v) -> line.append(' ').append(k).append('=').append(v));
            System.out.println(line);
            System.exit(0);
        }

        private static org.apache.flink.runtime.jobgraph.JobGraph jobGraph(
                Path dir, String factory, long timers) {
            Configuration jobConfig = new Configuration();
            // Checkpoints only when triggered; none is needed for the tasks to finish.
            jobConfig.set(CheckpointingOptions.CHECKPOINTING_INTERVAL, Duration.ofDays(1));
            jobConfig.set(CheckpointingOptions.ENABLE_CHECKPOINTS_AFTER_TASKS_FINISH, false);
            StreamExecutionEnvironment env =
                    StreamExecutionEnvironment.getExecutionEnvironment(jobConfig);
            env.setParallelism(1);
            env.getCheckpointConfig().setMinPauseBetweenCheckpoints(Duration.ofDays(1).toMillis());
            TestJobs.setStateBackend(
                    env,
                    new NativeRocksDBBackend(dir.resolve("checkpoints").toUri().toString())
                            .setRocksDBOption(
                                    "state.backend.rocksdb.timer-service.factory", factory));
            long keys = Math.max(1, timers / TIMERS_PER_KEY);
            env.addSource(new HeldBackSource(timers))
                    .keyBy(i -> i % keys, Types.LONG)
                    .process(new OneTimerPerRecord(timers, keys))
                    .addSink(new DiscardingTestSink<>());
            return env.getStreamGraph().getJobGraph();
        }

        /** Polls {@code condition}; fails if the job ends first or after 5 minutes. */
        private static void waitFor(
                MiniCluster mini,
                JobID job,
                java.util.function.BooleanSupplier condition,
                String what)
                throws Exception {
            long deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(5);
            long nextReport = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
            while (!condition.getAsBoolean()) {
                if (System.nanoTime() > nextReport) {
                    // Shows how far a run got if it runs out of heap or time.
                    System.out.printf(
                            "waiting for %s: %d registered, %d MiB heap used%n",
                            what,
                            REGISTERED.get(),
                            ManagementFactory.getMemoryMXBean().getHeapMemoryUsage().getUsed()
                                    >> 20);
                    nextReport += TimeUnit.SECONDS.toNanos(5);
                }
                JobStatus status = mini.getJobStatus(job).get();
                if (status.isGloballyTerminalState()) {
                    JobResult result = mini.requestJobResult(job).get();
                    throw new AssertionError(
                            "the job ended (" + status + ") while waiting for " + what,
                            result.getSerializedThrowable()
                                    .map(t -> t.deserializeError(Timers.class.getClassLoader()))
                                    .orElse(null));
                }
                if (System.nanoTime() > deadline) {
                    throw new AssertionError("timed out waiting for " + what);
                }
                Thread.sleep(20);
            }
        }

        /** Used heap after full GCs: what is reachable, not garbage not yet collected. */
        private static long usedHeapAfterGc() throws InterruptedException {
            long used = Long.MAX_VALUE;
            for (int i = 0; i < 4; i++) {
                System.gc();
                Thread.sleep(50);
                used =
                        Math.min(
                                used,
                                ManagementFactory.getMemoryMXBean().getHeapMemoryUsage().getUsed());
            }
            return used;
        }

        private static long sizeOf(Path dir) throws Exception {
            if (!Files.exists(dir)) {
                return 0;
            }
            try (Stream<Path> files = Files.walk(dir)) {
                return files.filter(Files::isRegularFile).mapToLong(p -> p.toFile().length()).sum();
            }
        }
    }

    // Shared by the forked JVM's main thread and the tasks of its MiniCluster (one class loader).
    static final AtomicLong REGISTERED = new AtomicLong();
    static final AtomicLong REGISTERED_CHECKSUM = new AtomicLong();
    static final AtomicLong FIRED = new AtomicLong();
    static final AtomicLong FIRED_CHECKSUM = new AtomicLong();
    static final AtomicLong EARLY = new AtomicLong();
    static final AtomicLong WRONG_KEY = new AtomicLong();
    static final AtomicLong OUT_OF_ORDER = new AtomicLong();
    static final AtomicLong FIRST_FIRED = new AtomicLong(-1);
    static final AtomicLong LAST_FIRED = new AtomicLong(Long.MIN_VALUE);
    static final AtomicBoolean OPENED = new AtomicBoolean();
    static final AtomicBoolean READY = new AtomicBoolean();
    static final AtomicBoolean GO = new AtomicBoolean();
    static final AtomicBoolean RELEASED = new AtomicBoolean();

    /**
     * Record {@code i} is timer {@code i}: key {@code i % keys}, timestamp {@code 1 + i * STRIDE %
     * timers}. STRIDE is coprime with the count, so the timestamps are 1..timers, each once, in an
     * order far from sorted; the key of a timestamp is known by the inverse stride.
     */
    static final long STRIDE = 1_234_567;

    /** A mixing hash of a timer: sums of it differ when a timer is lost or doubled. */
    static long mix(long key, long timestamp) {
        long z = key * 0x9E3779B97F4A7C15L + timestamp;
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    /**
     * Emits the timers' records with their timestamps and no watermark, once the baseline is taken;
     * returns (so that the final watermark goes out) only when released.
     */
    @SuppressWarnings("deprecation")
    static final class HeldBackSource implements TestSource<Long> {
        private final long timers;
        private volatile boolean running = true;

        HeldBackSource(long timers) {
            this.timers = timers;
        }

        @Override
        public void run(SourceContext<Long> ctx) throws Exception {
            READY.set(true);
            while (running && !GO.get()) {
                Thread.sleep(5);
            }
            long i = 0;
            while (running && i < timers) {
                // Batches under the lock: checkpoints may come in between.
                synchronized (ctx.getCheckpointLock()) {
                    for (long end = Math.min(timers, i + 1000); i < end; i++) {
                        ctx.collectWithTimestamp(i, 1 + i * STRIDE % timers);
                    }
                }
            }
            while (running && !RELEASED.get()) {
                Thread.sleep(5);
            }
        }

        @Override
        public void cancel() {
            running = false;
        }
    }

    /** One event-time timer per record, at its timestamp; checks each firing. */
    static final class OneTimerPerRecord extends KeyedProcessFunction<Long, Long, Long> {
        private final long timers;
        private final long keys;
        private final long inverseStride;

        OneTimerPerRecord(long timers, long keys) {
            // Products of two numbers below timers must fit in a long.
            if (timers > 3_000_000_000L) {
                throw new IllegalArgumentException("too many timers: " + timers);
            }
            this.timers = timers;
            this.keys = keys;
            this.inverseStride =
                    BigInteger.valueOf(STRIDE % timers)
                            .modInverse(BigInteger.valueOf(timers))
                            .longValueExact();
        }

        @Override
        public void open(org.apache.flink.api.common.functions.OpenContext ctx) {
            OPENED.set(true);
        }

        @Override
        public void processElement(Long i, Context ctx, Collector<Long> out) throws Exception {
            long timestamp = ctx.timestamp();
            ctx.timerService().registerEventTimeTimer(timestamp);
            REGISTERED_CHECKSUM.addAndGet(mix(ctx.getCurrentKey(), timestamp));
            REGISTERED.incrementAndGet();
        }

        @Override
        public void onTimer(long timestamp, OnTimerContext ctx, Collector<Long> out) {
            long key = ctx.getCurrentKey();
            if (!RELEASED.get() || ctx.timeDomain() != TimeDomain.EVENT_TIME) {
                EARLY.incrementAndGet();
            }
            // The record that registered it: (timestamp - 1) / STRIDE modulo timers.
            if (timestamp < 1
                    || timestamp > timers
                    || key != (timestamp - 1) * inverseStride % timers % keys) {
                WRONG_KEY.incrementAndGet();
            }
            if (timestamp <= LAST_FIRED.get()) {
                OUT_OF_ORDER.incrementAndGet();
            }
            FIRST_FIRED.compareAndSet(-1, timestamp);
            LAST_FIRED.set(timestamp);
            FIRED_CHECKSUM.addAndGet(mix(key, timestamp));
            FIRED.incrementAndGet();
        }
    }
}
