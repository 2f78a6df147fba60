package io.statebackend.internal;

import java.io.IOException;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import org.apache.flink.api.common.state.StateDescriptor;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.api.common.typeutils.TypeSerializerSnapshot;
import org.apache.flink.api.common.typeutils.base.ListSerializer;
import org.apache.flink.core.memory.DataInputDeserializer;
import org.apache.flink.core.memory.DataOutputSerializer;
import org.apache.flink.runtime.state.CompositeKeySerializationUtils;
import org.apache.flink.runtime.state.KeyExtractorFunction;
import org.apache.flink.runtime.state.KeyGroupRange;
import org.apache.flink.runtime.state.KeyedStateHandle;
import org.apache.flink.runtime.state.RegisteredPriorityQueueStateBackendMetaInfo;
import org.apache.flink.runtime.state.StateSerializerProvider;
import org.apache.flink.runtime.state.heap.HeapPriorityQueueElement;
import org.apache.flink.runtime.state.heap.HeapPriorityQueueSet;
import org.apache.flink.runtime.state.heap.HeapPriorityQueueSetFactory;
import org.apache.flink.runtime.state.heap.HeapPriorityQueueSnapshotRestoreWrapper;
import org.apache.flink.runtime.state.metainfo.StateMetaInfoSnapshot;
import org.apache.flink.runtime.state.restore.FullSnapshotRestoreOperation;
import org.apache.flink.runtime.state.restore.KeyGroup;
import org.apache.flink.runtime.state.restore.KeyGroupEntry;
import org.apache.flink.runtime.state.restore.SavepointRestoreResult;
import org.apache.flink.runtime.state.restore.ThrowingIterator;

/**
 * Restores canonical savepoints ({@code KeyGroupsSavepointStateHandle}, written by any Flink
 * backend) into a native backend: Flink's {@link FullSnapshotRestoreOperation} reads the meta
 * information and the entries of our key groups; each key/value state is registered natively with
 * the savepoint's serializer snapshots, each entry's canonical key is split into key, namespace and
 * user key and written into the native store; timer queues go to Flink's heap priority queues.
 */
final class CanonicalRestore<K> {
    private final NativeHandle backend;
    private final KeyGroupRange keyGroupRange;
    private final int numberOfKeyGroups;
    private final int keyGroupPrefixBytes;
    private final ClassLoader classLoader;
    private final StateSerializerProvider<K> keySerializerProvider;
    private final HeapPriorityQueueSetFactory queueFactory;
    private final Map<String, HeapPriorityQueueSnapshotRestoreWrapper<?>> queues;

    /** Whether timer queues go to native sorted sets (else to Flink's heap queues). */
    private final boolean nativeTimers;

    private final NativeAccess access;
    private final DataInputDeserializer keyIn = new DataInputDeserializer();
    private final DataInputDeserializer valueIn = new DataInputDeserializer();
    private final DataOutputSerializer list = new DataOutputSerializer(256);

    /** How the entries of one state of the savepoint are written. */
    private static final class Target {
        final int nativeId;
        final StateDescriptor.Type type;
        final TypeSerializer<?> namespaceSerializer;
        final TypeSerializer<?> elementSerializer; // lists
        final boolean ambiguous;
        final HeapPriorityQueueSnapshotRestoreWrapper<?> queue;

        Target(
                int nativeId,
                StateDescriptor.Type type,
                TypeSerializer<?> namespaceSerializer,
                TypeSerializer<?> elementSerializer,
                boolean ambiguous) {
            this.nativeId = nativeId;
            this.type = type;
            this.namespaceSerializer = namespaceSerializer;
            this.elementSerializer = elementSerializer;
            this.ambiguous = ambiguous;
            this.queue = null;
        }

        /** A native timer queue: elements are the keys after the key-group prefix. */
        Target(int sortedSetId) {
            this.nativeId = sortedSetId;
            this.type = null;
            this.namespaceSerializer = null;
            this.elementSerializer = null;
            this.ambiguous = false;
            this.queue = null;
        }

        Target(HeapPriorityQueueSnapshotRestoreWrapper<?> queue) {
            this.nativeId = -1;
            this.type = null;
            this.namespaceSerializer = null;
            this.elementSerializer = null;
            this.ambiguous = false;
            this.queue = queue;
        }
    }

    CanonicalRestore(
            NativeHandle backend,
            KeyGroupRange keyGroupRange,
            int numberOfKeyGroups,
            ClassLoader classLoader,
            TypeSerializer<K> keySerializer,
            HeapPriorityQueueSetFactory queueFactory,
            Map<String, HeapPriorityQueueSnapshotRestoreWrapper<?>> queues,
            boolean nativeTimers) {
        this.backend = backend;
        this.keyGroupRange = keyGroupRange;
        this.numberOfKeyGroups = numberOfKeyGroups;
        this.keyGroupPrefixBytes =
                CompositeKeySerializationUtils.computeRequiredBytesInKeyGroupPrefix(
                        numberOfKeyGroups);
        this.classLoader = classLoader;
        this.keySerializerProvider =
                StateSerializerProvider.fromNewRegisteredSerializer(keySerializer);
        this.queueFactory = queueFactory;
        this.queues = queues;
        this.nativeTimers = nativeTimers;
        this.access = new NativeAccess(backend);
    }

