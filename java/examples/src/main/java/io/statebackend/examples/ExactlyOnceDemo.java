package io.statebackend.examples;

import io.statebackend.NativeRocksDBBackend;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.CodeSource;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.apache.flink.api.common.JobExecutionResult;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.CheckpointListener;
import org.apache.flink.api.common.state.ListState;
import org.apache.flink.api.common.state.ListStateDescriptor;
import org.apache.flink.api.common.state.MapState;
import org.apache.flink.api.common.state.MapStateDescriptor;
import org.apache.flink.api.common.state.ReducingState;
import org.apache.flink.api.common.state.ReducingStateDescriptor;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.connector.source.util.ratelimit.RateLimiterStrategy;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.RestartStrategyOptions;
import org.apache.flink.connector.datagen.source.DataGeneratorSource;
import org.apache.flink.runtime.state.FunctionInitializationContext;
import org.apache.flink.runtime.state.FunctionSnapshotContext;
import org.apache.flink.runtime.util.EnvironmentInformation;
import org.apache.flink.streaming.api.checkpoint.CheckpointedFunction;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.util.Collector;

/**
 * Exactly-once recovery with {@link NativeRocksDBBackend}: a keyed Flink job fails once after a
 * checkpoint, Flink restarts it from that checkpoint, and its committed output is checked against
 * the result of a run without failure.
 *
 * <p>The job runs on an embedded MiniCluster (parallelism 2, max parallelism 128) with checkpoints
 * every 200 ms to {@code file://} in a temporary directory:
 *
 * <ul>
 *   <li>a {@link DataGeneratorSource} (FLIP-27) emits the numbers 0 to 5,999, at most 500 per
 *       completed checkpoint, so checkpoints complete while the job runs;
 *   <li>{@link KeyStatistics}, keyed by {@code n % 20}, keeps per key a count (value state), the
 *       numbers (list state), a histogram of {@code n % 7} (map state), their sum and maximum
 *       (reducing state), and emits them every 10 numbers of the key: 600 records;
 *   <li>{@link CommittedFileSink} commits the records of each checkpoint when it completes.
 * </ul>
 *
 * <p>From number 3,250 on, once a checkpoint has completed, the job throws once. Flink's restart
 * strategy restarts it from the latest completed checkpoint: keyed state comes back from the native
 * backend, the source resumes at its checkpointed position, the records written since the
 * checkpoint stay uncommitted and their replays are committed. {@link #main} then reads the
 * committed output: it must hold each of the 600 records computed here in plain Java, once, and
 * every record left uncommitted must be among them. It returns normally if so and throws otherwise;
 * either way it deletes the temporary directory. {@code scripts/demo} builds and runs it.
 */
public final class ExactlyOnceDemo {
    static final int EVENTS = 6000;
    static final int KEYS = 20;

    /** A key emits its statistics every this many of its numbers. */
    static final int EMIT_EVERY = 10;

    /** The source emits at most this many numbers per completed checkpoint. */
    static final int NUMBERS_PER_CHECKPOINT = 500;

    /** The failure comes at the first number from here on after a completed checkpoint. */
    static final long FAIL_AT = 3250;

    private static final String FAILURE_MARKER = "failure-injected";
    private static final String RESTORE_MARKER = "restored-from";
    private static final String STATE_CLASS_MARKER = "state-class";

    private ExactlyOnceDemo() {}

    public static void main(String[] args) throws Exception {
        Path work = Files.createTempDirectory("statebackend-demo-");
        try {
            run(work);
        } finally {
            deleteRecursively(work);
        }
    }

