package io.statebackend.internal;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.Arrays;
import java.util.function.Supplier;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.core.fs.CloseableRegistry;
import org.apache.flink.core.memory.DataInputDeserializer;
import org.apache.flink.core.memory.DataOutputSerializer;
import org.apache.flink.runtime.checkpoint.CheckpointOptions;
import org.apache.flink.runtime.state.CheckpointStateOutputStream;
import org.apache.flink.runtime.state.CheckpointStreamFactory;
import org.apache.flink.runtime.state.CheckpointedStateScope;
import org.apache.flink.runtime.state.KeyGroupRange;
import org.apache.flink.runtime.state.KeyGroupRangeOffsets;
import org.apache.flink.runtime.state.KeyGroupsStateHandle;
import org.apache.flink.runtime.state.KeyedStateHandle;
import org.apache.flink.runtime.state.SnapshotResources;
import org.apache.flink.runtime.state.SnapshotResult;
import org.apache.flink.runtime.state.SnapshotStrategy;
import org.apache.flink.runtime.state.StateSnapshotTransformer;
import org.apache.flink.runtime.state.StreamStateHandle;

/**
 * Full snapshots: the synchronous phase takes the native point-in-time view (cheap); the
 * asynchronous phase writes the single-stream snapshot ({@code data ‖ manifest ‖ trailer}) into a
 * checkpoint stream of Flink's and describes it as a {@link KeyGroupsStateHandle}.
 */
