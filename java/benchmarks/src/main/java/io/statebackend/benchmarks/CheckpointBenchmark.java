package io.statebackend.benchmarks;

import java.io.File;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.RunnableFuture;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeutils.base.array.BytePrimitiveArraySerializer;
import org.apache.flink.core.fs.FileSystem;
import org.apache.flink.core.fs.Path;
import org.apache.flink.runtime.checkpoint.CheckpointOptions;
import org.apache.flink.runtime.state.AbstractKeyedStateBackend;
import org.apache.flink.runtime.state.CheckpointStreamFactory;
import org.apache.flink.runtime.state.KeyGroupRange;
import org.apache.flink.runtime.state.KeyGroupRangeAssignment;
import org.apache.flink.runtime.state.KeyedStateHandle;
import org.apache.flink.runtime.state.SharedStateRegistry;
import org.apache.flink.runtime.state.SharedStateRegistryImpl;
import org.apache.flink.runtime.state.SnapshotResult;
import org.apache.flink.runtime.state.VoidNamespace;
import org.apache.flink.runtime.state.VoidNamespaceSerializer;
import org.apache.flink.runtime.state.filesystem.FsCheckpointStreamFactory;
import org.apache.flink.util.FileUtils;

/**
 * Checkpoints of one backend holding {@code sizeMiB} of value state ({@code Long} keys, 1 KiB
 * {@code byte[]} values, 2 key groups), measured in the phases a task sees:
 *
 * <ul>
 *   <li>mode {@code full}: a checkpoint of the filled state: the synchronous phase ({@code
 *       snapshot()} returning: the task's pause), the asynchronous phase (the future run to
 *       completion) and the sizes Flink records; then the restore from it: a new keyed backend
 *       built from the checkpoint, until it is ready to serve;
 *   <li>mode {@code incremental} (the RocksDB backends): the first checkpoint (everything is new),
 *       then, once it is confirmed, a checkpoint after 1% of the keys changed: its phases, the
 *       bytes it uploaded ({@code secondCheckpointedMiB}) and the restore from it.
 * </ul>
 *
 * <p>The RocksDB backends also restore with rescaling 1 to 2: two backends, one per key group, each
 * restored from the same checkpoint at once on its own thread, as two subtasks of a rescaled job
 * would ({@code rescaleRestoreSeconds}: until both are ready; each checked on its keys).
 *
 * <p>Every backend writes its checkpoints through the same Flink file-system stream factory into a
 * local directory (the Memory backends included: this measures the backend, not the transport to
 * the JobManager). One backend per JVM (scripts/bench-flink runs one per backend); the result is a
 * JSON object on the last line of stdout. Restored state is checked on a sample of keys, so a
 * backend that restores the wrong values fails instead of looking fast.
 *
 * <p>Usage: {@code CheckpointBenchmark BACKEND [SIZE_MIB [full|incremental]]} (1024, full).
 */
public final class CheckpointBenchmark {
    static final int VALUE_SIZE = 1024;
    private static final int SAMPLE = 1000;

    private final BackendType type;
    private final int keys;
    private final File root;
    private final CheckpointStreamFactory streams;
    private final SharedStateRegistry registry = new SharedStateRegistryImpl();
    private final StringBuilder json = new StringBuilder();

    private CheckpointBenchmark(BackendType type, int keys, File root) throws Exception {
        this.type = type;
        this.keys = keys;
        this.root = root;
        File exclusive = new File(root, "chk");
        File shared = new File(root, "shared");
        if (!exclusive.mkdirs() || !shared.mkdirs()) {
            throw new IllegalStateException("cannot create directories under " + root);
        }
        // 20 KiB: Flink's default threshold below which a state goes inline into the metadata.
        this.streams =
                new FsCheckpointStreamFactory(
                        FileSystem.getLocalFileSystem(),
                        Path.fromLocalFile(exclusive),
                        Path.fromLocalFile(shared),
                        20 * 1024,
                        4096);
    }

