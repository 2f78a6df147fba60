package io.statebackend.internal;

import java.util.Map;
import org.apache.flink.configuration.MemorySize;
import org.apache.flink.runtime.memory.MemoryManager;
import org.apache.flink.runtime.memory.OpaqueMemoryResource;

/**
 * The memory a NativeRocksDBBackend keyed backend runs in, chosen as Flink chooses it for its
 * RocksDB backend (docs/flink.md, "Memory"):
 *
 * <ul>
 *   <li>{@code state.backend.rocksdb.memory.fixed-per-slot} set: that many bytes per slot, shared
 *       by every NativeRocksDBBackend keyed backend of the slot;
 *   <li>else {@code state.backend.rocksdb.memory.managed} (default true): the slot's managed memory
 *       for state backends ({@link MemoryManager#getSharedMemoryResourceForManagedMemory}, with the
 *       operator's managed-memory fraction), shared the same way;
 *   <li>else each keyed backend has a budget of its own: {@code memory.fixed-per-slot}'s default
 *       for RocksDB and {@code write-cache.size} for its write-back cache, outside Flink's
 *       accounting.
 * </ul>
 *
 * <p>A shared budget holds RocksDB's block cache and memtables and the write-back caches: {@code
 * state.backend.rocksdb.memory.write-cache-ratio} of it (default 0.5) goes to the write caches,
 * split evenly among the slot's backends, the rest to RocksDB.
 */
final class SlotMemory implements AutoCloseable {
    static final String MANAGED = "state.backend.rocksdb.memory.managed";
    static final String FIXED_PER_SLOT = "state.backend.rocksdb.memory.fixed-per-slot";
    static final String WRITE_CACHE_RATIO = "state.backend.rocksdb.memory.write-cache-ratio";
    static final String WRITE_BUFFER_RATIO = "state.backend.rocksdb.memory.write-buffer-ratio";

    static final double DEFAULT_WRITE_CACHE_RATIO = 0.5;
    static final double DEFAULT_WRITE_BUFFER_RATIO = 0.5;

    /** Flink's shared resources of a slot by type: ours, apart from Flink's RocksDB backend's. */
    private static final String MANAGED_TYPE = "statebackend-native-rocksdb-managed";

    private static final String FIXED_TYPE = "statebackend-native-rocksdb-fixed-per-slot";

    /** The budget, or null: the backend has its own. */
    private final OpaqueMemoryResource<NativeBudget> resource;

    private SlotMemory(OpaqueMemoryResource<NativeBudget> resource) {
        this.resource = resource;
    }

    /** No shared budget: the backend has its own (or, for the heap backends, none). */
    static SlotMemory none() {
        return new SlotMemory(null);
    }

    /** The native budget's id for {@link NativeBridge#open}, or 0: the backend's own. */
    long nativeId() {
        return resource == null ? 0 : resource.getResourceHandle().id;
    }

    /** The shared budget's size in bytes, or 0. */
    long size() {
        return resource == null ? 0 : resource.getSize();
    }

    /** Gives up this backend's lease; the last one frees the native budget. */
    @Override
    public void close() throws Exception {
        if (resource != null) {
            resource.close();
        }
    }

    /**
     * The memory of one RocksDB keyed backend of a slot whose memory manager is {@code
     * memoryManager}, and whose operator has {@code fraction} of the slot's managed memory for
     * state backends.
     */
    static SlotMemory acquire(
            Map<String, String> options, MemoryManager memoryManager, double fraction)
            throws Exception {
        double writeCacheRatio = ratio(options, WRITE_CACHE_RATIO, DEFAULT_WRITE_CACHE_RATIO, true);
        double writeBufferRatio =
                ratio(options, WRITE_BUFFER_RATIO, DEFAULT_WRITE_BUFFER_RATIO, false);
        String fixed = options.get(FIXED_PER_SLOT);
        if (fixed != null) {
            long bytes;
            try {
                bytes = MemorySize.parse(fixed).getBytes();
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException(
                        FIXED_PER_SLOT + ": expected a memory size such as 256 mb, got " + fixed,
                        e);
            }
            return new SlotMemory(
                    memoryManager.getExternalSharedMemoryResource(
                            FIXED_TYPE,
                            size -> NativeBudget.create(size, writeCacheRatio, writeBufferRatio),
                            bytes));
        }
        String managed = options.getOrDefault(MANAGED, "true").trim();
        if (!managed.equalsIgnoreCase("true") && !managed.equalsIgnoreCase("false")) {
            throw new IllegalArgumentException(
                    MANAGED + ": expected true or false, got " + managed);
        }
        if (managed.equalsIgnoreCase("false")) {
            return none();
        }
        if (!(fraction > 0)) {
            throw new IllegalStateException(
                    "NativeRocksDBBackend takes its memory from the slot's managed memory ("
                            + MANAGED
                            + ": true), but its operator was given none (managed memory fraction "
                            + fraction
                            + "): declare managed memory for state backends, or set "
                            + FIXED_PER_SLOT
                            + ", or set "
                            + MANAGED
                            + ": false");
        }
        return new SlotMemory(
                memoryManager.getSharedMemoryResourceForManagedMemory(
                        MANAGED_TYPE,
                        size -> NativeBudget.create(size, writeCacheRatio, writeBufferRatio),
                        fraction));
    }

    private static double ratio(
            Map<String, String> options, String key, double defaultValue, boolean zeroAllowed) {
        String value = options.get(key);
        if (value == null) {
            return defaultValue;
        }
        double ratio;
        try {
            ratio = Double.parseDouble(value.trim());
        } catch (NumberFormatException e) {
            ratio = Double.NaN;
        }
        if (!(ratio >= 0 && ratio < 1) || (ratio == 0 && !zeroAllowed)) {
            throw new IllegalArgumentException(
                    key
                            + ": expected a ratio "
                            + (zeroAllowed ? "from 0 up to, not including, 1" : "between 0 and 1")
                            + ", got "
                            + value);
        }
        return ratio;
    }

    /** A native budget, freed by Flink when the slot's last lease on it goes. */
    static final class NativeBudget implements AutoCloseable {
        final long id;

        private NativeBudget(long id) {
            this.id = id;
        }

        static NativeBudget create(long bytes, double writeCacheRatio, double writeBufferRatio) {
            return new NativeBudget(
                    NativeBridge.sharedMemoryCreate(bytes, writeCacheRatio, writeBufferRatio));
        }

        @Override
        public void close() {
            NativeBridge.sharedMemoryRelease(id);
        }
    }
}
