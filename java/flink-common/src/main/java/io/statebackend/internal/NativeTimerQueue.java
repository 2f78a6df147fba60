package io.statebackend.internal;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Comparator;
import java.util.Iterator;
import java.util.List;
import java.util.NoSuchElementException;
import java.util.TreeSet;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.core.memory.DataInputDeserializer;
import org.apache.flink.core.memory.DataOutputSerializer;
import org.apache.flink.runtime.state.InternalPriorityQueue;
import org.apache.flink.runtime.state.KeyExtractorFunction;
import org.apache.flink.runtime.state.KeyGroupRange;
import org.apache.flink.runtime.state.PriorityComparator;
import org.apache.flink.runtime.state.heap.HeapPriorityQueueElement;
import org.apache.flink.runtime.state.heap.KeyGroupPartitionedPriorityQueue;
import org.apache.flink.util.CloseableIterator;

/**
 * A timer queue in a native sorted set ({@code state.backend.rocksdb.timer-service.factory:
 * ROCKSDB}): the timers live in RocksDB, ordered by their serialized bytes (Flink's timer
 * serializer writes the timestamp first, sign bit flipped, so byte order is time order), one set
 * per key group; Flink's {@link KeyGroupPartitionedPriorityQueue} keeps the heads of the key groups
 * in order.
 *
 * <p>Each key group keeps its smallest elements (up to {@link #CACHE_SIZE}) on the JVM heap, so
 * that {@code peek} and {@code poll} rarely reach the native side; every change is written through.
 * The cached elements are exactly the set's smallest: an element added below the largest cached one
 * joins the cache (evicting the largest when full), others go to the native set only. When the
 * cache runs empty, it is refilled from the native set, starting after the last element it held:
 * nothing smaller is left, and the deleted elements before it are not read again.
 */
final class NativeTimerQueue<T> {
    /** Elements of a key group kept on the heap (Flink's RocksDB timers keep 128 as well). */
    static final int CACHE_SIZE = 128;

    private static final Comparator<byte[]> BYTE_ORDER = Arrays::compareUnsigned;

    private final NativeHandle backend;
    private final NativeAccess access;
    private final int stateId;
    private final String name;
    private TypeSerializer<T> serializer;
    private final DataOutputSerializer out = new DataOutputSerializer(64);
    private final DataInputDeserializer in = new DataInputDeserializer();
    private final KeyGroupPartitionedPriorityQueue<T, KeyGroupSet> queue;

    /**
     * @param access the backend's timer accessor: task thread only, and not the states' (their
     *     input holds the current key between calls)
     */
    NativeTimerQueue(
            NativeHandle backend,
            NativeAccess access,
            int stateId,
            String name,
            TypeSerializer<T> serializer,
            KeyExtractorFunction<T> keyExtractor,
            PriorityComparator<T> comparator,
            KeyGroupRange keyGroupRange,
            int numberOfKeyGroups) {
        this.backend = backend;
        this.access = access;
        this.stateId = stateId;
        this.name = name;
        this.serializer = serializer;
        KeyGroupPartitionedPriorityQueue.PartitionQueueSetFactory<T, KeyGroupSet> sets =
                (keyGroup, groups, extractor, order) -> new KeyGroupSet(keyGroup);
        this.queue =
                new KeyGroupPartitionedPriorityQueue<>(
                        keyExtractor, comparator, sets, keyGroupRange, numberOfKeyGroups);
    }

    KeyGroupPartitionedPriorityQueue<T, KeyGroupSet> queue() {
        return queue;
    }

    int stateId() {
        return stateId;
    }

    /** The serializer of a later registration (compatible: the elements' bytes are the same). */
    void updateSerializer(TypeSerializer<T> serializer) {
        this.serializer = serializer;
    }

    private byte[] serialize(T element) {
        try {
            out.clear();
            serializer.serialize(element, out);
            return out.getCopyOfBuffer();
        } catch (IOException e) {
            throw new UncheckedIOException("serializing a timer of '" + name + "'", e);
        }
    }

    private T deserialize(byte[] bytes) {
        try {
            in.setBuffer(bytes);
            return serializer.deserialize(in);
        } catch (IOException e) {
            throw new UncheckedIOException("deserializing a timer of '" + name + "'", e);
        }
    }

    private void nativeAdd(int keyGroup, byte[] element) {
        access.startRaw();
        int len = access.appendRaw(element, 0, element.length);
        NativeBridge.setAdd(backend.id(), access.channel(), stateId, keyGroup, len);
    }

    private void nativeRemove(int keyGroup, byte[] element) {
        access.startRaw();
        int len = access.appendRaw(element, 0, element.length);
        NativeBridge.setRemove(backend.id(), access.channel(), stateId, keyGroup, len);
    }

