package io.statebackend.internal;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import org.apache.flink.api.common.state.StateDescriptor;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.api.common.typeutils.TypeSerializerSnapshot;
import org.apache.flink.api.common.typeutils.base.ListSerializer;
import org.apache.flink.core.memory.DataInputDeserializer;
import org.apache.flink.core.memory.DataOutputSerializer;
import org.apache.flink.runtime.state.CompositeKeySerializationUtils;
import org.apache.flink.runtime.state.FullSnapshotResources;
import org.apache.flink.runtime.state.KeyGroupRange;
import org.apache.flink.runtime.state.KeyValueStateIterator;
import org.apache.flink.runtime.state.RegisteredPriorityQueueStateBackendMetaInfo;
import org.apache.flink.runtime.state.StreamCompressionDecorator;
import org.apache.flink.runtime.state.heap.HeapPriorityQueueStateSnapshot;
import org.apache.flink.runtime.state.metainfo.StateMetaInfoSnapshot;

/**
 * The resources of a canonical savepoint, written by Flink's {@code FullSnapshotAsyncWriter}: the
 * meta information of every state (native key/value states in state-id order, then the timer
 * queues) and an iterator over all entries, key group by key group, in Flink's canonical key
 * layout: {@code key-group prefix ‖ key ‖ [key length] ‖ namespace ‖ [namespace length] ‖ [user
 * key]} (the lengths only when key and namespace serializers are both variable-sized).
 *
 * <p>The native point-in-time view and copies of the timer queues are taken when this object is
 * created (the synchronous phase); the entries are read in the asynchronous phase, through the
 * states' snapshot transformers (state TTL's {@code cleanupFullSnapshot} leaves expired values out,
 * as Flink's RocksDB backend does in its savepoints).
 */
final class CanonicalSavepoint<K> implements FullSnapshotResources<K> {
    private final NativeHandle backend;
    private final KeyGroupRange keyGroupRange;
    private final TypeSerializer<K> keySerializer;
    private final StreamCompressionDecorator compression;
    private final int keyGroupPrefixBytes;
    private final List<StateMetaInfoSnapshot> metaInfos = new ArrayList<>();

    /** Per native state id: whether its composite keys carry lengths. */
    private final boolean[] ambiguous;

    /**
     * Per native state id: its id in the savepoint (the index of its meta information), or -1: not
     * in the savepoint (a native timer queue whose timers moved to a heap queue).
     */
    private final int[] savepointIds;

    /**
     * Per native state id: Flink's snapshot transformer over its canonical values (state TTL's
     * {@code cleanupFullSnapshot}), or null.
     */
    private final NativeSnapshotStrategy.ValueFilter[] filters;

    private final List<HeapPriorityQueueStateSnapshot<?>> queues = new ArrayList<>();

    /** The savepoint id of the first heap timer queue. */
    private final int queueBase;

    private long entries;

    CanonicalSavepoint(
            NativeHandle backend,
            KeyGroupRange keyGroupRange,
            int numberOfKeyGroups,
            TypeSerializer<K> keySerializer,
            StreamCompressionDecorator compression,
            ClassLoader classLoader,
            Map<String, TypeSerializer<?>> registeredNamespaceSerializers,
            List<HeapPriorityQueueStateSnapshot<?>> queueSnapshots,
            boolean nativeTimers,
            NativeSnapshotStrategy.ValueFilter[] valueFilters)
            throws IOException {
        this.backend = backend;
        this.keyGroupRange = keyGroupRange;
        this.keySerializer = keySerializer;
        this.compression = compression;
        this.keyGroupPrefixBytes =
                CompositeKeySerializationUtils.computeRequiredBytesInKeyGroupPrefix(
                        numberOfKeyGroups);
        String[] names = NativeBridge.stateNames(backend.id());
        this.ambiguous = new boolean[names.length];
        this.savepointIds = new int[names.length];
        this.filters = new NativeSnapshotStrategy.ValueFilter[names.length];
        boolean keyVariable =
                CompositeKeySerializationUtils.isSerializerTypeVariableSized(keySerializer);
        for (int id = 0; id < names.length; id++) {
            String name = names[id];
            byte[] known = NativeBridge.restoredState(backend.id(), name);
            byte[] metadata = new byte[known.length - 1];
            System.arraycopy(known, 1, metadata, 0, metadata.length);
            if (known[0] == NativeBridge.KIND_SORTED_SET) {
                // Elements are the keys after the key-group prefix, as in Flink's savepoints.
                savepointIds[id] = nativeTimers ? metaInfos.size() : -1;
                if (nativeTimers) {
                    metaInfos.add(
                            new RegisteredPriorityQueueStateBackendMetaInfo<>(
                                            name,
                                            StateMetadata.decodeQueue(name, metadata, classLoader)
                                                    .restoreSerializer())
                                    .snapshot());
                }
                continue;
            }
            savepointIds[id] = metaInfos.size();
            StateMetadata.Decoded decoded = StateMetadata.decode(name, metadata, classLoader);
            TypeSerializer<?> namespaceSerializer = registeredNamespaceSerializers.get(name);
            if (namespaceSerializer == null) {
                namespaceSerializer = decoded.namespaceSerializer.restoreSerializer();
            }
            ambiguous[id] =
                    keyVariable
                            && CompositeKeySerializationUtils.isSerializerTypeVariableSized(
                                    namespaceSerializer);
            metaInfos.add(keyValueMetaInfo(name, decoded));
            if (valueFilters != null && id < valueFilters.length && valueFilters[id] != null) {
                // Values and map values are stored as the savepoint carries them; lists are
                // filtered element by element, as in full snapshots.
                filters[id] =
                        decoded.type == StateDescriptor.Type.LIST
                                ? NativeSnapshotStrategy.ValueFilter.delimitedList(
                                        ((ListSerializer<?>)
                                                        decoded.valueSerializer.restoreSerializer())
                                                .getElementSerializer(),
                                        valueFilters[id])
                                : valueFilters[id];
            }
        }
        this.queueBase = metaInfos.size();
        for (HeapPriorityQueueStateSnapshot<?> queue : queueSnapshots) {
            queues.add(queue);
            metaInfos.add(queue.getMetaInfoSnapshot());
        }
        this.entries = NativeBridge.entriesOpen(backend.id());
    }

