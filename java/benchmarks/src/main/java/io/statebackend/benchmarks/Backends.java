package io.statebackend.benchmarks;

import io.statebackend.NativeFsBackend;
import io.statebackend.NativeMemoryBackend;
import io.statebackend.NativeRocksDBBackend;
import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.util.Collection;
import java.util.Collections;
import java.util.Map;
import org.apache.flink.api.common.JobID;
import org.apache.flink.api.common.typeutils.base.LongSerializer;
import org.apache.flink.core.fs.CloseableRegistry;
import org.apache.flink.metrics.groups.UnregisteredMetricsGroup;
import org.apache.flink.runtime.io.disk.iomanager.IOManagerAsync;
import org.apache.flink.runtime.operators.testutils.MockEnvironment;
import org.apache.flink.runtime.operators.testutils.MockEnvironmentBuilder;
import org.apache.flink.runtime.state.AbstractKeyedStateBackend;
import org.apache.flink.runtime.state.CheckpointStorageAccess;
import org.apache.flink.runtime.state.KeyGroupRange;
import org.apache.flink.runtime.state.KeyedStateBackendParametersImpl;
import org.apache.flink.runtime.state.KeyedStateHandle;
import org.apache.flink.runtime.state.StateBackend;
import org.apache.flink.runtime.state.storage.FileSystemCheckpointStorage;
import org.apache.flink.runtime.state.ttl.TtlTimeProvider;
import org.apache.flink.util.FileUtils;

/**
 * Builds one keyed state backend of each kind with the same parameters: {@code Long} keys through
 * Flink's {@link LongSerializer}, max parallelism 2, key groups 0..1, no latency tracking. Flink's
 * backends are built through their builders as flink-benchmarks does; ours through {@link
 * StateBackend#createKeyedStateBackend}, the entry point Flink's task uses. All files (RocksDB
 * directories, our backends' local directories) live under one temporary directory. What differs
 * between Flink lines (builders, packages, ForSt) is in {@link FlinkLineBackends}, one per line.
 */
final class Backends implements AutoCloseable {
    static final int MAX_PARALLELISM = 2;
    static final KeyGroupRange KEY_GROUPS = KeyGroupRange.of(0, MAX_PARALLELISM - 1);

    final AbstractKeyedStateBackend<Long> keyed;
    private final File root;
    private final MockEnvironment env;

    private Backends(AbstractKeyedStateBackend<Long> keyed, File root, MockEnvironment env) {
        this.keyed = keyed;
        this.root = root;
        this.env = env;
    }

    static Backends create(BackendType type) throws Exception {
        return create(type, Collections.emptyList(), false, null);
    }

    /**
     * A backend restored from {@code restore} (empty: a fresh one); {@code incremental} turns on
     * incremental checkpoints of the RocksDB backends; ours write their checkpoints under {@code
     * checkpoints} (a URI; null: a directory of their own).
     */
    static Backends create(
            BackendType type,
            Collection<KeyedStateHandle> restore,
            boolean incremental,
            String checkpoints)
            throws Exception {
        File root = Files.createTempDirectory("statebackend-bench-").toFile();
        try {
            switch (type) {
                case HEAP:
                    return new Backends(FlinkLineBackends.heap(restore), root, null);
                case ROCKSDB:
                    if (incremental) {
                        // The builder's incremental switch is package-private: go through the
                        // backend, with managed memory off as in the builder path.
                        return throughStateBackend(
                                FlinkLineBackends.embeddedRocksDB(true, null, null), root, restore);
                    }
                    File dbDir = new File(root, "db");
                    if (!dbDir.mkdirs()) {
                        throw new IOException("cannot create " + dbDir);
                    }
                    return new Backends(FlinkLineBackends.rocksDB(dbDir, restore), root, null);
                case FORST:
                    return throughStateBackend(
                            FlinkLineBackends.forSt(new File(root, "forst"), incremental),
                            root,
                            restore,
                            true);
                default:
                    return throughStateBackend(
                            nativeBackend(type, root, incremental, checkpoints), root, restore);
            }
        } catch (Exception | Error e) {
            FileUtils.deleteDirectoryQuietly(root);
            throw e;
        }
    }

    /**
     * A RocksDB backend, Flink's ({@code ROCKSDB}, through its EmbeddedRocksDBStateBackend) or ours
     * ({@code NATIVE_ROCKSDB}), restored from {@code restore} into key groups {@code range} only:
     * one subtask's part after rescaling.
     */
    static Backends restoreRocksDB(
            BackendType type,
            Collection<KeyedStateHandle> restore,
            boolean incremental,
            String checkpoints,
            KeyGroupRange range)
            throws Exception {
        File root = Files.createTempDirectory("statebackend-bench-").toFile();
        try {
            switch (type) {
                case ROCKSDB:
                    return throughStateBackend(
                            FlinkLineBackends.embeddedRocksDB(incremental, null, null),
                            root,
                            restore,
                            false,
                            range);
                case NATIVE_ROCKSDB:
                    return throughStateBackend(
                            nativeBackend(type, root, incremental, checkpoints),
                            root,
                            restore,
                            false,
                            range);
                default:
                    throw new IllegalArgumentException("not a RocksDB backend: " + type);
            }
        } catch (Exception | Error e) {
            FileUtils.deleteDirectoryQuietly(root);
            throw e;
        }
    }

