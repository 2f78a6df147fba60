package io.statebackend;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.io.OutputStream;
import java.lang.reflect.Field;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.jar.JarEntry;
import java.util.jar.JarOutputStream;
import java.util.stream.Stream;
import javax.tools.JavaCompiler;
import javax.tools.ToolProvider;
import org.apache.flink.api.common.JobID;
import org.apache.flink.api.common.state.ListState;
import org.apache.flink.api.common.state.ListStateDescriptor;
import org.apache.flink.api.common.state.MapState;
import org.apache.flink.api.common.state.MapStateDescriptor;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.typeutils.PojoTypeInfo;
import org.apache.flink.client.program.ClusterClient;
import org.apache.flink.core.execution.SavepointFormatType;
import org.apache.flink.runtime.jobgraph.JobGraph;
import org.apache.flink.runtime.jobgraph.SavepointRestoreSettings;
import org.apache.flink.runtime.jobmaster.JobResult;
import org.apache.flink.runtime.testutils.MiniClusterResourceConfiguration;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.test.junit5.InjectClusterClient;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.apache.flink.util.Collector;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * State schema evolution on each native backend, as a user meets it: a job keeps a POJO in value,
 * list and map state; it is stopped with a savepoint (canonical and native); the POJO class gains a
 * field (a second job jar with the new class, loaded by Flink's user-code class loader as in a real
 * deployment); the job resumes from the savepoint. Flink's POJO serializer says "compatible after
 * migration", so the backend rewrites every value, list element and map value with the new
 * serializer: the restored values read the new field's default, and values written afterwards carry
 * it.
 */
class SchemaEvolutionMiniClusterTest {
    private static final String POJO = "io.statebackend.evolution.Tally";
    private static final int KEYS = 10;
    private static final long PER_PHASE = 300;

    @RegisterExtension
    static final MiniClusterExtension CLUSTER =
            new MiniClusterExtension(
                    new MiniClusterResourceConfiguration.Builder()
                            .setNumberTaskManagers(1)
                            .setNumberSlotsPerTaskManager(2)
                            .build());

    static final AtomicLong processed = new AtomicLong();
    static final Map<String, String> lines = new ConcurrentHashMap<>();

    static Stream<Object[]> cases() {
        return Stream.of("memory", "fs", "rocksdb")
                .flatMap(
                        b ->
                                Stream.of(SavepointFormatType.CANONICAL, SavepointFormatType.NATIVE)
                                        .map(f -> new Object[] {b, f}));
    }

    @ParameterizedTest(name = "{0}, {1} savepoint")
    @MethodSource("cases")
    void pojoGainsAField(
            String backend,
            SavepointFormatType format,
            @InjectClusterClient ClusterClient<?> client,
            @org.junit.jupiter.api.io.TempDir Path dir)
            throws Exception {
        Path v1 = pojoJar(dir.resolve("v1"), "");
        Path v2 = pojoJar(dir.resolve("v2"), "public String label = \"old\";");

        lines.clear();
        processed.set(0);
        JobID first = client.submitJob(job(backend, dir, v1, 0, null)).get(30, TimeUnit.SECONDS);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (processed.get() < PER_PHASE && System.nanoTime() < deadline) {
            Thread.sleep(10);
        }
        assertThat(processed.get()).as("records of the first job").isEqualTo(PER_PHASE);
        String savepoint =
                client.stopWithSavepoint(
                                first, false, dir.resolve("savepoints").toUri().toString(), format)
                        .get(60, TimeUnit.SECONDS);
        client.requestJobResult(first).get(60, TimeUnit.SECONDS);

        processed.set(0);
        JobID second =
                client.submitJob(job(backend, dir, v2, PER_PHASE, savepoint))
                        .get(30, TimeUnit.SECONDS);
        JobResult result = client.requestJobResult(second).get(120, TimeUnit.SECONDS);
        assertThat(result.getSerializedThrowable()).as("the second job's failure").isEmpty();
        assertThat(processed.get()).isEqualTo(PER_PHASE);
        assertThat(new TreeMap<>(lines)).isEqualTo(expected());
    }

