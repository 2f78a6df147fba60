package io.statebackend.internal;

import java.io.IOException;
import java.nio.ByteBuffer;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.core.memory.DataInputDeserializer;

/**
 * The buffers of one accessor of a keyed backend and the serialization of the fields of a state
 * access into them: no Java allocation per access besides what the serializers themselves do. Used
 * by one thread: the task thread's accessor lives as long as the backend; queries from other
 * threads take their own and close it.
 *
 * <p>A call's fields go one after another into the direct input buffer, {@code key ‖ namespace ‖
 * further fields}, serialized in place ({@link DirectOutputView}); the native side reads them by
 * length and writes its result into the direct output buffer, read in place too ({@link
 * DirectInputView}). Both buffers are registered with the native backend once ({@link #channel()},
 * again after one grew), so calls pass ints only.
 *
 * <p>The current key stays serialized at the start of the input between accesses ({@link #setKey});
 * the namespace after it is serialized again only when the access names another namespace object or
 * serializer than the last one (namespaces are not mutated while they are in use: they are keys in
 * Flink's own heap backend too).
 */
final class NativeAccess implements AutoCloseable {
    private static final int INITIAL_CAPACITY = 256;

    /** Marks "no namespace serialized after the key": equal to no namespace, null included. */
    private static final Object NO_NAMESPACE = new Object();

    private final NativeHandle backend;
    private final DirectOutputView input = new DirectOutputView(INITIAL_CAPACITY);
    private ByteBuffer out = ByteBuffer.allocateDirect(INITIAL_CAPACITY);
    private boolean outGrown;
    private final DirectInputView result = new DirectInputView();

    /** The registered channel of the two buffers; -1 before the first call. */
    private int channel = -1;

    private final DataInputDeserializer copyReader = new DataInputDeserializer();
    private byte[] copy = new byte[INITIAL_CAPACITY];

    private int keyLen;
    private int keyGroup = -1;

    /** The namespace whose bytes follow the key, and the serializer that wrote them. */
    private Object namespace = NO_NAMESPACE;

    private TypeSerializer<?> namespaceSerializer;
    private int nsLen;

    NativeAccess(NativeHandle backend) {
        this.backend = backend;
    }

    long handle() {
        return backend.id();
    }

    /**
     * The channel id of the buffers for a native call, registering them first if they are new.
     * Evaluate it after the fields are written: writing may replace the input buffer.
     */
    int channel() {
        if (channel < 0 || outGrown || input.grown()) {
            bind();
        }
        return channel;
    }

    private void bind() {
        channel = NativeBridge.bind(backend.id(), channel, input.buffer(), out);
        input.registered();
        outGrown = false;
    }

    /** Releases the registered buffers (an accessor of a thread other than the task's). */
    @Override
    public void close() {
        if (channel >= 0) {
            int c = channel;
            channel = -1;
            NativeBridge.unbind(backend.id(), c);
        }
    }

    /** The input buffer, for calls that take it as an argument (key iteration). */
    ByteBuffer in() {
        return input.buffer();
    }

    /** The output buffer, for calls that take it as an argument (batches of iterators). */
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

    /** Serializes a new current key at the start of the input. */
    <K> void setKey(K k, TypeSerializer<K> serializer, int keyGroup) throws IOException {
        int previous = keyLen;
        input.setPosition(0);
        try {
            serializer.serialize(k, input);
        } catch (IOException | RuntimeException e) {
            forgetKey();
            throw e;
        }
        keyLen = input.position();
        if (keyLen != previous) {
            // The namespace's bytes were overwritten or are not where they were.
            namespace = NO_NAMESPACE;
        }
        this.keyGroup = keyGroup;
    }

    private void forgetKey() {
        keyLen = 0;
        keyGroup = -1;
        namespace = NO_NAMESPACE;
    }

    /** Starts the input with {@code key ‖ namespace}; further fields are appended after them. */
    <N> void startKeyAndNamespace(N ns, TypeSerializer<N> nsSerializer) throws IOException {
        if (ns != namespace || nsSerializer != namespaceSerializer) {
            namespace = NO_NAMESPACE;
            input.setPosition(keyLen);
            nsSerializer.serialize(ns, input);
            nsLen = input.position() - keyLen;
            namespace = ns;
            namespaceSerializer = nsSerializer;
        } else {
            input.setPosition(keyLen + nsLen);
        }
    }

    /** Clears the input, for fields appended as raw bytes ({@link #appendRaw}): no current key. */
    void startRaw() {
        forgetKey();
        input.setPosition(0);
    }

    /** Appends raw bytes to the input; their length. */
    int appendRaw(byte[] bytes, int offset, int len) {
        input.write(bytes, offset, len);
        return len;
    }

    /** Appends one serialized field to the input; its length. */
    <T> int append(TypeSerializer<T> serializer, T value) throws IOException {
        int start = input.position();
        serializer.serialize(value, input);
        return input.position() - start;
    }

    /** The input, for fields written in several parts; see {@link #position()}. */
    DirectOutputView output() {
        return input;
    }

    /** Where the next field starts in the input. */
    int position() {
        return input.position();
    }

    /**
     * Starts one element of a list encoding ({@code varint(len) ‖ bytes}, see {@link #endElement}):
     * the element's bytes are written next. Returns the element's start.
     */
    int startElement() {
        int start = input.position();
        // One byte for the length, as elements are mostly shorter than 128 bytes.
        input.setPosition(start + 1);
        return start;
    }

    /** Ends the element started at {@code start}: writes its length in front of it. */
    void endElement(int start) {
        int len = input.position() - start - 1;
        int lenBytes = varintLength(len);
        if (lenBytes > 1) {
            input.move(start + 1, start + lenBytes, len);
            input.setPosition(start + lenBytes + len);
        }
        int at = start;
        int v = len;
        while ((v & ~0x7f) != 0) {
            input.putAt(at++, (byte) ((v & 0x7f) | 0x80));
            v >>>= 7;
        }
        input.putAt(at, (byte) v);
    }

    /** Appends one list element serialized by {@code serializer}. */
    <T> void appendElement(TypeSerializer<T> serializer, T value) throws IOException {
        int start = startElement();
        serializer.serialize(value, input);
        endElement(start);
    }

    /**
     * Appends one element serialized by {@code serializer}, whose {@link
     * TypeSerializer#getLength()} is {@code length} (0 to 127): the length byte is written first,
     * and fixed only if the serializer wrote another length.
     */
    <T> void appendFixedElement(TypeSerializer<T> serializer, T value, int length)
            throws IOException {
        int start = input.position();
        input.write(length);
        serializer.serialize(value, input);
        if (input.position() - start - 1 != length) {
            endElement(start);
        }
    }

    static int varintLength(int value) {
        int n = 1;
        for (int v = value >>> 7; v != 0; v >>>= 7) {
            n++;
        }
        return n;
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
        outGrown = true;
        return true;
    }

    /** A reader over the first {@code len} bytes of the output, in place. */
    DirectInputView result(int len) {
        return result.reset(out, len);
    }

    /**
     * A reader over a copy of the first {@code len} bytes of the output: for batches read across
     * further native calls (iterators).
     */
    DataInputDeserializer copyResult(int len) {
        if (copy.length < len) {
            copy = new byte[Math.max(len, 2 * copy.length)];
        }
        out.get(0, copy, 0, len);
        copyReader.setBuffer(copy, 0, len);
        return copyReader;
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