    private static void run(Path work) throws Exception {
        Path checkpoints = Files.createDirectory(work.resolve("checkpoints"));
        Path staging = Files.createDirectory(work.resolve("staging"));
        Path output = Files.createDirectory(work.resolve("output"));

        Configuration conf = new Configuration();
        conf.set(RestartStrategyOptions.RESTART_STRATEGY, "fixed-delay");
        conf.set(RestartStrategyOptions.RESTART_STRATEGY_FIXED_DELAY_ATTEMPTS, 3);
        conf.set(RestartStrategyOptions.RESTART_STRATEGY_FIXED_DELAY_DELAY, Duration.ofMillis(100));
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(conf);
        env.setParallelism(2);
        env.setMaxParallelism(128);
        env.enableCheckpointing(200);
        // Flink 1.20: env.setStateBackend(backend), as 1.20 jobs choose a backend in code;
        // Flink 2.x, which has no setStateBackend: env.configure(backend.toConfiguration()),
        // that is state.backend.type: io.statebackend.NativeRocksDBBackendFactory and the
        // checkpoint directory. FlinkLine has the line's variant (src/flink-<line>/java).
        FlinkLine.chooseBackend(env, new NativeRocksDBBackend(checkpoints.toUri().toString()));

        DataGeneratorSource<Long> numbers =
                new DataGeneratorSource<>(
                        n -> n,
                        EVENTS,
                        RateLimiterStrategy.perCheckpoint(NUMBERS_PER_CHECKPOINT),
                        Types.LONG);
        // One source subtask: each key sees its numbers in order, so every record is determined.
        env.fromSource(numbers, WatermarkStrategy.noWatermarks(), "numbers 0-" + (EVENTS - 1))
                .setParallelism(1)
                .keyBy(n -> (int) (n % KEYS))
                .process(new KeyStatistics(work.toString()))
                .name("key statistics")
                .sinkTo(new CommittedFileSink(staging, output))
                .name("committed files");

        System.out.println(
                "== job: numbers 0-"
                        + (EVENTS - 1)
                        + " keyed by n % "
                        + KEYS
                        + ", parallelism 2 (max 128), NativeRocksDBBackend");
        System.out.println(
                "   on Flink "
                        + EnvironmentInformation.getVersion()
                        + ", the backend chosen "
                        + FlinkLine.HOW_BACKEND_IS_CHOSEN);
        System.out.println("   checkpoints every 200 ms to " + checkpoints.toUri());
        long start = System.nanoTime();
        JobExecutionResult result = env.execute("libstatebackend exactly-once demo");
        long millis = (System.nanoTime() - start) / 1_000_000;

        String failure = readMarker(work.resolve(FAILURE_MARKER));
        String restoredFrom = readMarker(work.resolve(RESTORE_MARKER));
        String stateClass = readMarker(work.resolve(STATE_CLASS_MARKER));
        System.out.println("   failure injected: " + (failure == null ? "none" : failure));
        System.out.println(
                "   Flink restarted the job from "
                        + (restoredFrom == null ? "no checkpoint" : restoredFrom)
                        + ": keyed state restored by NativeRocksDBBackend, source rewound to"
                        + " its checkpointed position");
        System.out.println("   the job's value state: " + stateClass);
        System.out.println(
                "   job finished in " + millis + " ms (job id " + result.getJobID() + ")");

        Map<String, Integer> committed = countLines(output);
        Map<String, Integer> uncommitted = countLines(staging);
        int committedRecords = committed.values().stream().mapToInt(Integer::intValue).sum();
        int uncommittedRecords = uncommitted.values().stream().mapToInt(Integer::intValue).sum();
        System.out.println(
                "   output: "
                        + committedRecords
                        + " records committed in "
                        + fileCount(output)
                        + " files; "
                        + uncommittedRecords
                        + " more, written by the failed attempt after its last completed"
                        + " checkpoint, stayed uncommitted");

        List<String> expected = expectedOutput();
        Set<String> expectedSet = new HashSet<>(expected);
        List<String> problems = new ArrayList<>();
        if (stateClass == null || !stateClass.startsWith("io.statebackend.")) {
            problems.add("the keyed state was not the native backend's: " + stateClass);
        }
        if (failure == null) {
            problems.add("no failure was injected");
        }
        if (restoredFrom == null) {
            problems.add("the job was not restored from a checkpoint");
        }
        List<String> duplicates =
                committed.entrySet().stream()
                        .filter(e -> e.getValue() > 1)
                        .map(e -> e.getValue() + "x " + e.getKey())
                        .collect(Collectors.toList());
        List<String> missing =
                expected.stream()
                        .filter(r -> !committed.containsKey(r))
                        .collect(Collectors.toList());
        List<String> unexpected =
                committed.keySet().stream()
                        .filter(r -> !expectedSet.contains(r))
                        .collect(Collectors.toList());
        if (!duplicates.isEmpty()) {
            problems.add("committed more than once: " + firstFew(duplicates));
        }
        if (!missing.isEmpty()) {
            problems.add("missing from the output: " + firstFew(missing));
        }
        if (!unexpected.isEmpty()) {
            problems.add("not in the exactly-once result: " + firstFew(unexpected));
        }
        List<String> notReplayed =
                uncommitted.keySet().stream()
                        .filter(r -> !committed.containsKey(r))
                        .collect(Collectors.toList());
        if (!notReplayed.isEmpty()) {
            problems.add(
                    "written before the failure, not committed after it: " + firstFew(notReplayed));
        }
        if (!problems.isEmpty()) {
            throw new IllegalStateException("NOT VERIFIED: " + String.join("; ", problems));
        }
        System.out.println(
                "verified: the committed output is the exactly-once result, each of its "
                        + expected.size()
                        + " records (count, sum, list, histogram, max of "
                        + KEYS
                        + " keys every "
                        + EMIT_EVERY
                        + " numbers) once; the "
                        + uncommittedRecords
                        + " uncommitted ones were replayed and committed");
        System.out.println("   e.g. " + expected.get(expected.size() - 1));
    }

