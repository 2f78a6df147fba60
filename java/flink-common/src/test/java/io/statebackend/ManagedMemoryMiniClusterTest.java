package io.statebackend;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.MemorySize;
import org.apache.flink.configuration.TaskManagerOptions;
import org.apache.flink.runtime.minicluster.MiniCluster;
import org.apache.flink.runtime.minicluster.MiniClusterConfiguration;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.util.Collector;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * NativeRocksDBBackend inside Flink's managed memory: a job whose two keyed operators share one
 * slot writes about three times the slot's managed memory of state (1 KiB random values), and the
 * process's native memory (anonymous resident memory, in a JVM whose heap is committed and touched
 * up front, so that heap growth does not show) must grow by no more than the slot's managed memory
 * and a fixed allowance for what RocksDB does not charge to its cache. The same job with {@code
 * state.backend.rocksdb.memory.managed: false} is measured too, to show what the bound holds back.
 *
 * <p>Each run is a JVM of its own ({@link Footprint#main}), as FootprintBenchmark measures.
 */
class ManagedMemoryMiniClusterTest {
    /** The slot's managed memory: Flink's default budget for one slot of a small TaskManager. */
    static final MemorySize MANAGED = MemorySize.ofMebiBytes(128);

    /**
     * What RocksDB allocates outside its cache (table readers, compaction and flush buffers,
     * iterators), the writer's sorted copy of a run, thread stacks and arenas: fixed, whatever the
     * amount of state.
     */
    static final MemorySize ALLOWANCE = MemorySize.ofMebiBytes(96);

    static final int KEYS = 200_000;
    static final int VALUE_BYTES = 1024;

    @Test
    void twoOperatorsOfASlotStayWithinItsManagedMemory(@TempDir Path dir) throws Exception {
        long managed = run(dir.resolve("managed"), true);
        long unmanaged = run(dir.resolve("unmanaged"), false);
        System.out.printf(
                "native memory growth: %d MiB with managed memory (budget %d MiB + %d MiB"
                        + " allowance), %d MiB without%n",
                managed >> 20, MANAGED.getMebiBytes(), ALLOWANCE.getMebiBytes(), unmanaged >> 20);
        assertThat(managed)
                .as("native memory growth with a %s managed budget", MANAGED)
                .isLessThanOrEqualTo(MANAGED.getBytes() + ALLOWANCE.getBytes());
        // The measurement can see more than the bound: without it, the same job takes more.
        assertThat(unmanaged).isGreaterThan(MANAGED.getBytes() + ALLOWANCE.getBytes());
    }

    /** Runs {@link Footprint} in a JVM of its own; its native memory growth in bytes. */
    private static long run(Path dir, boolean managed) throws Exception {
        Files.createDirectories(dir);
        List<String> command =
                ForkedJvm.command(
                        List.of("-Xms512m", "-Xmx512m", "-XX:+AlwaysPreTouch"),
                        Footprint.class,
                        dir.toString(),
                        Boolean.toString(managed));
        Process process =
                new ProcessBuilder(command)
                        .redirectErrorStream(true)
                        .redirectOutput(dir.resolve("output.txt").toFile())
                        .start();
        if (!process.waitFor(5, TimeUnit.MINUTES)) {
            process.destroyForcibly();
            throw new AssertionError("the footprint run did not finish in 5 minutes");
        }
        List<String> output = Files.readAllLines(dir.resolve("output.txt"));
        String last = output.isEmpty() ? "" : output.get(output.size() - 1);
        assertThat(process.exitValue())
                .as(
                        "the footprint run's exit code; its output ends with:%n%s",
                        String.join(
                                "\n",
                                output.subList(Math.max(0, output.size() - 40), output.size())))
                .isZero();
        assertThat(last).startsWith("growth ");
        return Long.parseLong(last.substring("growth ".length()).trim());
    }

    /**
     * One measured run: a MiniCluster with one slot of {@link #MANAGED} managed memory; a warm-up
     * job on Flink's HashMapStateBackend (Flink's code loaded and compiled, threads started); the
     * baseline; then the job on NativeRocksDBBackend, sampling the anonymous resident memory
     * (RssAnon) every 100 ms. Prints {@code growth <bytes>}: the peak over the baseline.
     */
    public static final class Footprint {
        public static void main(String[] args) throws Exception {
            Path dir = Paths.get(args[0]);
            boolean managed = Boolean.parseBoolean(args[1]);
            Configuration config = new Configuration();
            config.set(TaskManagerOptions.MANAGED_MEMORY_SIZE, MANAGED);
            config.set(TaskManagerOptions.NUM_TASK_SLOTS, 1);
            config.setString("io.tmp.dirs", dir.resolve("tmp").toString());
            Files.createDirectories(dir.resolve("tmp"));
            MiniClusterConfiguration cluster =
                    new MiniClusterConfiguration.Builder()
                            .setConfiguration(config)
                            .setNumTaskManagers(1)
                            .setNumSlotsPerTaskManager(1)
                            .build();
            try (MiniCluster mini = new MiniCluster(cluster)) {
                mini.start();
                run(mini, dir, null, KEYS / 10);
                long baseline = rssAnon();
                AtomicLong peak = new AtomicLong(baseline);
                Thread sampler =
                        new Thread(
                                () -> {
                                    while (!Thread.currentThread().isInterrupted()) {
                                        try {
                                            peak.accumulateAndGet(rssAnon(), Math::max);
                                            Thread.sleep(100);
                                        } catch (InterruptedException e) {
                                            return;
                                        } catch (IOException e) {
                                            throw new IllegalStateException(e);
                                        }
                                    }
                                });
                sampler.setDaemon(true);
                sampler.start();
                NativeRocksDBBackend backend =
                        new NativeRocksDBBackend(dir.resolve("checkpoints").toUri().toString());
                backend.setRocksDBOption(
                        "state.backend.rocksdb.memory.managed", Boolean.toString(managed));
                run(mini, dir, backend, KEYS);
                peak.accumulateAndGet(rssAnon(), Math::max);
                sampler.interrupt();
                System.out.println("growth " + Math.max(0, peak.get() - baseline));
            }
            System.exit(0);
        }

        /** Two keyed operators (one slot), each keeping a 1 KiB random value per key. */
        private static void run(MiniCluster mini, Path dir, NativeRocksDBBackend backend, int keys)
                throws Exception {
            StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
            env.setParallelism(1);
            if (backend != null) {
                TestJobs.setStateBackend(env, backend);
            } else {
                TestJobs.setStateBackend(
                        env, new org.apache.flink.runtime.state.hashmap.HashMapStateBackend());
            }
            env.fromSequence(0, keys - 1)
                    .keyBy(i -> i, Types.LONG)
                    .process(new Keep(1))
                    .keyBy(i -> i * 31 % keys, Types.LONG)
                    .process(new Keep(2))
                    .addSink(new DiscardingTestSink<>());
            mini.executeJobBlocking(env.getStreamGraph().getJobGraph());
        }

        private static long rssAnon() throws IOException {
            try (BufferedReader in =
                    new BufferedReader(
                            new InputStreamReader(
                                    Files.newInputStream(Paths.get("/proc/self/status")),
                                    StandardCharsets.US_ASCII))) {
                String line;
                while ((line = in.readLine()) != null) {
                    if (line.startsWith("RssAnon:")) {
                        return Long.parseLong(line.replaceAll("[^0-9]", "")) << 10;
                    }
                }
            }
            throw new IOException("no RssAnon in /proc/self/status");
        }
    }

    /** Keeps a random 1 KiB value per key (incompressible: RocksDB stores all of it). */
    static final class Keep extends KeyedProcessFunction<Long, Long, Long> {
        private final int salt;
        private transient ValueState<byte[]> value;

        Keep(int salt) {
            this.salt = salt;
        }

        @Override
        public void open(org.apache.flink.api.common.functions.OpenContext ctx) {
            value = getRuntimeContext().getState(new ValueStateDescriptor<>("value", byte[].class));
        }

        @Override
        public void processElement(Long i, Context ctx, Collector<Long> out) throws Exception {
            byte[] bytes = new byte[VALUE_BYTES];
            new Random(i * 1_000_003 + salt).nextBytes(bytes);
            value.update(bytes);
            out.collect(i);
        }
    }
}