    void restore(Collection<KeyedStateHandle> handles) throws Exception {
        FullSnapshotRestoreOperation<K> operation =
                new FullSnapshotRestoreOperation<>(
                        keyGroupRange, classLoader, handles, keySerializerProvider);
        // The accessor's buffers are registered with the backend until the restore ends.
        try (access;
                ThrowingIterator<SavepointRestoreResult> results = operation.restore()) {
            while (results.hasNext()) {
                SavepointRestoreResult result = results.next();
                TypeSerializer<K> keySerializer = keySerializerProvider.previousSchemaSerializer();
                Target[] targets = register(result.getStateMetaInfoSnapshots(), keySerializer);
                try (ThrowingIterator<KeyGroup> groups = result.getRestoredKeyGroups()) {
                    while (groups.hasNext()) {
                        KeyGroup group = groups.next();
                        try (ThrowingIterator<KeyGroupEntry> entries = group.getKeyGroupEntries()) {
                            while (entries.hasNext()) {
                                KeyGroupEntry entry = entries.next();
                                write(
                                        group.getKeyGroupId(),
                                        targets[entry.getKvStateId()],
                                        entry,
                                        keySerializer);
                            }
                        }
                    }
                }
            }
        }
    }

    private Target[] register(
            List<StateMetaInfoSnapshot> metaInfos, TypeSerializer<K> keySerializer)
            throws IOException {
        Target[] targets = new Target[metaInfos.size()];
        boolean keyVariable =
                CompositeKeySerializationUtils.isSerializerTypeVariableSized(keySerializer);
        for (int i = 0; i < targets.length; i++) {
            StateMetaInfoSnapshot meta = metaInfos.get(i);
            switch (meta.getBackendStateType()) {
                case KEY_VALUE:
                    targets[i] = registerKeyValue(meta, keyVariable);
                    break;
                case PRIORITY_QUEUE:
                    targets[i] =
                            nativeTimers
                                    ? new Target(registerNativeQueue(meta))
                                    : new Target(registerQueue(meta));
                    break;
                default:
                    throw new IllegalStateException(
                            "unexpected state "
                                    + meta.getName()
                                    + " of type "
                                    + meta.getBackendStateType()
                                    + " in a keyed savepoint");
            }
        }
        return targets;
    }

    private Target registerKeyValue(StateMetaInfoSnapshot meta, boolean keyVariable)
            throws IOException {
        StateDescriptor.Type type = CanonicalSavepoint.typeOf(meta);
        TypeSerializerSnapshot<?> nsSnapshot =
                meta.getTypeSerializerSnapshot(
                        StateMetaInfoSnapshot.CommonSerializerKeys.NAMESPACE_SERIALIZER);
        TypeSerializerSnapshot<?> valueSnapshot =
                meta.getTypeSerializerSnapshot(
                        StateMetaInfoSnapshot.CommonSerializerKeys.VALUE_SERIALIZER);
        byte[] metadata =
                StateMetadata.encode(
                        type,
                        keySerializerProvider.currentSchemaSerializer().snapshotConfiguration(),
                        nsSnapshot,
                        valueSnapshot);
        int id =
                NativeBridge.registerState(
                        backend.id(),
                        meta.getName(),
                        NativeKeyedStateBackend.nativeKind(type),
                        metadata);
        TypeSerializer<?> namespaceSerializer = nsSnapshot.restoreSerializer();
        TypeSerializer<?> elementSerializer =
                type == StateDescriptor.Type.LIST
                        ? ((ListSerializer<?>) valueSnapshot.restoreSerializer())
                                .getElementSerializer()
                        : null;
        return new Target(
                id,
                type,
                namespaceSerializer,
                elementSerializer,
                keyVariable
                        && CompositeKeySerializationUtils.isSerializerTypeVariableSized(
                                namespaceSerializer));
    }

    private int registerNativeQueue(StateMetaInfoSnapshot meta) throws IOException {
        TypeSerializerSnapshot<?> element =
                new RegisteredPriorityQueueStateBackendMetaInfo<>(meta)
                        .getElementSerializer()
                        .snapshotConfiguration();
        return NativeBridge.registerState(
                backend.id(),
                meta.getName(),
                NativeBridge.KIND_SORTED_SET,
                StateMetadata.encodeQueue(element));
    }