    /**
     * A fresh RocksDB backend, Flink's ({@code ROCKSDB}) or ours ({@code NATIVE_ROCKSDB}), with
     * managed memory off as in {@link #create(BackendType)} and {@code options} ({@code
     * state.backend.rocksdb.*} keys, e.g. {@code memory.fixed-per-slot}) on top. Flink's is built
     * through its EmbeddedRocksDBStateBackend (which applies the options as a job's configuration
     * would) with its RocksDB directory under {@link #root()}.
     */
    static Backends createRocksDB(BackendType type, Map<String, String> options) throws Exception {
        File root = Files.createTempDirectory("statebackend-bench-").toFile();
        try {
            switch (type) {
                case ROCKSDB:
                    File db = new File(root, "db");
                    if (!db.mkdirs()) {
                        throw new IOException("cannot create " + db);
                    }
                    return throughStateBackend(
                            FlinkLineBackends.embeddedRocksDB(false, options, db),
                            root,
                            Collections.emptyList());
                case NATIVE_ROCKSDB:
                    NativeRocksDBBackend ours =
                            (NativeRocksDBBackend) nativeBackend(type, root, false, null);
                    options.forEach(ours::setRocksDBOption);
                    return throughStateBackend(ours, root, Collections.emptyList());
                default:
                    throw new IllegalArgumentException("not a RocksDB backend: " + type);
            }
        } catch (Exception | Error e) {
            FileUtils.deleteDirectoryQuietly(root);
            throw e;
        }
    }

    private static StateBackend nativeBackend(
            BackendType type, File root, boolean incremental, String checkpoints) {
        if (checkpoints == null) {
            checkpoints = new File(root, "checkpoints").toURI().toString();
        }
        switch (type) {
            case NATIVE_MEMORY:
                // No size limit: the checkpoint benchmark holds 1 GiB (the JobManager limit is
                // what this backend's users set; the state benchmarks never checkpoint).
                return new NativeMemoryBackend(Integer.MAX_VALUE);
            case NATIVE_FS:
                return new NativeFsBackend(checkpoints);
            case NATIVE_ROCKSDB:
                NativeRocksDBBackend rocks = new NativeRocksDBBackend(checkpoints, incremental);
                // A budget of its own unless -Dbench.rocksdb says otherwise: Flink's RocksDB
                // backend here runs without managed memory too (what flink-benchmarks measures).
                rocks.setRocksDBOption("state.backend.rocksdb.memory.managed", "false");
                for (String option : System.getProperty("bench.rocksdb", "").split(",")) {
                    if (!option.isBlank()) {
                        String[] kv = option.split("=", 2);
                        if (kv.length != 2) {
                            throw new IllegalArgumentException(
                                    "-Dbench.rocksdb: expected key=value, got " + option);
                        }
                        rocks.setRocksDBOption(kv[0].trim(), kv[1].trim());
                    }
                }
                return rocks;
            default:
                throw new IllegalArgumentException("not a native backend: " + type);
        }
    }

    /** A keyed backend built by {@code backend} as Flink's task builds it. */
    private static Backends throughStateBackend(
            StateBackend backend, File root, Collection<KeyedStateHandle> restore)
            throws Exception {
        return throughStateBackend(backend, root, restore, false);
    }

    /**
     * A keyed backend built by {@code backend} as Flink's task builds it; {@code
     * checkpointStorage}: the task has the job's checkpoint storage (under {@code root}), which
     * ForSt asks for when it builds its keyed backend (MockEnvironment has none of its own).
     */
    private static Backends throughStateBackend(
            StateBackend backend,
            File root,
            Collection<KeyedStateHandle> restore,
            boolean checkpointStorage)
            throws Exception {
        return throughStateBackend(backend, root, restore, checkpointStorage, KEY_GROUPS);
    }

    private static Backends throughStateBackend(
            StateBackend backend,
            File root,
            Collection<KeyedStateHandle> restore,
            boolean checkpointStorage,
            KeyGroupRange keyGroups)
            throws Exception {
        File local = new File(root, "local");
        if (!local.mkdirs()) {
            throw new IOException("cannot create " + local);
        }
        MockEnvironmentBuilder slot =
                new MockEnvironmentBuilder()
                        .setMaxParallelism(MAX_PARALLELISM)
                        .setIOManager(new IOManagerAsync(local.getPath()));
        // -Dbench.managed.mib=N: the slot's managed memory (for runs with
        // -Dbench.rocksdb=state.backend.rocksdb.memory.managed=true).
        String managed = System.getProperty("bench.managed.mib");
        if (managed != null) {
            slot.setManagedMemorySize(Long.parseLong(managed.trim()) << 20);
        }
        MockEnvironment env = slot.build();
        try {
            if (checkpointStorage) {
                CheckpointStorageAccess storage =
                        new FileSystemCheckpointStorage(new File(root, "job-checkpoints").toURI())
                                .createCheckpointStorage(env.getJobID());
                storage.initializeBaseLocationsForCheckpoint();
                env.setCheckpointStorageAccess(storage);
            }
            AbstractKeyedStateBackend<Long> keyed =
                    (AbstractKeyedStateBackend<Long>)
                            backend.createKeyedStateBackend(
                                    new KeyedStateBackendParametersImpl<>(
                                            env,
                                            new JobID(),
                                            "benchmark",
                                            LongSerializer.INSTANCE,
                                            MAX_PARALLELISM,
                                            keyGroups,
                                            env.getTaskKvStateRegistry(),
                                            TtlTimeProvider.DEFAULT,
                                            new UnregisteredMetricsGroup(),
                                            restore,
                                            new CloseableRegistry()));
            return new Backends(keyed, root, env);
        } catch (Exception | Error e) {
            env.close();
            throw e;
        }
    }

    /** The directory holding this backend's files (RocksDB directories, our local directory). */
    File root() {
        return root;
    }

    @Override
    public void close() throws Exception {
        try {
            keyed.dispose();
            if (env != null) {
                env.close();
            }
        } finally {
            FileUtils.deleteDirectoryQuietly(root);
        }
    }
}