    public static void main(String[] args) throws Exception {
        BackendType type = BackendType.valueOf(args[0]);
        long sizeMiB = args.length > 1 ? Long.parseLong(args[1]) : 1024;
        boolean incremental = args.length > 2 && args[2].equals("incremental");
        int keys = (int) (sizeMiB * 1024 * 1024 / VALUE_SIZE);
        File root = Files.createTempDirectory("statebackend-ckbench-").toFile();
        try {
            CheckpointBenchmark bench = new CheckpointBenchmark(type, keys, root);
            bench.run(sizeMiB, incremental);
            System.out.println(bench.json);
        } finally {
            FileUtils.deleteDirectoryQuietly(root);
        }
        // Flink's and our background threads (RocksDB, async I/O) must not keep the JVM alive.
        System.exit(0);
    }

    private void run(long sizeMiB, boolean incremental) throws Exception {
        String checkpoints = new File(root, "native").toURI().toString();
        json.append(String.format(Locale.ROOT, "{\"backend\":\"%s\"", type));
        field("mode", incremental ? "incremental" : "full");
        field("sizeMiB", sizeMiB);
        field("keys", keys);
        KeyedStateHandle restoreFrom;
        try (Backends backends =
                Backends.create(type, Collections.emptyList(), incremental, checkpoints)) {
            ValueState<byte[]> state = state(backends.keyed);
            // A checkpoint of the empty state first: class loading and JIT of the checkpoint
            // path are paid once per process, not by the measured checkpoints.
            checkpoint(backends.keyed, 1, null);
            long t0 = System.nanoTime();
            // A new array per value: the heap backend keeps the reference it is given.
            for (int k = 0; k < keys; k++) {
                backends.keyed.setCurrentKey((long) k);
                state.update(fill(new byte[VALUE_SIZE], k, 0));
            }
            field("fillSeconds", (System.nanoTime() - t0) / 1e9);

            restoreFrom = checkpoint(backends.keyed, 2, "first");
            if (incremental) {
                // What Flink does once checkpoint 2 is complete: the next one may reuse its files.
                backends.keyed.notifyCheckpointComplete(2);
                for (int k = 0; k < keys; k += 100) {
                    backends.keyed.setCurrentKey((long) k);
                    state.update(fill(new byte[VALUE_SIZE], k, 1));
                }
                restoreFrom = checkpoint(backends.keyed, 3, "second");
            }
        }
        restore(restoreFrom, incremental ? 1 : 0);
        if (type == BackendType.ROCKSDB || type == BackendType.NATIVE_ROCKSDB) {
            restoreRescaled(restoreFrom, incremental, incremental ? 1 : 0);
        }
        json.append('}');
    }

    private KeyedStateHandle checkpoint(AbstractKeyedStateBackend<Long> keyed, long id, String name)
            throws Exception {
        long t0 = System.nanoTime();
        RunnableFuture<SnapshotResult<KeyedStateHandle>> future =
                keyed.snapshot(
                        id, id, streams, CheckpointOptions.forCheckpointWithDefaultLocation());
        long t1 = System.nanoTime();
        future.run();
        KeyedStateHandle handle = future.get().getJobManagerOwnedSnapshot();
        long t2 = System.nanoTime();
        // The JobManager's part: registered shared files replace the placeholders of reused ones.
        handle.registerSharedStates(registry, id);
        if (name == null) {
            return handle;
        }
        field(name + "SyncMillis", (t1 - t0) / 1e6);
        field(name + "AsyncSeconds", (t2 - t1) / 1e9);
        field(name + "StateMiB", handle.getStateSize() / 1048576.0);
        field(name + "CheckpointedMiB", handle.getCheckpointedSize() / 1048576.0);
        field(name + "HandleType", handle.getClass().getSimpleName());
        return handle;
    }

    /** Restores into a new backend and checks a sample of keys against what was written. */
    private void restore(KeyedStateHandle handle, int version) throws Exception {
        long t0 = System.nanoTime();
        try (Backends restored =
                Backends.create(
                        type,
                        Collections.singletonList(handle),
                        handle.getClass().getSimpleName().startsWith("Incremental"),
                        new File(root, "native-restored").toURI().toString())) {
            ValueState<byte[]> state = state(restored.keyed);
            long t1 = System.nanoTime();
            byte[] expected = new byte[VALUE_SIZE];
            for (int i = 0; i < SAMPLE; i++) {
                int k = (int) ((long) i * keys / SAMPLE);
                restored.keyed.setCurrentKey((long) k);
                byte[] actual = state.value();
                int v = version == 1 && k % 100 == 0 ? 1 : 0;
                if (!java.util.Arrays.equals(actual, fill(expected, k, v))) {
                    throw new IllegalStateException(
                            type + ": wrong value for key " + k + " after the restore");
                }
            }
            field("restoreSeconds", (t1 - t0) / 1e9);
        }
    }