    private static StateMetaInfoSnapshot keyValueMetaInfo(
            String name, StateMetadata.Decoded decoded) {
        Map<String, String> options =
                Map.of(
                        StateMetaInfoSnapshot.CommonOptionsKeys.KEYED_STATE_TYPE.toString(),
                        decoded.type.toString());
        Map<String, TypeSerializerSnapshot<?>> serializers =
                Map.of(
                        StateMetaInfoSnapshot.CommonSerializerKeys.NAMESPACE_SERIALIZER.toString(),
                        decoded.namespaceSerializer,
                        StateMetaInfoSnapshot.CommonSerializerKeys.VALUE_SERIALIZER.toString(),
                        decoded.valueSerializer);
        return new StateMetaInfoSnapshot(
                name,
                StateMetaInfoSnapshot.BackendStateType.KEY_VALUE,
                new java.util.HashMap<>(options),
                new java.util.HashMap<>(serializers));
    }

    /** The state type a canonical savepoint records for a state, for tests and logs. */
    static StateDescriptor.Type typeOf(StateMetaInfoSnapshot metaInfo) {
        return StateDescriptor.Type.valueOf(
                metaInfo.getOption(StateMetaInfoSnapshot.CommonOptionsKeys.KEYED_STATE_TYPE));
    }

    @Override
    public List<StateMetaInfoSnapshot> getMetaInfoSnapshots() {
        return metaInfos;
    }

    @Override
    public synchronized KeyValueStateIterator createKVStateIterator() throws IOException {
        if (entries == 0) {
            throw new IllegalStateException("the savepoint's entries were already read");
        }
        long it = entries;
        entries = 0;
        return new Entries(it);
    }

    @Override
    public KeyGroupRange getKeyGroupRange() {
        return keyGroupRange;
    }

    @Override
    public TypeSerializer<K> getKeySerializer() {
        return keySerializer;
    }

    @Override
    public StreamCompressionDecorator getStreamCompressionDecorator() {
        return compression;
    }

    @Override
    public synchronized void release() {
        if (entries != 0) {
            NativeBridge.entriesClose(entries);
            entries = 0;
        }
    }

    /**
     * The entries in (key group, state) order: per key group the native states' entries (state-id
     * order, as the native view yields them), then each timer queue's elements.
     */
    private final class Entries implements KeyValueStateIterator {
        private final long iterator;
        private final NativeAccess buffers;
        private final DataOutputSerializer keyOut = new DataOutputSerializer(64);
        private DataInputDeserializer batch;
        private boolean nativeDone;

        // The next native entry, read ahead.
        private boolean pending;
        private int pendingKeyGroup;
        private int pendingState;
        private byte[] pendingKey;
        private byte[] pendingValue;

        private int keyGroup;
        private int queueIndex;
        private Iterator<?> queueElements;
        private boolean inQueues;

        private boolean valid;
        private int currentKeyGroup = -1;
        private int currentState = -1;
        private boolean newKeyGroup;
        private boolean newState;
        private byte[] key;
        private byte[] value;