final class NativeSnapshotStrategy
        implements SnapshotStrategy<KeyedStateHandle, NativeSnapshotStrategy.PendingSnapshot> {
    private static final int CHUNK = 64 * 1024;

    private final NativeHandle backend;
    private final KeyGroupRange keyGroupRange;
    private final Supplier<ValueFilter[]> filters;
    private final NativeMetrics.CheckpointDurations durations;

    /**
     * @param filters the value filters of a snapshot taken now, by native state id (see {@link
     *     ValueFilter}); called in the synchronous phase
     * @param durations where the phases' durations go (metrics)
     */
    NativeSnapshotStrategy(
            NativeHandle backend,
            KeyGroupRange keyGroupRange,
            Supplier<ValueFilter[]> filters,
            NativeMetrics.CheckpointDurations durations) {
        this.backend = backend;
        this.keyGroupRange = keyGroupRange;
        this.filters = filters;
        this.durations = durations;
    }

    /**
     * Flink's snapshot transformer on one state's stored values, called by the native writer
     * (src/ffi/jni/snapshot.rs) for each value-state value, list element and map value: the bytes
     * to write instead, or null to leave the value out (a list left with no elements is left out).
     */
    @FunctionalInterface
    interface ValueFilter {
        byte[] filter(byte[] value);

        /** {@code transformer} over the stored values of a state of native kind {@code kind}. */
        static ValueFilter of(int kind, StateSnapshotTransformer<byte[]> transformer) {
            if (kind != NativeBridge.KIND_MAP) {
                return transformer::filterOrTransform;
            }
            // Map values are stored as null flag ‖ serialized value (NativeMapState).
            return stored -> {
                if (stored.length == 0 || stored[0] != 0) {
                    return stored;
                }
                byte[] out =
                        transformer.filterOrTransform(Arrays.copyOfRange(stored, 1, stored.length));
                if (out == null) {
                    return null;
                }
                byte[] result = new byte[out.length + 1];
                System.arraycopy(out, 0, result, 1, out.length);
                return result;
            };
        }

        /**
         * {@code element} over each element of a list in Flink's delimited format (serialized
         * elements separated by {@code ','}, as canonical savepoints carry lists): the kept
         * elements, or null if none is left. {@code elementSerializer} finds where each element
         * ends.
         */
        static ValueFilter delimitedList(TypeSerializer<?> elementSerializer, ValueFilter element) {
            return list -> {
                DataInputDeserializer in = new DataInputDeserializer(list);
                DataOutputSerializer out = new DataOutputSerializer(list.length);
                boolean any = false;
                try {
                    while (in.available() > 0) {
                        int start = in.getPosition();
                        elementSerializer.deserialize(in);
                        byte[] kept =
                                element.filter(Arrays.copyOfRange(list, start, in.getPosition()));
                        if (in.available() > 0) {
                            in.readByte(); // the delimiter
                        }
                        if (kept != null) {
                            if (any) {
                                out.write(',');
                            }
                            out.write(kept);
                            any = true;
                        }
                    }
                } catch (IOException e) {
                    throw new UncheckedIOException("splitting a list into its elements", e);
                }
                return any ? out.getCopyOfBuffer() : null;
            };
        }
    }

    /** A native pending snapshot, released if the asynchronous phase never consumes it. */
    static final class PendingSnapshot implements SnapshotResources {
        private long id;
        final ValueFilter[] filters;

        PendingSnapshot(long id, ValueFilter[] filters) {
            this.id = id;
            this.filters = filters;
        }

        synchronized long take() {
            long taken = id;
            id = 0;
            return taken;
        }

        @Override
        public synchronized void release() {
            if (id != 0) {
                NativeBridge.snapshotRelease(id);
                id = 0;
            }
        }
    }

    @Override
    public PendingSnapshot syncPrepareResources(long checkpointId) {
        long start = System.nanoTime();
        ValueFilter[] now = filters.get();
        PendingSnapshot pending =
                new PendingSnapshot(NativeBridge.snapshot(backend.id(), checkpointId), now);
        durations.sync(start);
        return pending;
    }

    @Override
    public SnapshotResultSupplier<KeyedStateHandle> asyncSnapshot(
            PendingSnapshot pending,
            long checkpointId,
            long timestamp,
            CheckpointStreamFactory streamFactory,
            CheckpointOptions checkpointOptions) {
        return registry -> {
            long start = System.nanoTime();
            SnapshotResult<KeyedStateHandle> result =
                    write(pending, checkpointId, streamFactory, registry);
            durations.async(start);
            return result;
        };
    }

    private SnapshotResult<KeyedStateHandle> write(
            PendingSnapshot pending,
            long checkpointId,
            CheckpointStreamFactory streamFactory,
            CloseableRegistry registry)
            throws IOException {
        CheckpointStateOutputStream out =
                streamFactory.createCheckpointStateOutputStream(CheckpointedStateScope.EXCLUSIVE);
        registry.registerCloseable(out);
        long[] result;
        long base;
        try {
            base = out.getPos();
            result =
                    NativeBridge.snapshotWrite(
                            pending.take(),
                            out,
                            new byte[CHUNK],
                            "checkpoint " + checkpointId + " of key groups " + keyGroupRange,
                            pending.filters);
        } catch (RuntimeException | IOException e) {
            if (registry.unregisterCloseable(out)) {
                out.close();
            }
            throw e;
        }
        if (!registry.unregisterCloseable(out)) {
            throw new IOException("the checkpoint stream was closed (checkpoint cancelled)");
        }
        StreamStateHandle handle = out.closeAndGetHandle();
        if (handle == null) {
            return SnapshotResult.empty();
        }
        long[] offsets = keyGroupOffsets(result, base);
        return SnapshotResult.of(
                new KeyGroupsStateHandle(new KeyGroupRangeOffsets(keyGroupRange, offsets), handle));
    }

    /**
     * Offsets of every key group of the range: a key group without data gets the offset of the next
     * one with data, or the end of the data.
     */
    private long[] keyGroupOffsets(long[] result, long base) {
        long dataEnd = base + result[1];
        long[] offsets = new long[keyGroupRange.getNumberOfKeyGroups()];
        int next = 2; // the first (key group, offset) pair at or after the current key group
        for (int i = 0; i < offsets.length; i++) {
            int kg = keyGroupRange.getStartKeyGroup() + i;
            while (next < result.length && result[next] < kg) {
                next += 2;
            }
            offsets[i] = next < result.length ? base + result[next + 1] : dataEnd;
        }
        return offsets;
    }
}
