package io.statebackend.internal;

import org.apache.flink.api.common.functions.ReduceFunction;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.runtime.state.internal.InternalReducingState;

/** Reducing state: the reduce function runs in Java on read-modify-write. */
final class NativeReducingState<K, N, V> extends AbstractNativeMergingValueState<K, N, V>
        implements InternalReducingState<K, N, V> {
    private final ReduceFunction<V> reduceFunction;

    NativeReducingState(
            NativeKeyedStateBackend<K> backend,
            int stateId,
            String name,
            TypeSerializer<N> namespaceSerializer,
            TypeSerializer<V> valueSerializer,
            ReduceFunction<V> reduceFunction) {
        super(backend, stateId, name, namespaceSerializer, valueSerializer);
        this.reduceFunction = reduceFunction;
    }

    @Override
    V merge(V a, V b) throws Exception {
        return reduceFunction.reduce(a, b);
    }

    @Override
    public V get() throws Exception {
        return getInternal();
    }

    @Override
    public void add(V value) throws Exception {
        if (value == null) {
            clear();
            return;
        }
        V current = getInternal();
        updateInternal(current == null ? value : reduceFunction.reduce(current, value));
    }
}