    /**
     * Up to {@code limit} elements of a key group's native set above {@code after} (null: from the
     * smallest), ascending.
     */
    List<byte[]> range(int keyGroup, byte[] after, int limit) {
        int r;
        do {
            access.startRaw();
            int afterLen = after == null ? -1 : access.appendRaw(after, 0, after.length);
            r =
                    NativeBridge.setRange(
                            backend.id(), access.channel(), stateId, keyGroup, afterLen, limit);
        } while (access.retry(r));
        List<byte[]> elements = new ArrayList<>();
        if (r <= 0) {
            return elements;
        }
        DirectInputView result = access.result(r);
        try {
            while (result.available() > 0) {
                byte[] element = new byte[NativeListState.readVarint(result)];
                result.readFully(element);
                elements.add(element);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("reading timers of '" + name + "'", e);
        }
        return elements;
    }

    /** The timers of one key group: a native sorted set with its smallest elements cached. */
    final class KeyGroupSet implements InternalPriorityQueue<T>, HeapPriorityQueueElement {
        private final int keyGroup;
        private final TreeSet<byte[]> cache = new TreeSet<>(BYTE_ORDER);

        /** Whether the cache holds every element (false until the set was first read). */
        private boolean allCached;

        /** Where a refill starts: after the last element the cache held when it ran empty. */
        private byte[] refillAfter;

        /** The first cached element, deserialized, or null. */
        private T head;

        private int internalIndex = HeapPriorityQueueElement.NOT_CONTAINED;

        KeyGroupSet(int keyGroup) {
            this.keyGroup = keyGroup;
        }

        private void refillIfEmpty() {
            if (allCached || !cache.isEmpty()) {
                return;
            }
            List<byte[]> loaded = range(keyGroup, refillAfter, CACHE_SIZE + 1);
            allCached = loaded.size() <= CACHE_SIZE;
            cache.addAll(loaded.subList(0, Math.min(loaded.size(), CACHE_SIZE)));
        }

        /** The cache ran empty with {@code last} leaving it: nothing at or below it remains. */
        private void drained(byte[] last) {
            if (cache.isEmpty()) {
                refillAfter = last;
            }
        }

        @Override
        public T peek() {
            refillIfEmpty();
            if (head == null && !cache.isEmpty()) {
                head = deserialize(cache.first());
            }
            return head;
        }

        @Override
        public T poll() {
            refillIfEmpty();
            byte[] first = cache.pollFirst();
            if (first == null) {
                return null;
            }
            nativeRemove(keyGroup, first);
            drained(first);
            T polled = head != null ? head : deserialize(first);
            head = null;
            return polled;
        }

        @Override
        public boolean add(T element) {
            refillIfEmpty();
            byte[] bytes = serialize(element);
            nativeAdd(keyGroup, bytes);
            boolean full = cache.size() >= CACHE_SIZE;
            if ((allCached && !full)
                    || (!cache.isEmpty() && BYTE_ORDER.compare(bytes, cache.last()) < 0)) {
                if (!cache.add(bytes)) {
                    return false;
                }
                if (full) {
                    cache.pollLast();
                    allCached = false;
                }
                if (cache.first() == bytes) {
                    head = null;
                    return true;
                }
                return false;
            }
            // Above every cached element: only in the native set.
            allCached = false;
            return false;
        }

        @Override
        public boolean remove(T element) {
            refillIfEmpty();
            if (cache.isEmpty()) {
                return false;
            }
            byte[] bytes = serialize(element);
            nativeRemove(keyGroup, bytes);
            byte[] oldFirst = cache.first();
            if (!cache.remove(bytes)) {
                return false;
            }
            drained(bytes);
            if (cache.isEmpty() || BYTE_ORDER.compare(oldFirst, bytes) == 0) {
                head = null;
                return true;
            }
            return false;
        }

        @Override
        public boolean isEmpty() {
            refillIfEmpty();
            return cache.isEmpty();
        }

        /** Reads the whole native set when not all of it is cached: for tests and diagnostics. */
        @Override
        public int size() {
            refillIfEmpty();
            if (allCached) {
                return cache.size();
            }
            int n = 0;
            for (Iterator<byte[]> it = elements(); it.hasNext(); it.next()) {
                n++;
            }
            return n;
        }

        @Override
        public void addAll(Collection<? extends T> elements) {
            if (elements != null) {
                for (T element : elements) {
                    add(element);
                }
            }
        }

        @Override
        public CloseableIterator<T> iterator() {
            Iterator<byte[]> bytes = elements();
            return CloseableIterator.adapterForIterator(
                    new Iterator<T>() {
                        @Override
                        public boolean hasNext() {
                            return bytes.hasNext();
                        }

                        @Override
                        public T next() {
                            return deserialize(bytes.next());
                        }
                    });
        }

        /** Every element, ascending, read from the native set page by page. */
        private Iterator<byte[]> elements() {
            return new Iterator<byte[]>() {
                private List<byte[]> page = range(keyGroup, refillAfter, 1024);
                private int next;

                @Override
                public boolean hasNext() {
                    if (next == page.size() && page.size() == 1024) {
                        page = range(keyGroup, page.get(next - 1), 1024);
                        next = 0;
                    }
                    return next < page.size();
                }

                @Override
                public byte[] next() {
                    if (!hasNext()) {
                        throw new NoSuchElementException();
                    }
                    return page.get(next++);
                }
            };
        }

        @Override
        public int getInternalIndex() {
            return internalIndex;
        }

        @Override
        public void setInternalIndex(int newIndex) {
            internalIndex = newIndex;
        }
    }
}