    /** What a run without failure commits: every key's statistics every EMIT_EVERY numbers. */
    static List<String> expectedOutput() {
        List<String> expected = new ArrayList<>();
        for (int key = 0; key < KEYS; key++) {
            int count = 0;
            long sum = 0;
            long max = Long.MIN_VALUE;
            Map<Integer, Integer> histogram = new TreeMap<>();
            for (long n = key; n < EVENTS; n += KEYS) {
                count++;
                sum += n;
                max = Math.max(max, n);
                histogram.merge((int) (n % 7), 1, Integer::sum);
                if (count % EMIT_EVERY == 0) {
                    expected.add(describe(key, count, sum, count, sum, histogram, max));
                }
            }
        }
        return expected;
    }

    static String describe(
            int key,
            int count,
            long sum,
            int listSize,
            long listSum,
            Map<Integer, Integer> histogram,
            long max) {
        return "key "
                + key
                + ": count="
                + count
                + " sum="
                + sum
                + " list=["
                + listSize
                + " numbers, sum "
                + listSum
                + "] histogram="
                + histogram
                + " max="
                + max;
    }

    /**
     * Keeps value, list, map and reducing state per key and emits it every {@link #EMIT_EVERY}
     * numbers of the key. Injects the demo's one failure, and notes which checkpoint the job was
     * restored from, with its size on disk, and the class of its value state, with the jar that
     * class came from (all in marker files in the demo's directory, which {@link #main} reads).
     */
    static final class KeyStatistics extends KeyedProcessFunction<Integer, Long, String>
            implements CheckpointedFunction, CheckpointListener {
        private static final long serialVersionUID = 1L;

        private final String work;
        private final String checkpoints;
        private final long failAt;
        private transient ValueState<Integer> count;
        private transient ListState<Long> numbers;
        private transient MapState<Integer, Integer> histogram;
        private transient ReducingState<Long> sum;
        private transient ReducingState<Long> max;
        private transient long lastCompletedCheckpoint;
        private transient boolean failureInjected;

        KeyStatistics(String work) {
            this(work, Path.of(work, "checkpoints").toString(), FAIL_AT);
        }

        /**
         * Marker files go to {@code work}; the restored checkpoint is looked up under {@code
         * checkpoints} (the checkpoint directory, without the job id); the failure is injected at
         * the first number from {@code failAt} on after a completed checkpoint ({@link
         * Long#MAX_VALUE}: never).
         */
        KeyStatistics(String work, String checkpoints, long failAt) {
            this.work = work;
            this.checkpoints = checkpoints;
            this.failAt = failAt;
        }

        @Override
        public void initializeState(FunctionInitializationContext context) throws IOException {
            if (context.getRestoredCheckpointId().isPresent()) {
                long id = context.getRestoredCheckpointId().getAsLong();
                String jobId = getRuntimeContext().getJobInfo().getJobId().toString();
                long[] size = sizeOf(Path.of(checkpoints, jobId, "chk-" + id));
                createOnce(
                        Path.of(work, RESTORE_MARKER),
                        "checkpoint " + id + " (" + size[0] + " files, " + size[1] + " bytes)");
            }
        }

        @Override
        public void snapshotState(FunctionSnapshotContext context) {
            // The keyed state below is snapshotted by the state backend; nothing else to keep.
        }

        @Override
        public void open(OpenContext openContext) throws IOException {
            count = getRuntimeContext().getState(new ValueStateDescriptor<>("count", Types.INT));
            numbers =
                    getRuntimeContext()
                            .getListState(new ListStateDescriptor<>("numbers", Types.LONG));
            histogram =
                    getRuntimeContext()
                            .getMapState(
                                    new MapStateDescriptor<>("histogram", Types.INT, Types.INT));
            sum =
                    getRuntimeContext()
                            .getReducingState(
                                    new ReducingStateDescriptor<>("sum", Long::sum, Types.LONG));
            max =
                    getRuntimeContext()
                            .getReducingState(
                                    new ReducingStateDescriptor<>("max", Math::max, Types.LONG));
            createOnce(Path.of(work, STATE_CLASS_MARKER), classAndOrigin(count));
        }

        @Override
        public void processElement(Long n, Context ctx, Collector<String> out) throws Exception {
            if (n >= failAt && lastCompletedCheckpoint > 0 && !failureInjected) {
                injectFailureOnce(n);
            }
            int c = count.value() == null ? 1 : count.value() + 1;
            count.update(c);
            numbers.add(n);
            Integer h = histogram.get((int) (n % 7));
            histogram.put((int) (n % 7), h == null ? 1 : h + 1);
            sum.add(n);
            max.add(n);
            if (c % EMIT_EVERY == 0) {
                int listSize = 0;
                long listSum = 0;
                for (long e : numbers.get()) {
                    listSize++;
                    listSum += e;
                }
                Map<Integer, Integer> hist = new TreeMap<>();
                for (Map.Entry<Integer, Integer> e : histogram.entries()) {
                    hist.put(e.getKey(), e.getValue());
                }
                out.collect(
                        describe(
                                ctx.getCurrentKey(),
                                c,
                                sum.get(),
                                listSize,
                                listSum,
                                hist,
                                max.get()));
            }
        }

        /** Throws if no failure was injected yet, in any subtask or attempt of this job. */
        private void injectFailureOnce(long n) throws IOException {
            String what =
                    "at number "
                            + n
                            + " in subtask "
                            + getRuntimeContext().getTaskInfo().getIndexOfThisSubtask()
                            + ", after checkpoint "
                            + lastCompletedCheckpoint
                            + " completed";
            failureInjected = true;
            if (createOnce(Path.of(work, FAILURE_MARKER), what)) {
                throw new RuntimeException("injected failure " + what);
            }
        }

        @Override
        public void notifyCheckpointComplete(long checkpointId) {
            lastCompletedCheckpoint = checkpointId;
        }
    }

