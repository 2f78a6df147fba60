package io.statebackend.internal;

import java.io.DataInput;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.api.common.typeutils.base.ListSerializer;
import org.apache.flink.core.memory.DataOutputSerializer;
import org.apache.flink.runtime.state.internal.InternalListState;
import org.apache.flink.util.Preconditions;

/**
 * List state. The native side keeps lists encoded ({@code varint(len) ‖ bytes} per element), so
 * {@code add} appends without reading the list.
 */
final class NativeListState<K, N, V> extends AbstractNativeState<K, N, List<V>>
        implements InternalListState<K, N, V> {

    NativeListState(
            NativeKeyedStateBackend<K> backend,
            int stateId,
            String name,
            TypeSerializer<N> namespaceSerializer,
            TypeSerializer<List<V>> valueSerializer) {
        super(backend, stateId, name, namespaceSerializer, valueSerializer);
    }

    private TypeSerializer<V> elementSerializer() {
        return ((ListSerializer<V>) valueSerializer).getElementSerializer();
    }

    @Override
    public Iterable<V> get() throws IOException {
        return getInternal();
    }

    @Override
    public List<V> getInternal() throws IOException {
        startAccess();
        return read(access, elementSerializer());
    }

    private List<V> read(NativeAccess a, TypeSerializer<V> elementSerializer) throws IOException {
        int r;
        do {
            r =
                    NativeBridge.listGet(
                            a.handle(), a.channel(), stateId, a.keyGroup(), a.keyLen(), a.nsLen());
        } while (a.retry(r));
        if (r == NativeBridge.ABSENT) {
            return null;
        }
        DirectInputView in = a.result(r);
        List<V> list = new ArrayList<>();
        while (in.available() > 0) {
            int len = readVarint(in);
            int start = in.position();
            list.add(elementSerializer.deserialize(in));
            in.skipTo(start + len);
        }
        return list;
    }

    @Override
    public void add(V value) throws IOException {
        Preconditions.checkNotNull(value, "You cannot add null to a ListState.");
        startAccess();
        int len = access.append(elementSerializer(), value);
        NativeBridge.listAdd(
                handle(),
                access.channel(),
                stateId,
                access.keyGroup(),
                access.keyLen(),
                access.nsLen(),
                len);
    }

    @Override
    public void update(List<V> values) throws IOException {
        Preconditions.checkNotNull(values, "List of values to add cannot be null.");
        write(values, true);
    }

    @Override
    public void addAll(List<V> values) throws IOException {
        Preconditions.checkNotNull(values, "List of values to add cannot be null.");
        if (!values.isEmpty()) {
            write(values, false);
        }
    }

    @Override
    public void updateInternal(List<V> values) throws IOException {
        update(values);
    }

    private void write(List<V> values, boolean replace) throws IOException {
        startAccess();
        TypeSerializer<V> serializer = elementSerializer();
        int start = access.position();
        // Fixed-length elements (Long, Integer, ...) have their one-byte length known upfront.
        int length = serializer.getLength();
        boolean fixed = length >= 0 && length < 0x80;
        for (V value : values) {
            Preconditions.checkNotNull(value, "You cannot add null to a ListState.");
            if (fixed) {
                access.appendFixedElement(serializer, value, length);
            } else {
                access.appendElement(serializer, value);
            }
        }
        NativeBridge.listAddAll(
                handle(),
                access.channel(),
                stateId,
                access.keyGroup(),
                access.keyLen(),
                access.nsLen(),
                access.position() - start,
                replace);
    }

    @Override
    public void mergeNamespaces(N target, Collection<N> sources) throws IOException {
        if (sources == null || sources.isEmpty()) {
            return;
        }
        startAccess(target);
        int start = access.position();
        for (N source : sources) {
            access.appendElement(namespaceSerializer, source);
        }
        NativeBridge.mergeNamespaces(
                handle(),
                access.channel(),
                stateId,
                access.keyGroup(),
                access.keyLen(),
                access.nsLen(),
                access.position() - start);
    }

    @Override
    List<V> readForQuery(NativeAccess query, TypeSerializer<List<V>> safeValueSerializer)
            throws IOException {
        return read(query, ((ListSerializer<V>) safeValueSerializer).getElementSerializer());
    }

    /**
     * The queryable-state format of a list, as Flink's backends write it: the elements, each
     * serialized with the element serializer, separated by one {@code ','} byte.
     */
    @Override
    byte[] serializeForQuery(List<V> value, TypeSerializer<List<V>> safeValueSerializer)
            throws IOException {
        TypeSerializer<V> serializer =
                ((ListSerializer<V>) safeValueSerializer).getElementSerializer();
        DataOutputSerializer out = new DataOutputSerializer(64);
        for (int i = 0; i < value.size(); i++) {
            if (i > 0) {
                out.writeByte(',');
            }
            serializer.serialize(value.get(i), out);
        }
        return out.getCopyOfBuffer();
    }

    static void writeVarint(DataOutputSerializer out, int value) throws IOException {
        int v = value;
        while ((v & ~0x7f) != 0) {
            out.writeByte((v & 0x7f) | 0x80);
            v >>>= 7;
        }
        out.writeByte(v);
    }

    static int readVarint(DataInput in) throws IOException {
        int value = 0;
        for (int shift = 0; shift < 35; shift += 7) {
            int b = in.readUnsignedByte();
            value |= (b & 0x7f) << shift;
            if ((b & 0x80) == 0) {
                return value;
            }
        }
        throw new IOException("malformed list encoding from the native backend");
    }
}