    @SuppressWarnings({"unchecked", "rawtypes"})
    private HeapPriorityQueueSnapshotRestoreWrapper<?> registerQueue(StateMetaInfoSnapshot meta) {
        HeapPriorityQueueSnapshotRestoreWrapper<?> existing = queues.get(meta.getName());
        if (existing != null) {
            return existing;
        }
        RegisteredPriorityQueueStateBackendMetaInfo metaInfo =
                new RegisteredPriorityQueueStateBackendMetaInfo(meta);
        HeapPriorityQueueSet queue =
                queueFactory.create(meta.getName(), metaInfo.getElementSerializer());
        HeapPriorityQueueSnapshotRestoreWrapper wrapper =
                new HeapPriorityQueueSnapshotRestoreWrapper(
                        queue,
                        metaInfo,
                        KeyExtractorFunction.forKeyedObjects(),
                        keyGroupRange,
                        numberOfKeyGroups);
        queues.put(meta.getName(), wrapper);
        return wrapper;
    }

    @SuppressWarnings({"unchecked", "rawtypes"})
    private void write(
            int keyGroup, Target target, KeyGroupEntry entry, TypeSerializer<K> keySerializer)
            throws IOException {
        byte[] key = entry.getKey();
        keyIn.setBuffer(key);
        keyIn.skipBytesToRead(keyGroupPrefixBytes);
        if (target.queue != null) {
            HeapPriorityQueueSnapshotRestoreWrapper wrapper = target.queue;
            Object element = wrapper.getMetaInfo().getElementSerializer().deserialize(keyIn);
            wrapper.getPriorityQueue().add((HeapPriorityQueueElement) element);
            return;
        }
        if (target.type == null) {
            // A native timer queue: the element's bytes as the savepoint holds them.
            access.startRaw();
            int len = access.appendRaw(key, keyGroupPrefixBytes, key.length - keyGroupPrefixBytes);
            NativeBridge.setAdd(backend.id(), access.channel(), target.nativeId, keyGroup, len);
            return;
        }
        int keyStart = keyIn.getPosition();
        int keyLen = skip(keySerializer, keyStart, target.ambiguous);
        int nsStart = keyIn.getPosition();
        int nsLen = skip(target.namespaceSerializer, nsStart, target.ambiguous);
        int userKeyStart = keyIn.getPosition();
        int userKeyLen = key.length - userKeyStart;
        byte[] value = entry.getValue();
        // The value is appended before access.channel() is read: appending may replace the
        // input buffer with a bigger one (Java evaluates arguments left to right).
        access.startRaw();
        access.appendRaw(key, keyStart, keyLen);
        access.appendRaw(key, nsStart, nsLen);
        long handle = backend.id();
        switch (target.type) {
            case VALUE:
            case REDUCING:
            case AGGREGATING:
                int valueLen = access.appendRaw(value, 0, value.length);
                NativeBridge.valuePut(
                        handle,
                        access.channel(),
                        target.nativeId,
                        keyGroup,
                        keyLen,
                        nsLen,
                        valueLen);
                break;
            case MAP:
                access.appendRaw(key, userKeyStart, userKeyLen);
                int mapValueLen = access.appendRaw(value, 0, value.length);
                NativeBridge.mapPut(
                        handle,
                        access.channel(),
                        target.nativeId,
                        keyGroup,
                        keyLen,
                        nsLen,
                        userKeyLen,
                        mapValueLen);
                break;
            case LIST:
                int encodedLen = encodeList(value, target.elementSerializer);
                int listLen = access.appendRaw(list.getSharedBuffer(), 0, encodedLen);
                NativeBridge.listAddAll(
                        handle,
                        access.channel(),
                        target.nativeId,
                        keyGroup,
                        keyLen,
                        nsLen,
                        listLen,
                        true);
                break;
            default:
                throw new IllegalStateException("state type " + target.type);
        }
    }

    /**
     * Moves past one field of the composite key (and its length when key and namespace are both
     * variable-sized); the field's length. The serializer reads the field: a declared length is not
     * trusted (VoidNamespaceSerializer declares 0 and writes one byte).
     */
    private int skip(TypeSerializer<?> serializer, int start, boolean withLength)
            throws IOException {
        serializer.deserialize(keyIn);
        int len = keyIn.getPosition() - start;
        if (withLength) {
            CompositeKeySerializationUtils.readVariableIntBytes(keyIn, len);
        }
        return len;
    }

    /**
     * Flink's delimited list ({@code e1 , e2 , …}) in the native encoding ({@code varint(len) ‖
     * bytes} per element) in {@link #list}; its length. The element serializer finds the
     * boundaries.
     */
    private int encodeList(byte[] delimited, TypeSerializer<?> elementSerializer)
            throws IOException {
        list.clear();
        valueIn.setBuffer(delimited);
        while (valueIn.available() > 0) {
            int start = valueIn.getPosition();
            elementSerializer.deserialize(valueIn);
            int len = valueIn.getPosition() - start;
            NativeListState.writeVarint(list, len);
            list.write(delimited, start, len);
            if (valueIn.available() > 0) {
                valueIn.readByte();
            }
        }
        return list.length();
    }
}