        Entries(long iterator) throws IOException {
            this.iterator = iterator;
            this.buffers = new NativeAccess(backend);
            this.keyGroup = keyGroupRange.getStartKeyGroup();
            if (keyGroupRange.getNumberOfKeyGroups() == 0) {
                close();
                valid = false;
            } else {
                next();
            }
        }

        @Override
        public void next() throws IOException {
            while (true) {
                if (!inQueues) {
                    readAhead();
                    if (pending && pendingKeyGroup == keyGroup) {
                        pending = false;
                        set(keyGroup, savepointIds[pendingState], pendingKey, pendingValue);
                        return;
                    }
                    inQueues = true;
                    queueIndex = 0;
                    queueElements = null;
                }
                while (queueIndex < queues.size()) {
                    if (queueElements == null) {
                        queueElements = queues.get(queueIndex).getIteratorForKeyGroup(keyGroup);
                    }
                    if (queueElements.hasNext()) {
                        set(keyGroup, queueBase + queueIndex, queueKey(), new byte[0]);
                        return;
                    }
                    queueIndex++;
                    queueElements = null;
                }
                if (keyGroup >= keyGroupRange.getEndKeyGroup()) {
                    valid = false;
                    close();
                    return;
                }
                keyGroup++;
                inQueues = false;
            }
        }

        @SuppressWarnings("unchecked")
        private byte[] queueKey() throws IOException {
            HeapPriorityQueueStateSnapshot<Object> queue =
                    (HeapPriorityQueueStateSnapshot<Object>) queues.get(queueIndex);
            keyOut.clear();
            CompositeKeySerializationUtils.writeKeyGroup(keyGroup, keyGroupPrefixBytes, keyOut);
            queue.getMetaInfo().getElementSerializer().serialize(queueElements.next(), keyOut);
            return keyOut.getCopyOfBuffer();
        }

        private void set(int kg, int state, byte[] k, byte[] v) {
            newKeyGroup = kg != currentKeyGroup;
            newState = newKeyGroup || state != currentState;
            currentKeyGroup = kg;
            currentState = state;
            key = k;
            value = v;
            valid = true;
        }

        /**
         * Reads the next native entry that the state's filter keeps into the pending fields, if
         * there is none yet.
         */
        private void readAhead() throws IOException {
            while (!pending && !nativeDone) {
                readOne();
                if (pending && savepointIds[pendingState] < 0) {
                    pending = false;
                    continue;
                }
                NativeSnapshotStrategy.ValueFilter filter = pending ? filters[pendingState] : null;
                if (filter != null) {
                    pendingValue = filter.filter(pendingValue);
                    pending = pendingValue != null;
                }
            }
        }

        /** Reads the next native entry into the pending fields. */
        private void readOne() throws IOException {
            if (batch == null || batch.available() == 0) {
                int r;
                do {
                    r = NativeBridge.entriesNext(iterator, buffers.out());
                } while (buffers.retry(r));
                if (r <= 0) {
                    nativeDone = true;
                    NativeBridge.entriesClose(iterator);
                    return;
                }
                batch = buffers.copyResult(r);
            }
            pendingKeyGroup = batch.readInt();
            pendingState = batch.readInt();
            boolean withLengths = ambiguous[pendingState];
            keyOut.clear();
            CompositeKeySerializationUtils.writeKeyGroup(
                    pendingKeyGroup, keyGroupPrefixBytes, keyOut);
            int keyLen = copyField();
            if (withLengths) {
                CompositeKeySerializationUtils.writeVariableIntBytes(keyLen, keyOut);
            }
            int nsLen = copyField();
            if (withLengths) {
                CompositeKeySerializationUtils.writeVariableIntBytes(nsLen, keyOut);
            }
            copyField(); // the user key of a map entry, else empty
            pendingKey = keyOut.getCopyOfBuffer();
            pendingValue = new byte[batch.readInt()];
            batch.readFully(pendingValue);
            pending = true;
        }

        private int copyField() throws IOException {
            int len = batch.readInt();
            keyOut.write(batch, len);
            return len;
        }

        @Override
        public int keyGroup() {
            return currentKeyGroup;
        }

        @Override
        public byte[] key() {
            return key;
        }

        @Override
        public byte[] value() {
            return value;
        }

        @Override
        public int kvStateId() {
            return currentState;
        }

        @Override
        public boolean isNewKeyValueState() {
            return newState;
        }

        @Override
        public boolean isNewKeyGroup() {
            return newKeyGroup;
        }

        @Override
        public boolean isValid() {
            return valid;
        }

        @Override
        public void close() {
            if (!nativeDone) {
                nativeDone = true;
                NativeBridge.entriesClose(iterator);
            }
        }
    }
}
