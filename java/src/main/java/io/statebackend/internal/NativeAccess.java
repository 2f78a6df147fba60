package io.statebackend.internal;

import java.io.IOException;
import java.nio.ByteBuffer;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.core.memory.DataInputDeserializer;
import org.apache.flink.core.memory.DataOutputSerializer;

/**
 * The reusable buffers of one keyed backend and the serialization of the fields of a state access
 * into them: no Java allocation per access besides what the serializers themselves do. Used by the
 * task thread only; queries from other threads take their own instance.
 *
 * <p>A call writes {@code key ‖ namespace} first ({@link #startKeyAndNamespace}), then appends
 * further fields ({@link #append}); the native side reads them from {@link #in} by length and
 * writes results into {@link #out}.
 */
final class NativeAccess {
    private static final int INITIAL_CAPACITY = 256;

    private final NativeHandle backend;
    private ByteBuffer in = ByteBuffer.allocateDirect(INITIAL_CAPACITY);
    private ByteBuffer out = ByteBuffer.allocateDirect(INITIAL_CAPACITY);
    private final DataOutputSerializer scratch = new DataOutputSerializer(INITIAL_CAPACITY);
    private final DataInputDeserializer reader = new DataInputDeserializer();
    private byte[] result = new byte[INITIAL_CAPACITY];

    /** The current key, serialized, and its key group. */
    private byte[] key = new byte[0];

    private int keyLen;
    private int keyGroup = -1;
    private int nsLen;

    NativeAccess(NativeHandle backend) {
        this.backend = backend;
    }

    long handle() {
        return backend.id();
    }

    ByteBuffer in() {
        return in;
    }

    ByteBuffer out() {
        return out;
    }

    int keyLen() {
        return keyLen;
    }

    int nsLen() {
        return nsLen;
    }

    int keyGroup() {
        return keyGroup;
    }

    /** Serializes a new current key. */
    <K> void setKey(K k, TypeSerializer<K> serializer, int keyGroup) throws IOException {
        scratch.clear();
        serializer.serialize(k, scratch);
        keyLen = scratch.length();
        if (key.length < keyLen) {
            key = new byte[Math.max(keyLen, 2 * key.length)];
        }
        System.arraycopy(scratch.getSharedBuffer(), 0, key, 0, keyLen);
        this.keyGroup = keyGroup;
    }

    /** Starts the input with {@code key ‖ namespace}. */
    <N> void startKeyAndNamespace(N namespace, TypeSerializer<N> nsSerializer) throws IOException {
        in.clear();
        ensureIn(keyLen);
        in.put(key, 0, keyLen);
        nsLen = append(nsSerializer, namespace);
    }

    /** Clears the input, for fields appended as raw bytes ({@link #appendRaw}). */
    void startRaw() {
        in.clear();
    }

    /** Appends raw bytes to the input; their length. */
    int appendRaw(byte[] bytes, int offset, int len) {
        ensureIn(len);
        in.put(bytes, offset, len);
        return len;
    }

    /** Appends one serialized field to the input; its length. */
    <T> int append(TypeSerializer<T> serializer, T value) throws IOException {
        scratch.clear();
        serializer.serialize(value, scratch);
        return appendScratch();
    }

    /** The scratch buffer, for fields built of several parts; see {@link #appendScratch}. */
    DataOutputSerializer scratch() {
        return scratch;
    }

    /** Appends the scratch buffer's bytes to the input; their length. */
    int appendScratch() {
        int len = scratch.length();
        ensureIn(len);
        in.put(scratch.getSharedBuffer(), 0, len);
        return len;
    }

    private void ensureIn(int more) {
        if (in.remaining() < more) {
            int needed = in.position() + more;
            ByteBuffer bigger = ByteBuffer.allocateDirect(Math.max(needed, 2 * in.capacity()));
            in.flip();
            bigger.put(in);
            in = bigger;
        }
    }

    /**
     * Handles a native result code: true if the output was too small (it has been grown: call
     * again), false otherwise.
     */
    boolean retry(int code) {
        if (code >= NativeBridge.ABSENT) {
            return false;
        }
        int needed = NativeBridge.neededCapacity(code);
        out = ByteBuffer.allocateDirect(Math.max(needed, 2 * out.capacity()));
        return true;
    }

    /** A reader over the first {@code len} bytes of the output. */
    DataInputDeserializer result(int len) {
        if (result.length < len) {
            result = new byte[Math.max(len, 2 * result.length)];
        }
        out.get(0, result, 0, len);
        reader.setBuffer(result, 0, len);
        return reader;
    }

    /** Moves a reader to {@code target}: the end of a field a serializer has just read. */
    static void skipTo(DataInputDeserializer in, int target) throws IOException {
        int position = in.getPosition();
        if (position > target) {
            throw new IOException(
                    "a serializer read " + (position - target) + " bytes past its field");
        }
        if (position < target) {
            in.skipBytesToRead(target - position);
        }
    }
}
