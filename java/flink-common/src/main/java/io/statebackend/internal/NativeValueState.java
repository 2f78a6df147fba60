package io.statebackend.internal;

import java.io.IOException;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.runtime.state.internal.InternalValueState;

/** Value state: one value per (key, namespace). */
final class NativeValueState<K, N, V> extends AbstractNativeState<K, N, V>
        implements InternalValueState<K, N, V> {
    private final V defaultValue;

    NativeValueState(
            NativeKeyedStateBackend<K> backend,
            int stateId,
            String name,
            TypeSerializer<N> namespaceSerializer,
            TypeSerializer<V> valueSerializer,
            V defaultValue) {
        super(backend, stateId, name, namespaceSerializer, valueSerializer);
        this.defaultValue = defaultValue;
    }

    @Override
    public V value() throws IOException {
        startAccess();
        V v = readValue(access, stateId, valueSerializer);
        if (v != null) {
            return v;
        }
        return defaultValue == null ? null : valueSerializer.copy(defaultValue);
    }

    @Override
    public void update(V value) throws IOException {
        if (value == null) {
            clear();
            return;
        }
        startAccess();
        int len = access.append(valueSerializer, value);
        NativeBridge.valuePut(
                handle(),
                access.channel(),
                stateId,
                access.keyGroup(),
                access.keyLen(),
                access.nsLen(),
                len);
    }

    @Override
    V readForQuery(NativeAccess query, TypeSerializer<V> safeValueSerializer) throws IOException {
        return readValue(query, stateId, safeValueSerializer);
    }
}
