package io.statebackend.internal;

import java.io.IOException;
import java.util.Collection;
import org.apache.flink.api.common.typeutils.TypeSerializer;

/**
 * Reducing and aggregating state: one accumulated value per (key, namespace), kept as a native
 * value. Adding and merging read the value, combine in Java and write it back (the combining
 * function is Java code).
 */
abstract class AbstractNativeMergingValueState<K, N, ACC> extends AbstractNativeState<K, N, ACC> {

    AbstractNativeMergingValueState(
            NativeKeyedStateBackend<K> backend,
            int stateId,
            String name,
            TypeSerializer<N> namespaceSerializer,
            TypeSerializer<ACC> valueSerializer) {
        super(backend, stateId, name, namespaceSerializer, valueSerializer);
    }

    /** Combines two accumulated values. */
    abstract ACC merge(ACC a, ACC b) throws Exception;

    final ACC read(N namespace) throws IOException {
        startAccess(namespace);
        return readValue(access, stateId, valueSerializer);
    }

    final void write(N namespace, ACC value) throws IOException {
        startAccess(namespace);
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

    final void remove(N namespace) throws IOException {
        startAccess(namespace);
        NativeBridge.clear(
                handle(),
                access.channel(),
                stateId,
                access.keyGroup(),
                access.keyLen(),
                access.nsLen());
    }

    public ACC getInternal() throws IOException {
        return read(currentNamespace);
    }

    public void updateInternal(ACC value) throws IOException {
        if (value == null) {
            remove(currentNamespace);
        } else {
            write(currentNamespace, value);
        }
    }

    public void mergeNamespaces(N target, Collection<N> sources) throws Exception {
        if (sources == null || sources.isEmpty()) {
            return;
        }
        ACC merged = null;
        for (N source : sources) {
            if (source == null || source.equals(target)) {
                continue;
            }
            ACC value = read(source);
            if (value != null) {
                remove(source);
                merged = merged == null ? value : merge(merged, value);
            }
        }
        if (merged != null) {
            ACC existing = read(target);
            write(target, existing == null ? merged : merge(existing, merged));
        }
    }

    @Override
    ACC readForQuery(NativeAccess query, TypeSerializer<ACC> safeValueSerializer)
            throws IOException {
        return readValue(query, stateId, safeValueSerializer);
    }
}
