package io.statebackend.internal;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.UUID;
import org.apache.flink.core.fs.CloseableRegistry;
import org.apache.flink.runtime.checkpoint.CheckpointOptions;
import org.apache.flink.runtime.checkpoint.filemerging.FileMergingSnapshotManager;
import org.apache.flink.runtime.state.CheckpointStateOutputStream;
import org.apache.flink.runtime.state.CheckpointStreamFactory;
import org.apache.flink.runtime.state.CheckpointedStateScope;
import org.apache.flink.runtime.state.IncrementalKeyedStateHandle.HandleAndLocalPath;
import org.apache.flink.runtime.state.IncrementalRemoteKeyedStateHandle;
import org.apache.flink.runtime.state.KeyGroupRange;
import org.apache.flink.runtime.state.KeyedStateHandle;
import org.apache.flink.runtime.state.PlaceholderStreamStateHandle;
import org.apache.flink.runtime.state.SnapshotResources;
import org.apache.flink.runtime.state.SnapshotResult;
import org.apache.flink.runtime.state.SnapshotStrategy;
import org.apache.flink.runtime.state.StreamStateHandle;
import org.apache.flink.runtime.state.memory.ByteStreamStateHandle;

/**
 * Checkpoints of the RocksDB backend as its files, in Flink's {@link
 * IncrementalRemoteKeyedStateHandle}: the synchronous phase hard-links the DB's files (native); the
 * asynchronous phase stores them and last the meta stream: the native manifest with every file's
 * size and CRC32C per MiB, which the restore checks.
 *
 * <p>{@link Mode#INCREMENTAL}: each SST file the last completed checkpoint did not have is stored
 * as shared state, the others are referred to with placeholders (Flink's shared state registry
 * counts the references), the other RocksDB files are private state. As for Flink's RocksDB
 * backend, the first checkpoint after a restore uploads every file (so a restored checkpoint is
 * never referenced, and NO_CLAIM restores work).
 *
 * <p>{@link Mode#FULL}: every file is the checkpoint's own (private state), as Flink's RocksDB
 * backend takes its full checkpoints: a restore copies the files back instead of re-inserting every
 * entry.
 */
