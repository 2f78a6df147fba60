package io.statebackend.internal;

import java.io.OutputStream;
import java.nio.ByteBuffer;

/**
 * The native methods of the library (src/ffi/jni/). Handles are {@code long} ids checked by the
 * native side: a closed handle throws {@link IllegalStateException}, a backend that a native panic
 * left in an unknown state {@link io.statebackend.StateBackendPoisonedException}. The test command
 * checks these declarations against the Rust functions (tests/jni_signatures.rs).
 *
 * <p>State access calls read their fields, one after another, from a direct input buffer ({@code
 * key ‖ namespace ‖ user key ‖ value}, as the call needs) and write results into a direct output
 * buffer; the two are registered once as a channel ({@link #bind}) and the calls pass ints only.
 * They return the result's length, {@link #ABSENT}, or a value below {@code -1} when the output
 * buffer is too small: {@link #neededCapacity} tells how large it must be.
 */
final class NativeBridge {
    static final int ABSENT = -1;

    /** State kinds: the core's {@code StateKind} codes (checked by tests/jni_signatures.rs). */
    static final int KIND_VALUE = 0;

    static final int KIND_LIST = 1;
    static final int KIND_MAP = 2;
    static final int KIND_SORTED_SET = 3;

    private NativeBridge() {}

    /** The output capacity a too-small result code asks for. */
    static int neededCapacity(int code) {
        return -code - 2;
    }

    /** A backend of {@code backendKind}: "memory", "fs" or "rocksdb" (the core's names). */
    static native long open(
            String backendKind,
            int maxParallelism,
            int keyGroupStart,
            int keyGroupEnd,
            long maxStateSize,
            String localDir,
            String[] rocksDBOptions,
            long sharedMemory,
            RestoreSource[] restore);

    /**
     * A memory budget of {@code bytes} for several RocksDB backends (a slot's managed memory):
     * {@code writeCacheRatio} of it for their write-back caches (split evenly among them), the rest
     * for RocksDB's block cache and memtables (at most {@code writeBufferRatio} of that). Passed to
     * {@link #open}; released with {@link #sharedMemoryRelease}.
     */
    static native long sharedMemoryCreate(
            long bytes, double writeCacheRatio, double writeBufferRatio);

    /**
     * {@code [total, RocksDB's part, the write caches' part, backends sharing it, block cache
     * usage]}, in bytes.
     */
    static native long[] sharedMemoryStats(long sharedMemory);

    /** Releases a budget; backends opened with it keep it until they close. */
    static native void sharedMemoryRelease(long sharedMemory);

    static native boolean rocksDBOptionKnown(String key);

    static native void close(long handle);

    /**
     * Testing only: panics in native code while holding the backend, which poisons it (every later
     * call throws {@link io.statebackend.StateBackendPoisonedException}).
     */
    static native void debugPanic(long handle);

    static native int registerState(long handle, String name, int kind, byte[] metadata);

    /** {@code kind ‖ metadata} of a known state, or null. */
    static native byte[] restoredState(long handle, String name);

    static native long numEntries(long handle);

    /** Flushes and compacts what the state keeps on disk (RocksDB); blocks until done. */
    static native void compactState(long handle, int stateId);

    /**
     * Registers the direct buffers of one accessor ({@code channel} -1: a new channel; else that
     * channel's buffers are replaced); the channel id the access calls take.
     */
    static native int bind(long handle, int channel, ByteBuffer in, ByteBuffer out);

    /** Releases a channel (nothing if the backend is closed). */
    static native void unbind(long handle, int channel);

    // State accesses: fields are read from the channel's input buffer, one after another, by
    // the lengths given; results go into its output buffer.

    static native int valueGet(
            long handle, int channel, int state, int keyGroup, int keyLen, int nsLen);

    static native void valuePut(
            long handle, int channel, int state, int keyGroup, int keyLen, int nsLen, int valueLen);

    static native void clear(
            long handle, int channel, int state, int keyGroup, int keyLen, int nsLen);

    static native int listGet(
            long handle, int channel, int state, int keyGroup, int keyLen, int nsLen);

    static native void listAdd(
            long handle,
            int channel,
            int state,
            int keyGroup,
            int keyLen,
            int nsLen,
            int elementLen);

    /** Input {@code key ‖ namespace ‖ elements}, the elements as {@code varint(len) ‖ bytes}. */
    static native void listAddAll(
            long handle,
            int channel,
            int state,
            int keyGroup,
            int keyLen,
            int nsLen,
            int encodedLen,
            boolean replace);

    /** Input {@code key ‖ target ‖ sources}, the sources as {@code varint(len) ‖ bytes}. */
    static native void mergeNamespaces(
            long handle,
            int channel,
            int state,
            int keyGroup,
            int keyLen,
            int targetLen,
            int sourcesLen);

    static native int mapGet(
            long handle,
            int channel,
            int state,
            int keyGroup,
            int keyLen,
            int nsLen,
            int userKeyLen);

    static native void mapPut(
            long handle,
            int channel,
            int state,
            int keyGroup,
            int keyLen,
            int nsLen,
            int userKeyLen,
            int valueLen);

    /**
     * Input {@code key ‖ namespace ‖ entries}, user key and value alternately, each as {@code
     * varint(len) ‖ bytes}.
     */
    static native void mapPutAll(
            long handle,
            int channel,
            int state,
            int keyGroup,
            int keyLen,
            int nsLen,
            int entriesLen);

    static native void mapRemove(
            long handle,
            int channel,
            int state,
            int keyGroup,
            int keyLen,
            int nsLen,
            int userKeyLen);

