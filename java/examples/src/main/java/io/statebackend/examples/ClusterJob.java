package io.statebackend.examples;

import io.statebackend.NativeRocksDBBackend;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.connector.source.util.ratelimit.RateLimiterStrategy;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.RestartStrategyOptions;
import org.apache.flink.connector.datagen.source.DataGeneratorSource;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;

/**
 * The job of {@code scripts/cluster-test}: {@link ExactlyOnceDemo}'s keyed statistics (value, list,
 * map and reducing state, keyed by {@code n % 20}, a record every 10 numbers of a key) into its
 * {@link CommittedFileSink}, submitted to a Flink cluster with Flink's CLI ({@code flink run}) and
 * run there, not in this JVM. It injects no failure: the test kills the TaskManager.
 *
 * <p>Arguments, each {@code --name value}:
 *
 * <ul>
 *   <li>{@code --work DIR} (required): the job writes into {@code DIR/staging} and commits into
 *       {@code DIR/output} (created here), and notes in {@code DIR/restored-from} the checkpoint it
 *       was restored from, if any;
 *   <li>{@code --backend config|code}: {@code config} (the default) leaves the state backend to the
 *       cluster's configuration ({@code state.backend.type}); {@code code} sets {@code new
 *       NativeRocksDBBackend(checkpoints)} on the environment, so the backend object is made by the
 *       job's code and travels to the cluster inside the job graph (on Flink 2.x, which has no
 *       {@code setStateBackend}, its configuration does: see {@link FlinkLine});
 *   <li>{@code --checkpoints URI}: the checkpoint directory ({@code file:///…}; the cluster's
 *       {@code state.checkpoints.dir}), used by {@code --backend code} and to report the restored
 *       checkpoint's size;
 *   <li>{@code --events N} (6000): the source emits the numbers 0 to N-1;
 *   <li>{@code --rate R} (200): at most R numbers per second, so the job runs long enough to be
 *       interrupted;
 *   <li>{@code --parallelism P} (2) of the keyed operator and the sink (the source has one subtask,
 *       so every key sees its numbers in order and every record is determined);
 *   <li>{@code --restart-attempts A}: overrides the cluster's restart strategy with fixed-delay, A
 *       attempts 1 s apart.
 * </ul>
 *
 * <p>The expected output is computed independently by {@code tests/cluster/verify.py}.
 */
public final class ClusterJob {
    private ClusterJob() {}

    public static void main(String[] args) throws Exception {
        Map<String, String> opts = parse(args);
        Path work = Path.of(required(opts, "work")).toAbsolutePath();
        String backend = opts.getOrDefault("backend", "config");
        long events = Long.parseLong(opts.getOrDefault("events", "6000"));
        double rate = Double.parseDouble(opts.getOrDefault("rate", "200"));
        int parallelism = Integer.parseInt(opts.getOrDefault("parallelism", "2"));
        String checkpoints = opts.get("checkpoints");

        Path staging = Files.createDirectories(work.resolve("staging"));
        Path output = Files.createDirectories(work.resolve("output"));

        Configuration conf = new Configuration();
        if (opts.containsKey("restart-attempts")) {
            conf.set(RestartStrategyOptions.RESTART_STRATEGY, "fixed-delay");
            conf.set(
                    RestartStrategyOptions.RESTART_STRATEGY_FIXED_DELAY_ATTEMPTS,
                    Integer.parseInt(opts.get("restart-attempts")));
            conf.set(
                    RestartStrategyOptions.RESTART_STRATEGY_FIXED_DELAY_DELAY,
                    Duration.ofSeconds(1));
        }
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(conf);
        env.setParallelism(parallelism);
        env.setMaxParallelism(128);
        switch (backend) {
            case "config":
                break;
            case "code":
                FlinkLine.chooseBackend(
                        env, new NativeRocksDBBackend(required(opts, "checkpoints")));
                break;
            default:
                throw new IllegalArgumentException(
                        "--backend must be config or code, not " + backend);
        }

        DataGeneratorSource<Long> numbers =
                new DataGeneratorSource<>(
                        n -> n, events, RateLimiterStrategy.perSecond(rate), Types.LONG);
        String checkpointPath =
                checkpoints == null
                        ? work.resolve("checkpoints").toString()
                        : localPath(checkpoints);
        env.fromSource(numbers, WatermarkStrategy.noWatermarks(), "numbers 0-" + (events - 1))
                .setParallelism(1)
                .keyBy(n -> (int) (n % ExactlyOnceDemo.KEYS))
                .process(
                        new ExactlyOnceDemo.KeyStatistics(
                                work.toString(), checkpointPath, Long.MAX_VALUE))
                .name("key statistics")
                .sinkTo(new CommittedFileSink(staging, output))
                .name("committed files");
        env.execute(opts.getOrDefault("name", "statebackend cluster test (" + backend + ")"));
    }

    private static String localPath(String uri) {
        return uri.startsWith("file://") ? Path.of(java.net.URI.create(uri)).toString() : uri;
    }

    private static Map<String, String> parse(String[] args) {
        Map<String, String> opts = new HashMap<>();
        for (int i = 0; i < args.length; i += 2) {
            if (!args[i].startsWith("--") || i + 1 >= args.length) {
                throw new IllegalArgumentException(
                        "arguments are --name value pairs, got " + String.join(" ", args));
            }
            opts.put(args[i].substring(2), args[i + 1]);
        }
        return opts;
    }

    private static String required(Map<String, String> opts, String name) {
        String value = opts.get(name);
        if (value == null) {
            throw new IllegalArgumentException("--" + name + " is required");
        }
        return value;
    }
}
