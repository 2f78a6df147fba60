package io.statebackend.internal;

import java.io.IOException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.NoSuchElementException;
import java.util.Objects;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.api.common.typeutils.base.MapSerializer;
import org.apache.flink.queryablestate.client.state.serialization.KvStateSerializer;
import org.apache.flink.runtime.state.internal.InternalMapState;

/**
 * Map state. Values are stored as {@code null flag ‖ serialized value} (Flink's map state allows
 * null values). Iteration reads the map's entries once and walks that copy; removing through the
 * iterator and {@code setValue} write through.
 */
final class NativeMapState<K, N, UK, UV> extends AbstractNativeState<K, N, Map<UK, UV>>
        implements InternalMapState<K, N, UK, UV> {

    NativeMapState(
            NativeKeyedStateBackend<K> backend,
            int stateId,
            String name,
            TypeSerializer<N> namespaceSerializer,
            TypeSerializer<Map<UK, UV>> valueSerializer) {
        super(backend, stateId, name, namespaceSerializer, valueSerializer);
    }

    private TypeSerializer<UK> userKeySerializer() {
        return ((MapSerializer<UK, UV>) valueSerializer).getKeySerializer();
    }

    private TypeSerializer<UV> userValueSerializer() {
        return ((MapSerializer<UK, UV>) valueSerializer).getValueSerializer();
    }

    private int startUserKey(UK userKey) throws IOException {
        startAccess();
        return access.append(userKeySerializer(), userKey);
    }

    @Override
    public UV get(UK userKey) throws IOException {
        int ukLen = startUserKey(userKey);
        int r;
        do {
            r =
                    NativeBridge.mapGet(
                            handle(),
                            access.channel(),
                            stateId,
                            access.keyGroup(),
                            access.keyLen(),
                            access.nsLen(),
                            ukLen);
        } while (access.retry(r));
        if (r == NativeBridge.ABSENT) {
            return null;
        }
        return readUserValue(access.result(r), userValueSerializer());
    }

    private static <T> T readUserValue(DirectInputView in, TypeSerializer<T> serializer)
            throws IOException {
        return in.readBoolean() ? null : serializer.deserialize(in);
    }

    /** Appends a user value as stored: {@code null flag ‖ serialized value}. */
    private void writeUserValue(UV userValue, TypeSerializer<UV> serializer) throws IOException {
        DirectOutputView out = access.output();
        out.writeBoolean(userValue == null);
        if (userValue != null) {
            serializer.serialize(userValue, out);
        }
    }

    @Override
    public void put(UK userKey, UV userValue) throws IOException {
        int ukLen = startUserKey(userKey);
        int start = access.position();
        writeUserValue(userValue, userValueSerializer());
        NativeBridge.mapPut(
                handle(),
                access.channel(),
                stateId,
                access.keyGroup(),
                access.keyLen(),
                access.nsLen(),
                ukLen,
                access.position() - start);
    }

    /** One native call for all entries (Flink's RocksDB backend writes them as one batch). */
    @Override
    public void putAll(Map<UK, UV> map) throws IOException {
        if (map == null || map.isEmpty()) {
            return;
        }
        startAccess();
        TypeSerializer<UK> ukSerializer = userKeySerializer();
        TypeSerializer<UV> uvSerializer = userValueSerializer();
        int start = access.position();
        for (Map.Entry<UK, UV> e : map.entrySet()) {
            access.appendElement(ukSerializer, e.getKey());
            int value = access.startElement();
            writeUserValue(e.getValue(), uvSerializer);
            access.endElement(value);
        }
        NativeBridge.mapPutAll(
                handle(),
                access.channel(),
                stateId,
                access.keyGroup(),
                access.keyLen(),
                access.nsLen(),
                access.position() - start);
    }

    @Override
    public void remove(UK userKey) throws IOException {
        int ukLen = startUserKey(userKey);
        NativeBridge.mapRemove(
                handle(),
                access.channel(),
                stateId,
                access.keyGroup(),
                access.keyLen(),
                access.nsLen(),
                ukLen);
    }

    @Override
    public boolean contains(UK userKey) throws IOException {
        int ukLen = startUserKey(userKey);
        return NativeBridge.mapContains(
                handle(),
                access.channel(),
                stateId,
                access.keyGroup(),
                access.keyLen(),
                access.nsLen(),
                ukLen);
    }

    @Override
    public boolean isEmpty() throws IOException {
        startAccess();
        return NativeBridge.mapIsEmpty(
                handle(),
                access.channel(),
                stateId,
                access.keyGroup(),
                access.keyLen(),
                access.nsLen());
    }

    private List<Map.Entry<UK, UV>> readEntries(
            NativeAccess a, TypeSerializer<UK> ukSerializer, TypeSerializer<UV> uvSerializer)
            throws IOException {
        int r;
        do {
            r =
                    NativeBridge.mapEntries(
                            a.handle(), a.channel(), stateId, a.keyGroup(), a.keyLen(), a.nsLen());
        } while (a.retry(r));
        List<Map.Entry<UK, UV>> entries = new ArrayList<>();
        if (r <= 0) {
            return entries;
        }
        DirectInputView in = a.result(r);
        while (in.available() > 0) {
            int ukLen = in.readInt();
            int start = in.position();
            UK uk = ukSerializer.deserialize(in);
            in.skipTo(start + ukLen);
            int uvLen = in.readInt();
            start = in.position();
            UV uv = readUserValue(in, uvSerializer);
            in.skipTo(start + uvLen);
            entries.add(new Entry(uk, uv));
        }
        return entries;
    }

    private List<Map.Entry<UK, UV>> entryList() throws IOException {
        startAccess();
        return readEntries(access, userKeySerializer(), userValueSerializer());
    }

    @Override
    public Iterable<Map.Entry<UK, UV>> entries() throws IOException {
        List<Map.Entry<UK, UV>> entries = entryList();
        return () -> new EntryIterator(entries);
    }

    @Override
    public Iterable<UK> keys() throws IOException {
        List<Map.Entry<UK, UV>> entries = entryList();
        return () -> new MappedIterator<>(new EntryIterator(entries), Map.Entry::getKey);
    }

    @Override
    public Iterable<UV> values() throws IOException {
        List<Map.Entry<UK, UV>> entries = entryList();
        return () -> new MappedIterator<>(new EntryIterator(entries), Map.Entry::getValue);
    }

    @Override
    public Iterator<Map.Entry<UK, UV>> iterator() throws IOException {
        return new EntryIterator(entryList());
    }

    @Override
    Map<UK, UV> readForQuery(NativeAccess query, TypeSerializer<Map<UK, UV>> safeValueSerializer)
            throws IOException {
        MapSerializer<UK, UV> serializer = (MapSerializer<UK, UV>) safeValueSerializer;
        List<Map.Entry<UK, UV>> entries =
                readEntries(query, serializer.getKeySerializer(), serializer.getValueSerializer());
        if (entries.isEmpty()) {
            return null;
        }
        Map<UK, UV> map = new HashMap<>();
        for (Map.Entry<UK, UV> e : entries) {
            map.put(e.getKey(), e.getValue());
        }
        return map;
    }

    @Override
    byte[] serializeForQuery(Map<UK, UV> value, TypeSerializer<Map<UK, UV>> safeValueSerializer)
            throws IOException {
        MapSerializer<UK, UV> serializer = (MapSerializer<UK, UV>) safeValueSerializer;
        return KvStateSerializer.serializeMap(
                value.entrySet(), serializer.getKeySerializer(), serializer.getValueSerializer());
    }

    /** An entry whose {@code setValue} writes through to the state. */
    private final class Entry implements Map.Entry<UK, UV> {
        private final UK key;
        private UV value;

        Entry(UK key, UV value) {
            this.key = key;
            this.value = value;
        }

        @Override
        public UK getKey() {
            return key;
        }

        @Override
        public UV getValue() {
            return value;
        }

        @Override
        public UV setValue(UV newValue) {
            UV old = value;
            try {
                put(key, newValue);
            } catch (IOException e) {
                throw new RuntimeException("updating map state " + name, e);
            }
            value = newValue;
            return old;
        }

        /** The {@link Map.Entry} contract: equal to any entry with equal key and value. */
        @Override
        public boolean equals(Object o) {
            return o instanceof Map.Entry
                    && Objects.equals(key, ((Map.Entry<?, ?>) o).getKey())
                    && Objects.equals(value, ((Map.Entry<?, ?>) o).getValue());
        }

        @Override
        public int hashCode() {
            return Objects.hashCode(key) ^ Objects.hashCode(value);
        }

        @Override
        public String toString() {
            return key + "=" + value;
        }
    }

    private final class EntryIterator implements Iterator<Map.Entry<UK, UV>> {
        private final List<Map.Entry<UK, UV>> entries;
        private int next;
        private Map.Entry<UK, UV> last;

        EntryIterator(List<Map.Entry<UK, UV>> entries) {
            this.entries = entries;
        }

        @Override
        public boolean hasNext() {
            return next < entries.size();
        }

        @Override
        public Map.Entry<UK, UV> next() {
            if (!hasNext()) {
                throw new NoSuchElementException();
            }
            last = entries.get(next++);
            return last;
        }

        @Override
        public void remove() {
            if (last == null) {
                throw new IllegalStateException("next() has not been called");
            }
            try {
                NativeMapState.this.remove(last.getKey());
            } catch (IOException e) {
                throw new RuntimeException("removing from map state " + name, e);
            }
            last = null;
        }
    }

    private static final class MappedIterator<F, T> implements Iterator<T> {
        private final Iterator<F> inner;
        private final java.util.function.Function<F, T> map;

        MappedIterator(Iterator<F> inner, java.util.function.Function<F, T> map) {
            this.inner = inner;
            this.map = map;
        }

        @Override
        public boolean hasNext() {
            return inner.hasNext();
        }

        @Override
        public T next() {
            return map.apply(inner.next());
        }

        @Override
        public void remove() {
            inner.remove();
        }
    }
}