    static native boolean mapContains(
            long handle,
            int channel,
            int state,
            int keyGroup,
            int keyLen,
            int nsLen,
            int userKeyLen);

    static native boolean mapIsEmpty(
            long handle, int channel, int state, int keyGroup, int keyLen, int nsLen);

    static native int mapEntries(
            long handle, int channel, int state, int keyGroup, int keyLen, int nsLen);

    // Sorted sets (timers): byte strings per key group, in byte order.

    /** Input: the element. */
    static native void setAdd(long handle, int channel, int state, int keyGroup, int elementLen);

    /** Input: the element. */
    static native void setRemove(long handle, int channel, int state, int keyGroup, int elementLen);

    /**
     * Input: the element to start after ({@code afterLen} -1: from the smallest); output: up to
     * {@code limit} elements above it, ascending, each as {@code varint(len) ‖ bytes}. Returns the
     * output's length (0: none) or a too-small code.
     */
    static native int setRange(
            long handle, int channel, int state, int keyGroup, int afterLen, int limit);

    static native long keysOpen(
            long handle, int state, ByteBuffer in, int nsLen, boolean allNamespaces);

    static native int keysNext(long iterator, ByteBuffer out);

    static native void keysClose(long iterator);

    /** Maps a batch of a state's entries to their new bytes (see {@link #migrateState}). */
    interface Migrator {
        /**
         * In and out, each entry {@code int-length-prefixed user key (maps; else empty) and value}
         * (lists in the native list encoding, {@code varint(len) ‖ element} each; map values as
         * stored); as many entries out as in, in the same order.
         */
        byte[] migrate(byte[] entries) throws Exception;
    }

    /**
     * Rewrites every entry of a state through {@code migrator} (Flink's state migration). With
     * {@code userKeysChange} a map's user keys may change too. Returns {@code [entries, bytes read,
     * bytes written]}; an exception the migrator throws propagates.
     */
    static native long[] migrateState(
            long handle, int state, boolean userKeysChange, Migrator migrator);

    /** The names of the states the backend knows, in state-id order. */
    static native String[] stateNames(long handle);

    /**
     * One reading of the backend's metrics, or null when the backend is closed or busy in another
     * call (never waits, never throws for those): the write cache's hits, misses, cached bytes,
     * dirty bytes, runs in flight, writer stalls and stall nanoseconds ({@link #METRICS_HEADER}
     * values), the values of {@link #metricStatistics}, then per state, in state-id order, its
     * estimated entries and bytes followed by the values of {@link #metricProperties}; -1 for what
     * is not known.
     */
    static native long[] metrics(long handle);

    /** Values of {@link #metrics} before the statistics (the core's {@code ENCODED_HEADER}). */
    static final int METRICS_HEADER = 7;

    /** Values of {@link #metrics} per state before its properties ({@code ENCODED_PER_STATE}). */
    static final int METRICS_PER_STATE = 2;

    /**
     * The RocksDB properties {@link #metrics} reads per state ({@code rocksdb.estimate-num-keys},
     * …), as enabled by {@code state.backend.rocksdb.metrics.*}; empty for the heap backends.
     */
    static native String[] metricProperties(long handle);

    /**
     * The RocksDB statistics counters {@link #metrics} reads for the whole DB, by Flink's metric
     * names ({@code rocksdb.block_cache_hit}, …), as enabled by {@code
     * state.backend.rocksdb.metrics.*}; empty for the heap backends.
     */
    static native String[] metricStatistics(long handle);

    /** {@code state.backend.rocksdb.metrics.column-family-as-variable}. */
    static native boolean metricsColumnFamilyAsVariable(long handle);

    /**
     * An iterator over every entry, key group by key group, over a point-in-time view taken now
     * (the synchronous phase of a canonical savepoint).
     */
    static native long entriesOpen(long handle);

    /**
     * Fills {@code out} with entries: {@code int keyGroup, int state, then int-length-prefixed key,
     * namespace, user key (maps) and value} (lists in Flink's delimited encoding). Returns the
     * bytes written, 0 at the end, or a too-small code.
     */
    static native int entriesNext(long iterator, ByteBuffer out);

    static native void entriesClose(long iterator);

    static native long snapshot(long handle, long checkpointId);

    /**
     * {@code [bytes written, data size, keyGroup, offset, keyGroup, offset, ...]}; values of state
     * {@code i} go through {@code filters[i]} unless it is null ({@code filters} may be null).
     */
    static native long[] snapshotWrite(
            long pending,
            OutputStream out,
            byte[] chunk,
            String name,
            NativeSnapshotStrategy.ValueFilter[] filters);

    static native void snapshotRelease(long pending);

    /**
     * The synchronous phase of an incremental RocksDB snapshot: an upload id for the calls below.
     */
    static native long snapshotIncremental(long handle, long checkpointId);

    /** Names of the shared (immutable SST) or private files of an incremental snapshot. */
    static native String[] uploadFiles(long upload, boolean shared);

    /**
     * Copies one file of an incremental snapshot into {@code out}; returns the record that lets a
     * later snapshot refer to this copy ({@link #uploadReuse}).
     */
    static native byte[] uploadFile(
            long upload, String file, OutputStream out, byte[] chunk, String outName);

    /**
     * Refers to a shared file stored for an earlier snapshot; false if this one has no such file.
     */
    static native boolean uploadReuse(long upload, byte[] record);

    /**
     * Writes the meta stream once every file is stored: {@code [meta bytes, bytes of all files,
     * bytes uploaded by this snapshot]}. Consumes the upload.
     */
    static native long[] uploadFinish(long upload, OutputStream out, byte[] chunk, String outName);

    /** Drops an upload that will not be finished (its local hard links go). */
    static native void uploadRelease(long upload);
}