    /** Writes {@code text} to a new file; false if the file exists already. */
    private static boolean createOnce(Path file, String text) throws IOException {
        try {
            Files.writeString(file, text, StandardOpenOption.CREATE_NEW);
            return true;
        } catch (FileAlreadyExistsException e) {
            return false;
        }
    }

    /** The class of {@code object} and the jar (or directory) it was loaded from. */
    private static String classAndOrigin(Object object) {
        CodeSource source = object.getClass().getProtectionDomain().getCodeSource();
        return object.getClass().getName()
                + " from "
                + (source == null
                        ? "the JDK"
                        : Path.of(source.getLocation().getPath()).getFileName());
    }

    private static String readMarker(Path file) throws IOException {
        return Files.exists(file) ? Files.readString(file) : null;
    }

    /** Every line of the files in {@code dir}, with how often it occurs. */
    private static Map<String, Integer> countLines(Path dir) throws IOException {
        Map<String, Integer> lines = new TreeMap<>();
        try (Stream<Path> files = Files.list(dir)) {
            for (Path file : (Iterable<Path>) files::iterator) {
                for (String line : Files.readAllLines(file, StandardCharsets.UTF_8)) {
                    lines.merge(line, 1, Integer::sum);
                }
            }
        }
        return lines;
    }

    private static long fileCount(Path dir) throws IOException {
        try (Stream<Path> files = Files.list(dir)) {
            return files.count();
        }
    }

    /** Regular files under {@code dir} and their total size. */
    private static long[] sizeOf(Path dir) throws IOException {
        long[] filesAndBytes = new long[2];
        try (Stream<Path> walk = Files.walk(dir)) {
            for (Path p : (Iterable<Path>) walk.filter(Files::isRegularFile)::iterator) {
                filesAndBytes[0]++;
                filesAndBytes[1] += Files.size(p);
            }
        }
        return filesAndBytes;
    }

    private static String firstFew(List<String> records) {
        return records.size() <= 3
                ? records.toString()
                : records.subList(0, 3) + " and " + (records.size() - 3) + " more";
    }

    /**
     * Deletes {@code dir}, trying again for a while: Flink's MiniCluster shuts down after {@code
     * execute} returns and may still discard checkpoint files meanwhile. Leaves a warning, not an
     * exception, if it cannot: the demo's result is what counts.
     */
    private static void deleteRecursively(Path dir) throws InterruptedException {
        for (int attempt = 1; ; attempt++) {
            try (Stream<Path> walk = Files.walk(dir)) {
                for (Path p : (Iterable<Path>) walk.sorted(Comparator.reverseOrder())::iterator) {
                    Files.deleteIfExists(p);
                }
                return;
            } catch (IOException | UncheckedIOException e) {
                if (!Files.exists(dir)) {
                    return;
                }
                if (attempt == 20) {
                    System.err.println("warning: could not delete " + dir + ": " + e);
                    return;
                }
            }
            Thread.sleep(100);
        }
    }
}