    /** Restores into one backend per key group at once, and checks a sample of each one's keys. */
    private void restoreRescaled(KeyedStateHandle handle, boolean incremental, int version)
            throws Exception {
        int parts = Backends.MAX_PARALLELISM;
        ExecutorService subtasks = Executors.newFixedThreadPool(parts);
        try {
            List<Future<Double>> done = new ArrayList<>();
            long t0 = System.nanoTime();
            for (int p = 0; p < parts; p++) {
                int keyGroup = p;
                done.add(
                        subtasks.submit(
                                () -> restorePart(handle, incremental, version, keyGroup, t0)));
            }
            double slowest = 0;
            for (Future<Double> part : done) {
                slowest = Math.max(slowest, part.get());
            }
            field("rescaleRestoreSeconds", slowest);
        } finally {
            subtasks.shutdownNow();
        }
    }

    /** One subtask's restore of key group {@code keyGroup}: seconds from {@code t0} to ready. */
    private double restorePart(
            KeyedStateHandle handle, boolean incremental, int version, int keyGroup, long t0)
            throws Exception {
        try (Backends part =
                Backends.restoreRocksDB(
                        type,
                        Collections.singletonList(handle),
                        incremental,
                        new File(root, "native-rescaled-" + keyGroup).toURI().toString(),
                        KeyGroupRange.of(keyGroup, keyGroup))) {
            ValueState<byte[]> state = state(part.keyed);
            double seconds = (System.nanoTime() - t0) / 1e9;
            byte[] expected = new byte[VALUE_SIZE];
            int checked = 0;
            for (int i = 0; checked < SAMPLE / 2 && i < SAMPLE; i++) {
                int k = (int) ((long) i * keys / SAMPLE);
                if (KeyGroupRangeAssignment.assignToKeyGroup((long) k, Backends.MAX_PARALLELISM)
                        != keyGroup) {
                    continue;
                }
                part.keyed.setCurrentKey((long) k);
                int v = version == 1 && k % 100 == 0 ? 1 : 0;
                if (!java.util.Arrays.equals(state.value(), fill(expected, k, v))) {
                    throw new IllegalStateException(
                            type + ": wrong value for key " + k + " after the rescaled restore");
                }
                checked++;
            }
            if (checked == 0) {
                throw new IllegalStateException(type + ": no key of key group " + keyGroup);
            }
            return seconds;
        }
    }

    private static ValueState<byte[]> state(AbstractKeyedStateBackend<Long> keyed)
            throws Exception {
        return keyed.getPartitionedState(
                VoidNamespace.INSTANCE,
                VoidNamespaceSerializer.INSTANCE,
                new ValueStateDescriptor<>("values", BytePrimitiveArraySerializer.INSTANCE));
    }

    /**
     * The value of key {@code k} at {@code version}: incompressible-looking bytes (a xorshift
     * sequence seeded by key and version), so no backend gains by compression.
     */
    static byte[] fill(byte[] value, long k, int version) {
        long x = (k + 1) * 0x9E3779B97F4A7C15L ^ version;
        for (int i = 0; i < value.length; i += 8) {
            x ^= x << 13;
            x ^= x >>> 7;
            x ^= x << 17;
            for (int b = 0; b < 8 && i + b < value.length; b++) {
                value[i + b] = (byte) (x >>> (8 * b));
            }
        }
        return value;
    }

    private void field(String name, Object value) {
        json.append(",\"").append(name).append("\":");
        if (value instanceof String) {
            json.append('"').append(value).append('"');
        } else if (value instanceof Double) {
            json.append(String.format(Locale.ROOT, "%.4f", (Double) value));
        } else {
            json.append(value);
        }
    }
}