final class NativeIncrementalSnapshotStrategy
        implements SnapshotStrategy<KeyedStateHandle, NativeIncrementalSnapshotStrategy.Upload> {
    private static final int CHUNK = 64 * 1024;

    /** A shared file stored for a checkpoint: Flink's handle and the native record of it. */
    private record Stored(StreamStateHandle handle, byte[] record) {}

    /** What a checkpoint stores. */
    enum Mode {
        INCREMENTAL,
        FULL
    }

    private final NativeHandle backend;
    private final KeyGroupRange keyGroupRange;
    private final Mode mode;
    private final UUID backendIdentifier = UUID.randomUUID();

    /** Shared files stored per checkpoint id, by file name (guarded by itself). */
    private final TreeMap<Long, Map<String, Stored>> storedFiles = new TreeMap<>();

    private long lastCompletedCheckpointId = -1;

    private final NativeMetrics.CheckpointDurations durations;

    /**
     * @param durations where the phases' durations go (metrics)
     */
    NativeIncrementalSnapshotStrategy(
            NativeHandle backend,
            KeyGroupRange keyGroupRange,
            Mode mode,
            NativeMetrics.CheckpointDurations durations) {
        this.backend = backend;
        this.keyGroupRange = keyGroupRange;
        this.mode = mode;
        this.durations = durations;
    }

    Mode mode() {
        return mode;
    }

    /** A native incremental snapshot, released if the asynchronous phase never consumes it. */
    static final class Upload implements SnapshotResources {
        private long id;

        /** The shared files of the last completed checkpoint, which this one may refer to. */
        final Map<String, Stored> previous;

        Upload(long id, Map<String, Stored> previous) {
            this.id = id;
            this.previous = previous;
        }

        synchronized long id() {
            if (id == 0) {
                throw new IllegalStateException("the incremental snapshot was released");
            }
            return id;
        }

        @Override
        public synchronized void release() {
            if (id != 0) {
                NativeBridge.uploadRelease(id);
                id = 0;
            }
        }
    }

    @Override
    public Upload syncPrepareResources(long checkpointId) {
        long start = System.nanoTime();
        Map<String, Stored> previous = Collections.emptyMap();
        if (mode == Mode.INCREMENTAL) {
            synchronized (storedFiles) {
                previous =
                        storedFiles.getOrDefault(lastCompletedCheckpointId, Collections.emptyMap());
            }
        }
        Upload upload =
                new Upload(NativeBridge.snapshotIncremental(backend.id(), checkpointId), previous);
        durations.sync(start);
        return upload;
    }

    @Override
    public SnapshotResultSupplier<KeyedStateHandle> asyncSnapshot(
            Upload upload,
            long checkpointId,
            long timestamp,
            CheckpointStreamFactory streamFactory,
            CheckpointOptions checkpointOptions) {
        return registry -> {
            long start = System.nanoTime();
            List<StreamStateHandle> created = new ArrayList<>();
            try {
                SnapshotResult<KeyedStateHandle> result =
                        write(upload, checkpointId, streamFactory, registry, created);
                durations.async(start);
                return result;
            } catch (Exception e) {
                // Nothing refers to the files stored so far.
                for (StreamStateHandle handle : created) {
                    try {
                        handle.discardState();
                    } catch (Exception discard) {
                        e.addSuppressed(discard);
                    }
                }
                throw e;
            } finally {
                upload.release();
            }
        };
    }

    private SnapshotResult<KeyedStateHandle> write(
            Upload upload,
            long checkpointId,
            CheckpointStreamFactory streamFactory,
            CloseableRegistry registry,
            List<StreamStateHandle> created)
            throws IOException {
        long id = upload.id();
        byte[] chunk = new byte[CHUNK];
        List<HandleAndLocalPath> shared = new ArrayList<>();
        List<HandleAndLocalPath> own = new ArrayList<>();
        Map<String, Stored> stored = new HashMap<>();
        boolean full = mode == Mode.FULL;
        // A full checkpoint stores the SST files as its own, with the others.
        List<String> ownFiles = new ArrayList<>();
        for (String file : NativeBridge.uploadFiles(id, true)) {
            if (full) {
                ownFiles.add(file);
                continue;
            }
            Stored before = upload.previous.get(file);
            if (before != null && NativeBridge.uploadReuse(id, before.record())) {
                StreamStateHandle handle = before.handle();
                shared.add(
                        HandleAndLocalPath.of(
                                new PlaceholderStreamStateHandle(
                                        handle.getStreamStateHandleID(),
                                        handle.getStateSize(),
                                        FileMergingSnapshotManager.isFileMergingHandle(handle)),
                                file));
                stored.put(file, before);
                continue;
            }
            byte[][] record = new byte[1][];
            StreamStateHandle handle =
                    store(
                            streamFactory,
                            CheckpointedStateScope.SHARED,
                            registry,
                            created,
                            out ->
                                    record[0] =
                                            NativeBridge.uploadFile(
                                                    id, file, out, chunk, describe(checkpointId)));
            shared.add(HandleAndLocalPath.of(handle, file));
            stored.put(file, new Stored(handle, record[0]));
        }
        ownFiles.addAll(List.of(NativeBridge.uploadFiles(id, false)));
        for (String file : ownFiles) {
            StreamStateHandle handle =
                    store(
                            streamFactory,
                            CheckpointedStateScope.EXCLUSIVE,
                            registry,
                            created,
                            out ->
                                    NativeBridge.uploadFile(
                                            id, file, out, chunk, describe(checkpointId)));
            own.add(HandleAndLocalPath.of(handle, file));
        }
        long[] sizes = new long[3];
        StreamStateHandle meta =
                store(
                        streamFactory,
                        CheckpointedStateScope.EXCLUSIVE,
                        registry,
                        created,
                        out -> {
                            long[] result =
                                    NativeBridge.uploadFinish(
                                            id, out, chunk, describe(checkpointId));
                            System.arraycopy(result, 0, sizes, 0, sizes.length);
                        });
        if (!full) {
            synchronized (storedFiles) {
                storedFiles.put(checkpointId, stored);
            }
        }
        // What this checkpoint added: its new files and the meta stream.
        long checkpointedSize = sizes[2] + sizes[0];
        return SnapshotResult.of(
                new IncrementalRemoteKeyedStateHandle(
                        backendIdentifier,
                        keyGroupRange,
                        checkpointId,
                        shared,
                        own,
                        meta,
                        checkpointedSize));
    }

    private String describe(long checkpointId) {
        return (mode == Mode.FULL ? "full" : "incremental")
                + " checkpoint "
                + checkpointId
                + " of key groups "
                + keyGroupRange;
    }

    /** What goes into one checkpoint stream. */
    @FunctionalInterface
    private interface StreamWriter {
        void write(CheckpointStateOutputStream out) throws IOException;
    }

    /** One checkpoint stream of {@code scope} written by {@code writer}; its handle. */
    private static StreamStateHandle store(
            CheckpointStreamFactory streamFactory,
            CheckpointedStateScope scope,
            CloseableRegistry registry,
            List<StreamStateHandle> created,
            StreamWriter writer)
            throws IOException {
        CheckpointStateOutputStream out = streamFactory.createCheckpointStateOutputStream(scope);
        registry.registerCloseable(out);
        try {
            writer.write(out);
        } catch (RuntimeException | IOException e) {
            if (registry.unregisterCloseable(out)) {
                try {
                    out.close();
                } catch (IOException close) {
                    e.addSuppressed(close);
                }
            }
            throw e;
        }
        if (!registry.unregisterCloseable(out)) {
            throw new IOException("the checkpoint stream was closed (checkpoint cancelled)");
        }
        StreamStateHandle handle = out.closeAndGetHandle();
        if (handle == null) {
            // Nothing written (an empty RocksDB log file): Flink's streams return no handle.
            return new ByteStreamStateHandle("empty-" + UUID.randomUUID(), new byte[0]);
        }
        created.add(handle);
        return handle;
    }

    /** A checkpoint completed: later ones may refer to its shared files. */
    void notifyCheckpointComplete(long checkpointId) {
        synchronized (storedFiles) {
            if (checkpointId > lastCompletedCheckpointId) {
                lastCompletedCheckpointId = checkpointId;
                storedFiles.headMap(checkpointId).clear();
            }
        }
    }

    /** A checkpoint was aborted: nothing may refer to its files. */
    void notifyCheckpointAborted(long checkpointId) {
        synchronized (storedFiles) {
            storedFiles.remove(checkpointId);
        }
    }
}