    /** What each key reports on its first and last record of the second job. */
    static Map<String, String> expected() {
        Map<String, String> expected = new TreeMap<>();
        long perKey = PER_PHASE / KEYS;
        for (int key = 0; key < KEYS; key++) {
            List<String> restored = new ArrayList<>();
            Map<Integer, String> buckets = new TreeMap<>();
            for (long i = key; i < PER_PHASE; i += KEYS) {
                restored.add(i + ":old");
                buckets.put((int) (i % 3), i + ":old");
            }
            expected.put(
                    key + " restored",
                    "count=" + perKey + ":old list=" + restored + " map=" + buckets);
            List<String> all = new ArrayList<>();
            Map<Integer, String> finalBuckets = new TreeMap<>();
            for (long i = key; i < 2 * PER_PHASE; i += KEYS) {
                all.add(i + ":new");
                finalBuckets.put((int) (i % 3), i + ":new");
            }
            expected.put(
                    key + " final",
                    "count=" + 2 * perKey + ":new list=" + all + " map=" + finalBuckets);
        }
        return expected;
    }

    private static JobGraph job(
            String backend, Path dir, Path pojoJar, long from, String savepoint) {
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        env.setParallelism(2);
        env.setMaxParallelism(128);
        String checkpoints = dir.resolve("checkpoints").toUri().toString();
        TestJobs.setStateBackend(
                env,
                backend.equals("rocksdb")
                        ? new NativeRocksDBBackend(checkpoints)
                        : backend.equals("fs")
                                ? new NativeFsBackend(checkpoints)
                                : new NativeMemoryBackend());
        // Emits up to its end (its offset is operator state), then idles until stopped with
        // a savepoint; the second job's finishes.
        env.addSource(new RescalingMiniClusterTest.PhaseSource(from + PER_PHASE, savepoint != null))
                .uid("source")
                .setParallelism(1)
                .keyBy(i -> (int) (i % KEYS), Types.INT)
                .process(new PojoStateFunction(from > 0, from + PER_PHASE - KEYS))
                .uid("pojo-state")
                .addSink(new LineSink())
                .uid("sink")
                .setParallelism(1);
        JobGraph job = env.getStreamGraph().getJobGraph();
        job.addJar(new org.apache.flink.core.fs.Path(pojoJar.toUri()));
        if (savepoint != null) {
            job.setSavepointRestoreSettings(SavepointRestoreSettings.forPath(savepoint, false));
        }
        return job;
    }

    /**
     * Compiles {@code Tally} (an int key, a long count, plus {@code extraField}) into a jar: the
     * job's only class that is not on the test's class path.
     */
    private static Path pojoJar(Path dir, String extraField) throws IOException {
        Path src = dir.resolve("src/io/statebackend/evolution/Tally.java");
        Files.createDirectories(src.getParent());
        Files.writeString(
                src,
                "package io.statebackend.evolution;\n"
                        + "public class Tally {\n"
                        + "  public int key;\n"
                        + "  public long count;\n"
                        + "  "
                        + extraField
                        + "\n"
                        + "  public Tally() {}\n"
                        + "}\n");
        Path classes = dir.resolve("classes");
        Files.createDirectories(classes);
        JavaCompiler javac = ToolProvider.getSystemJavaCompiler();
        int rc = javac.run(null, null, null, "-d", classes.toString(), src.toString());
        assertThat(rc).as("javac of the POJO").isZero();
        Path jar = dir.resolve("tally.jar");
        try (OutputStream file = Files.newOutputStream(jar);
                JarOutputStream out = new JarOutputStream(file)) {
            String entry = "io/statebackend/evolution/Tally.class";
            out.putNextEntry(new JarEntry(entry));
            out.write(Files.readAllBytes(classes.resolve(entry)));
            out.closeEntry();
        }
        return jar;
    }

