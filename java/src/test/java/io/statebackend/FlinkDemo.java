package io.statebackend;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;
import org.apache.flink.api.common.JobExecutionResult;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.RestartStrategyOptions;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;

/**
 * The README's demo (scripts/demo): a keyed streaming job with value, list, map and reducing state
 * on NativeRocksDBBackend, run on Flink's embedded MiniCluster, checkpointing every 200 ms to
 * file:// in a temporary directory. A failure is injected once a checkpoint has completed; Flink
 * restarts the job from that checkpoint and the output is checked against the exactly-once result.
 * Reuses the job of {@link ExactlyOnceMiniClusterTest}.
 */
public final class FlinkDemo {
    private FlinkDemo() {}

    public static void main(String[] args) throws Exception {
        Path checkpoints = Files.createTempDirectory("statebackend-demo-");
        try {
            run(checkpoints);
        } finally {
            try (Stream<Path> walk = Files.walk(checkpoints)) {
                walk.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
        }
    }

    private static void run(Path checkpoints) throws Exception {
        Configuration conf = new Configuration();
        conf.set(RestartStrategyOptions.RESTART_STRATEGY, "fixed-delay");
        conf.set(RestartStrategyOptions.RESTART_STRATEGY_FIXED_DELAY_ATTEMPTS, 3);
        conf.set(RestartStrategyOptions.RESTART_STRATEGY_FIXED_DELAY_DELAY, Duration.ofMillis(100));
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(conf);
        env.setParallelism(2);
        env.setMaxParallelism(128);
        env.enableCheckpointing(200);
        env.setStateBackend(new NativeRocksDBBackend(checkpoints.toUri().toString()));

        env.addSource(new ExactlyOnceMiniClusterTest.CountingSource())
                .setParallelism(1)
                .keyBy(i -> (int) (i % 20))
                .process(new ExactlyOnceMiniClusterTest.StatefulFunction())
                .addSink(new ExactlyOnceMiniClusterTest.CollectSink());
        System.out.println("== job: 6000 events, 20 keys, parallelism 2, NativeRocksDBBackend");
        System.out.println("   checkpoints every 200 ms to " + checkpoints.toUri());
        long start = System.nanoTime();
        JobExecutionResult result = env.execute("libstatebackend demo");
        long millis = (System.nanoTime() - start) / 1_000_000;

        Map<Integer, String> actual = new TreeMap<>(ExactlyOnceMiniClusterTest.results);
        Map<Integer, String> expected = ExactlyOnceMiniClusterTest.expected();
        System.out.println(
                "   failure injected and recovered: " + ExactlyOnceMiniClusterTest.failed.get());
        System.out.println(
                "   job finished in "
                        + millis
                        + " ms (job id "
                        + result.getJobID()
                        + "); checkpoints completed (notifications received by the 2 subtasks): "
                        + ExactlyOnceMiniClusterTest.completedCheckpoints.get());
        long files;
        long bytes;
        try (Stream<Path> walk = Files.walk(checkpoints)) {
            long[] acc = new long[2];
            walk.filter(Files::isRegularFile)
                    .forEach(
                            p -> {
                                acc[0]++;
                                acc[1] += p.toFile().length();
                            });
            files = acc[0];
            bytes = acc[1];
        }
        System.out.println(
                "   checkpoint directory at the end: " + files + " files, " + bytes + " bytes");
        if (!ExactlyOnceMiniClusterTest.failed.get()
                || !ExactlyOnceMiniClusterTest.duplicates.isEmpty()
                || !actual.equals(expected)) {
            System.out.println("NOT VERIFIED: duplicates " + ExactlyOnceMiniClusterTest.duplicates);
            System.out.println("expected " + expected + "\nactual   " + actual);
            System.exit(1);
        }
        System.out.println(
                "verified: all 20 keys' counts, sums, lists, histograms and maxima equal the"
                        + " exactly-once result, no duplicate output");
        System.out.println("   e.g. " + actual.get(7));
        System.exit(0);
    }
}
