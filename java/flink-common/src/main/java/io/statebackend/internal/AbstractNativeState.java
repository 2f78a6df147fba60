package io.statebackend.internal;

import java.io.IOException;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.queryablestate.client.state.serialization.KvStateSerializer;
import org.apache.flink.runtime.state.KeyGroupRangeAssignment;
import org.apache.flink.runtime.state.internal.InternalKvState;

/**
 * What every native state shares: its id in the native backend, its serializers, the current
 * namespace, and the {@code key ‖ namespace} prefix of each access.
 */
abstract class AbstractNativeState<K, N, V> implements InternalKvState<K, N, V> {
    final NativeKeyedStateBackend<K> backend;
    final NativeAccess access;
    final int stateId;
    final String name;
    TypeSerializer<N> namespaceSerializer;
    TypeSerializer<V> valueSerializer;
    N currentNamespace;

    AbstractNativeState(
            NativeKeyedStateBackend<K> backend,
            int stateId,
            String name,
            TypeSerializer<N> namespaceSerializer,
            TypeSerializer<V> valueSerializer) {
        this.backend = backend;
        this.access = backend.access();
        this.stateId = stateId;
        this.name = name;
        this.namespaceSerializer = namespaceSerializer;
        this.valueSerializer = valueSerializer;
    }

    /** Re-registration with (possibly reconfigured) serializers. */
    void update(TypeSerializer<N> namespaceSerializer, TypeSerializer<V> valueSerializer) {
        this.namespaceSerializer = namespaceSerializer;
        this.valueSerializer = valueSerializer;
    }

    @Override
    public TypeSerializer<K> getKeySerializer() {
        return backend.getKeySerializer();
    }

    @Override
    public TypeSerializer<N> getNamespaceSerializer() {
        return namespaceSerializer;
    }

    @Override
    public TypeSerializer<V> getValueSerializer() {
        return valueSerializer;
    }

    @Override
    public void setCurrentNamespace(N namespace) {
        this.currentNamespace = namespace;
    }

    /** Writes {@code key ‖ current namespace} into the input buffer. */
    final void startAccess() throws IOException {
        startAccess(currentNamespace);
    }

    final void startAccess(N namespace) throws IOException {
        backend.refreshKey();
        access.startKeyAndNamespace(namespace, namespaceSerializer);
    }

    final long handle() {
        return access.handle();
    }

    @Override
    public void clear() {
        try {
            startAccess();
            NativeBridge.clear(
                    handle(),
                    access.channel(),
                    stateId,
                    access.keyGroup(),
                    access.keyLen(),
                    access.nsLen());
        } catch (IOException e) {
            throw new RuntimeException("clearing state " + name, e);
        }
    }

    /**
     * The state of (key, namespace) as a Java object, read through {@code query}, a private access
     * for a thread other than the task's.
     */
    abstract V readForQuery(NativeAccess query, TypeSerializer<V> safeValueSerializer)
            throws Exception;

    /** The bytes of a value in the queryable-state format. */
    byte[] serializeForQuery(V value, TypeSerializer<V> safeValueSerializer) throws Exception {
        return KvStateSerializer.serializeValue(value, safeValueSerializer);
    }

    @Override
    public byte[] getSerializedValue(
            byte[] serializedKeyAndNamespace,
            TypeSerializer<K> safeKeySerializer,
            TypeSerializer<N> safeNamespaceSerializer,
            TypeSerializer<V> safeValueSerializer)
            throws Exception {
        Tuple2<K, N> keyAndNamespace =
                KvStateSerializer.deserializeKeyAndNamespace(
                        serializedKeyAndNamespace, safeKeySerializer, safeNamespaceSerializer);
        int keyGroup =
                KeyGroupRangeAssignment.assignToKeyGroup(
                        keyAndNamespace.f0, backend.getNumberOfKeyGroups());
        try (NativeAccess query = backend.newAccess()) {
            query.setKey(keyAndNamespace.f0, safeKeySerializer, keyGroup);
            query.startKeyAndNamespace(keyAndNamespace.f1, safeNamespaceSerializer);
            V value = readForQuery(query, safeValueSerializer);
            return value == null ? null : serializeForQuery(value, safeValueSerializer);
        }
    }

    @Override
    public StateIncrementalVisitor<K, N, V> getStateIncrementalVisitor(
            int recommendedMaxNumberOfReturnedRecords) {
        // Flink then skips incremental TTL cleanup, as for its RocksDB backend.
        throw new UnsupportedOperationException(
                "incremental state visitors are not supported by the native backend");
    }

    /** Reads the value-kind entry of the prepared access; null if absent. */
    static <T> T readValue(NativeAccess a, int stateId, TypeSerializer<T> serializer)
            throws IOException {
        int r;
        do {
            r =
                    NativeBridge.valueGet(
                            a.handle(), a.channel(), stateId, a.keyGroup(), a.keyLen(), a.nsLen());
        } while (a.retry(r));
        return r == NativeBridge.ABSENT ? null : serializer.deserialize(a.result(r));
    }
}