    /**
     * Keeps a {@code Tally} POJO per key in value state, and every record's as a list element and a
     * map value. The class comes from the job jar, through the user-code class loader, so this
     * function reaches its fields by reflection. In the second job, a key's first record reports
     * what was restored (the new field's value included) and marks everything "new"; its last
     * record reports the final state.
     */
    static final class PojoStateFunction extends KeyedProcessFunction<Integer, Long, String> {
        private final boolean resumed;
        private final long lastFrom;
        private transient Class<?> tally;
        private transient Field key;
        private transient Field count;
        private transient Field label;
        private transient ValueState<Object> total;
        private transient ListState<Object> records;
        private transient MapState<Integer, Object> buckets;

        PojoStateFunction(boolean resumed, long lastFrom) {
            this.resumed = resumed;
            this.lastFrom = lastFrom;
        }

        @Override
        @SuppressWarnings("unchecked")
        public void open(org.apache.flink.api.common.functions.OpenContext ctx) throws Exception {
            tally = getRuntimeContext().getUserCodeClassLoader().loadClass(POJO);
            TypeInformation<Object> type = (TypeInformation<Object>) TypeInformation.of(tally);
            if (!(type instanceof PojoTypeInfo)) {
                throw new IllegalStateException(tally + " is not a Flink POJO: " + type);
            }
            key = tally.getField("key");
            count = tally.getField("count");
            label = resumed ? tally.getField("label") : null;
            total = getRuntimeContext().getState(new ValueStateDescriptor<>("total", type));
            records = getRuntimeContext().getListState(new ListStateDescriptor<>("records", type));
            buckets =
                    getRuntimeContext()
                            .getMapState(new MapStateDescriptor<>("buckets", Types.INT, type));
        }

        private Object tally(int k, long n) throws Exception {
            Object t = tally.getConstructor().newInstance();
            key.setInt(t, k);
            count.setLong(t, n);
            if (label != null) {
                label.set(t, "new");
            }
            return t;
        }

        private String show(Object t) throws Exception {
            return count.getLong(t) + (label == null ? "" : ":" + label.get(t));
        }

        private String report() throws Exception {
            List<String> list = new ArrayList<>();
            for (Object t : records.get()) {
                list.add(show(t));
            }
            Map<Integer, String> map = new TreeMap<>();
            for (Map.Entry<Integer, Object> e : buckets.entries()) {
                map.put(e.getKey(), show(e.getValue()));
            }
            return "count=" + show(total.value()) + " list=" + list + " map=" + map;
        }

        @Override
        public void processElement(Long value, Context ctx, Collector<String> out)
                throws Exception {
            int k = ctx.getCurrentKey();
            Object t = total.value();
            if (resumed && "old".equals(label.get(t))) {
                out.collect(k + " restored|" + report());
                // Written back with the new field set: these must read "new" from now on.
                label.set(t, "new");
                List<Object> updated = new ArrayList<>();
                for (Object r : records.get()) {
                    label.set(r, "new");
                    updated.add(r);
                }
                records.update(updated);
                for (Map.Entry<Integer, Object> e : buckets.entries()) {
                    Object v = e.getValue();
                    label.set(v, "new");
                    buckets.put(e.getKey(), v);
                }
            }
            if (t == null) {
                t = tally(k, 0);
            }
            count.setLong(t, count.getLong(t) + 1);
            total.update(t);
            records.add(tally(k, value));
            buckets.put((int) (value % 3), tally(k, value));
            if (resumed && value >= lastFrom) {
                out.collect(k + " final|" + report());
            }
            processed.incrementAndGet();
        }
    }

    static final class LineSink implements TestSink<String> {
        @Override
        public void invoke(String value, Context context) {
            int bar = value.indexOf('|');
            lines.put(value.substring(0, bar), value.substring(bar + 1));
        }
    }
}
